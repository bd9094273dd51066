"""modal.Image for snapbuild: records method chains and writes them as recipes.

Every method returns a new Image that points at its parent and records one
step: the method's name and its arguments by Modal's names, as given. Nothing
is built here; snapbuild_frontend.py turns each image into a recipe (a list
of one-key steps, method: {argument: value}) with recipe_steps(), and the Go
engine reads it with the same names. Arguments left at their defaults are
left out. Images that share a prefix share the same leading steps, so they
share layers.

Validation that Modal does when a method is called is done here, with
Modal's messages; what Modal checks at build time is left to the engine.
What Modal resolves in the local Python process at build time (the modules
of add_local_python_source, a callable ignore=, a Secret.from_dotenv file, a
run_function's source and globals) is resolved when the recipe is written,
in the same process that imported the file.
"""

import base64
import contextlib
import dis
import functools
import importlib.util
import inspect
import os
import pickle
import sys
import types
from pathlib import Path, PurePosixPath

from . import _cloud, _state
from .exception import InvalidError, LocalFunctionError, ModuleNotMountable
from .file_pattern_matcher import NON_PYTHON_FILES, escape
from .gpu import GPUConfigRepr
from .gpu import to_string as gpu_string
from .secret import Secret
from .volume import CloudBucketMount, NetworkFileSystem, Volume

MAX_OBJECT_SIZE_BYTES = 2 * 1024 * 1024  # run_function's (args, kwargs), pickled
PICKLE_PROTOCOL = 4


class _AutoDockerIgnoreSentinel:
    """ignore=AUTO_DOCKERIGNORE: use the .dockerignore file found next to the
    Dockerfile or in the context directory."""

    def __repr__(self):
        return "modal.image.AUTO_DOCKERIGNORE"

    def __call__(self, _):
        raise NotImplementedError("This is only a placeholder. Do not call")


AUTO_DOCKERIGNORE = _AutoDockerIgnoreSentinel()


class _method:
    """An Image instance method. Called on the class (modal.Image.pip_install(...))
    it raises Modal's "Image has not been constructed yet" error."""

    def __init__(self, f):
        self._f = f
        functools.update_wrapper(self, f)

    def __get__(self, obj, owner=None):
        if obj is not None:
            return types.MethodType(self._f, obj)
        f = self._f

        @functools.wraps(f)
        def unbound(*args, **kwargs):
            if args and isinstance(args[0], Image):
                return f(*args, **kwargs)
            raise InvalidError(
                "Image has not been constructed yet. Use one of the static factory methods prior to calling "
                "%s like `modal.Image.debian_slim`, `modal.Image.from_registry`, or `modal.Image.micromamba`"
                % f.__name__
            )

        return unbound


def _flatten_str_args(function_name, arg_name, args):
    out = []
    for x in args:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, list) and all(isinstance(y, str) for y in x):
            out.extend(x)
        else:
            raise InvalidError("%s: %s must only contain strings" % (function_name, arg_name))
    return out


def _check_python_version(name, value):
    if value is None:
        return
    if isinstance(value, float):
        raise TypeError("The `%s` argument should be a string, not a float." % name)
    if not isinstance(value, str):
        raise InvalidError("Python version must be specified as a string, not %s" % type(value).__name__)


def _check_secrets(secrets):
    if secrets is None:
        return []
    if isinstance(secrets, Secret) or isinstance(secrets, (str, bytes)):
        raise InvalidError("All secrets of an Image need to be modal.Secret instances.")
    try:
        out = list(secrets)
    except TypeError:
        raise InvalidError("All secrets of an Image need to be modal.Secret instances.") from None
    if not all(isinstance(s, Secret) for s in out):
        raise InvalidError("All secrets of an Image need to be modal.Secret instances.")
    return out


def _check_env(env):
    """The build-time env= variables (None values dropped), validated as
    Modal's Secret.from_dict(env) does."""
    if not env:
        return {}
    return dict(Secret.from_dict(env)._fields["values"])


def _path(p):
    return os.fspath(p)


def _check_str_list(value, message):
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise InvalidError(message)
    return list(value)


def _check_ignore(ignore):
    """Validates an ignore= value when the method is called."""
    if ignore is AUTO_DOCKERIGNORE or ignore is None or callable(ignore) or isinstance(ignore, str):
        return ignore
    try:
        patterns = list(ignore)
    except TypeError:
        raise InvalidError("ignore must be a sequence of patterns or a callable, not %s" % type(ignore).__name__)
    if not all(isinstance(p, str) for p in patterns):
        raise InvalidError("ignore patterns must be strings")
    return patterns


def _check_volumes(volumes, method):
    out = {}
    for path, vol in (volumes or {}).items():
        if not isinstance(path, (str, PurePosixPath)):
            raise InvalidError("%s: volume mount paths must be strings, not %s" % (method, type(path).__name__))
        if method == "run_commands" and not isinstance(vol, (Volume, str, os.PathLike)):
            raise InvalidError("Image.run_commands only supports volumes that are modal.Volume")
        if not isinstance(vol, (Volume, CloudBucketMount, str, os.PathLike)):
            raise InvalidError(
                "%s: the volume at %s must be a modal.Volume (or, in snapbuild, a host directory path), not %s"
                % (method, path, type(vol).__name__)
            )
        out[str(path)] = vol
    return out


class Image:
    """A container image definition (modal.Image), recorded for snapbuild.

    Do not construct this class directly; instead use one of its static
    factory methods, such as `modal.Image.debian_slim`,
    `modal.Image.from_registry`, or `modal.Image.micromamba`.
    """

    def __init__(self, parent, method, args, force_build=False):
        self._parent = parent
        self._method = method
        self._args = args
        # As Modal: the value later steps combine with their own force_build.
        self.force_build = bool(force_build)
        self.inside_exceptions = []

    def __repr__(self):
        chain, img = [], self
        while img is not None:
            chain.append(img._method)
            img = img._parent
        return "modal.Image(%s)" % ".".join(reversed(chain))

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(
            "modal.Image has no attribute %r in snapbuild's modal (which has Modal 1.x's Image methods; "
            "methods removed from Modal, such as copy_local_dir, are not there either)" % name
        )

    def _child(self, method, args, force_build=False):
        return Image(self, method, args, force_build)

    def _options(self, args, force_build, env=None, secrets=None, gpu=None):
        return _step_options(args, self.force_build or force_build, env, secrets, gpu)

    @property
    def object_id(self):
        """None: snapbuild does not deploy images to Modal (name them with `snapbuild build -t`)."""
        return None

    @property
    def is_hydrated(self):
        return False

    def hydrate(self, client=None):
        return self

    # ----- base images -----

    @staticmethod
    def debian_slim(python_version=None, force_build=False):
        """Default image, based on the official `python` Docker images."""
        _check_python_version("python_version", python_version)
        args = {}
        if python_version is not None:
            args["python_version"] = python_version
        if force_build:
            args["force_build"] = True
        return Image(None, "debian_slim", args, force_build)

    @staticmethod
    def micromamba(python_version=None, force_build=False):
        """A Micromamba base image."""
        _check_python_version("python_version", python_version)
        args = {}
        if python_version is not None:
            args["python_version"] = python_version
        if force_build:
            args["force_build"] = True
        return Image(None, "micromamba", args, force_build)

    @staticmethod
    def from_registry(tag, secret=None, *, setup_dockerfile_commands=[], force_build=False, add_python=None, **kwargs):  # noqa: B006
        """Build an image from a public or private image registry, such as Docker Hub."""
        return Image._registry("from_registry", tag, secret, setup_dockerfile_commands, force_build, add_python, kwargs)

    @staticmethod
    def from_aws_ecr(tag, secret=None, *, setup_dockerfile_commands=[], force_build=False, add_python=None, **kwargs):  # noqa: B006
        """Build an image from a private image in AWS Elastic Container Registry (ECR)."""
        return Image._registry("from_aws_ecr", tag, secret, setup_dockerfile_commands, force_build, add_python, kwargs)

    @staticmethod
    def from_gcp_artifact_registry(
        tag, secret=None, *, setup_dockerfile_commands=[], force_build=False, add_python=None, **kwargs  # noqa: B006
    ):
        """Build an image from a private image in Google Cloud Platform (GCP) Artifact Registry."""
        return Image._registry(
            "from_gcp_artifact_registry", tag, secret, setup_dockerfile_commands, force_build, add_python, kwargs
        )

    @staticmethod
    def _registry(method, tag, secret, setup_dockerfile_commands, force_build, add_python, kwargs):
        if "secrets" in kwargs:
            raise TypeError("Passing a list of 'secrets' is not supported; use the singular 'secret' argument.")
        for k in kwargs:
            raise TypeError("%s() got an unexpected keyword argument '%s'" % (method, k))
        if not isinstance(tag, str):
            raise InvalidError("%s: tag must be a string, not %s" % (method, type(tag).__name__))
        if secret is not None and not isinstance(secret, Secret):
            raise InvalidError("All secrets of an Image need to be modal.Secret instances.")
        _check_python_version("add_python", add_python)
        args = {"tag": tag}
        if secret is not None:
            args["secret"] = secret
        cmds = list(setup_dockerfile_commands or [])
        if not all(isinstance(c, str) for c in cmds):
            raise InvalidError("%s: setup_dockerfile_commands must only contain strings" % method)
        if cmds:
            args["setup_dockerfile_commands"] = cmds
        if add_python is not None:
            args["add_python"] = add_python
        if force_build:
            args["force_build"] = True
        return Image(None, method, args, force_build)

    @staticmethod
    def from_dockerfile(
        path,
        *,
        force_build=False,
        context_dir=None,
        env=None,
        secrets=None,
        gpu=None,
        add_python=None,
        build_args={},  # noqa: B006
        ignore=AUTO_DOCKERIGNORE,
    ):
        """Build an image from a local Dockerfile."""
        _check_python_version("add_python", add_python)
        args = {"path": _path(path)}
        if context_dir is not None:
            args["context_dir"] = _path(context_dir)
        ignore = _check_ignore(ignore)
        if ignore is not AUTO_DOCKERIGNORE:
            args["ignore"] = ignore
        if build_args:
            args["build_args"] = _check_build_args(build_args)
        if add_python is not None:
            args["add_python"] = add_python
        _step_options(args, force_build, env, secrets, gpu)
        return Image(None, "from_dockerfile", args, force_build)

    @staticmethod
    def from_id(image_id, client=None):
        """An image from its ID (for snapbuild: an im-... ID or a name given by an earlier build)."""
        if not isinstance(image_id, str) or not image_id:
            raise InvalidError("Image.from_id: image_id must be a non-empty string, not %r" % (image_id,))
        return Image(None, "from_id", {"image_id": image_id})

    @staticmethod
    def from_name(name, *, environment_name=None, client=None):
        """A named image. snapbuild has no published images: the name is one
        given by an earlier `snapbuild build`, used as from_id."""
        if not isinstance(name, str) or not name:
            raise InvalidError("Image.from_name: name must be a non-empty string")
        return Image(None, "from_id", {"image_id": name})

    @staticmethod
    def from_scratch(force_build=False):
        """An empty image (FROM scratch); it cannot run Python functions."""
        return Image(None, "from_scratch", {}, force_build)

    # ----- package installers -----

    @_method
    def pip_install(
        self,
        *packages,
        find_links=None,
        index_url=None,
        extra_index_url=None,
        pre=False,
        extra_options="",
        force_build=False,
        env=None,
        secrets=None,
        gpu=None,
    ):
        """Install a list of Python packages using pip."""
        pkgs = _flatten_str_args("pip_install", "packages", packages)
        if not pkgs:
            return self
        if any(p.startswith("-") for p in pkgs):
            raise InvalidError(
                "Package list for `Image.pip_install` cannot contain other arguments;"
                " try the `extra_options` parameter instead."
            )
        args = {"packages": pkgs}
        _pip_flags(args, find_links, index_url, extra_index_url, pre, extra_options)
        fb = self._options(args, force_build, env, secrets, gpu)
        return self._child("pip_install", args, fb)

    @_method
    def pip_install_private_repos(
        self,
        *repositories,
        git_user,
        find_links=None,
        index_url=None,
        extra_index_url=None,
        pre=False,
        extra_options="",
        gpu=None,
        env=None,
        secrets=None,
        force_build=False,
    ):
        """Install a list of Python packages from private git repositories using pip."""
        if not secrets:
            raise InvalidError(
                "No secrets provided to function. Installing private packages requires tokens to be passed via"
                " modal.Secret objects."
            )
        invalid = [r for r in repositories if not isinstance(r, str) or r.split("/")[0] not in ("github.com", "gitlab.com")]
        if invalid:
            raise InvalidError(
                "%d out of %d given repository refs are invalid. Invalid refs: %s. "
                % (len(invalid), len(repositories), invalid)
            )
        args = {"repositories": list(repositories), "git_user": git_user}
        _pip_flags(args, find_links, index_url, extra_index_url, pre, extra_options)
        fb = self._options(args, force_build, env, secrets, gpu)
        return self._child("pip_install_private_repos", args, fb)

    @_method
    def pip_install_from_requirements(
        self,
        requirements_txt,
        find_links=None,
        *,
        index_url=None,
        extra_index_url=None,
        pre=False,
        extra_options="",
        force_build=False,
        env=None,
        secrets=None,
        gpu=None,
    ):
        """Install a list of Python packages from a local `requirements.txt` file."""
        args = {"requirements_txt": _path(requirements_txt)}
        _pip_flags(args, find_links, index_url, extra_index_url, pre, extra_options)
        fb = self._options(args, force_build, env, secrets, gpu)
        return self._child("pip_install_from_requirements", args, fb)

    @_method
    def pip_install_from_pyproject(
        self,
        pyproject_toml,
        optional_dependencies=[],  # noqa: B006
        *,
        find_links=None,
        index_url=None,
        extra_index_url=None,
        pre=False,
        extra_options="",
        force_build=False,
        env=None,
        secrets=None,
        gpu=None,
    ):
        """Install dependencies specified by a local `pyproject.toml` file."""
        args = {"pyproject_toml": _path(pyproject_toml)}
        if optional_dependencies:
            args["optional_dependencies"] = list(optional_dependencies)
        _pip_flags(args, find_links, index_url, extra_index_url, pre, extra_options)
        fb = self._options(args, force_build, env, secrets, gpu)
        return self._child("pip_install_from_pyproject", args, fb)

    @_method
    def uv_pip_install(
        self,
        *packages,
        requirements=None,
        find_links=None,
        index_url=None,
        extra_index_url=None,
        pre=False,
        extra_options="",
        force_build=False,
        uv_version=None,
        env=None,
        secrets=None,
        gpu=None,
    ):
        """Install a list of Python packages using uv pip install."""
        pkgs = _flatten_str_args("uv_pip_install", "packages", packages)
        if requirements is not None and not isinstance(requirements, list):
            raise InvalidError("requirements must be None or a list of strings")
        if not pkgs and not requirements:
            return self
        if any(p.startswith("-") for p in pkgs):
            raise InvalidError(
                "Package list for `Image.uv_pip_install` cannot contain other arguments;"
                " try the `extra_options` parameter instead."
            )
        args = {}
        if pkgs:
            args["packages"] = pkgs
        if requirements:
            args["requirements"] = [_path(r) for r in requirements]
        _pip_flags(args, find_links, index_url, extra_index_url, pre, extra_options)
        if uv_version is not None:
            args["uv_version"] = uv_version
        fb = self._options(args, force_build, env, secrets, gpu)
        return self._child("uv_pip_install", args, fb)

    @_method
    def uv_sync(
        self,
        uv_project_dir="./",
        *,
        force_build=False,
        groups=None,
        extras=None,
        frozen=True,
        extra_options="",
        uv_version=None,
        env=None,
        secrets=None,
        gpu=None,
    ):
        """Creates a virtual environment with the dependencies in a uv managed project with `uv sync`."""
        for name, value in (("groups", groups), ("extras", extras)):
            if value is not None and not isinstance(value, list):
                raise InvalidError("%s must be None or a list of strings" % name)
        args = {}
        if _path(uv_project_dir) != "./":
            args["uv_project_dir"] = _path(uv_project_dir)
        if groups:
            args["groups"] = list(groups)
        if extras:
            args["extras"] = list(extras)
        if not frozen:
            args["frozen"] = False
        if extra_options:
            args["extra_options"] = extra_options
        if uv_version is not None:
            args["uv_version"] = uv_version
        fb = self._options(args, force_build, env, secrets, gpu)
        return self._child("uv_sync", args, fb)

    @_method
    def poetry_install_from_file(
        self,
        poetry_pyproject_toml,
        poetry_lockfile=None,
        *,
        ignore_lockfile=False,
        force_build=False,
        with_=[],  # noqa: B006
        without=[],  # noqa: B006
        only=[],  # noqa: B006
        poetry_version="latest",
        old_installer=False,
        env=None,
        secrets=None,
        gpu=None,
    ):
        """Install poetry *dependencies* specified by a local `pyproject.toml` file."""
        args = {"poetry_pyproject_toml": _path(poetry_pyproject_toml)}
        if poetry_lockfile is not None:
            args["poetry_lockfile"] = _path(poetry_lockfile)
        if ignore_lockfile:
            args["ignore_lockfile"] = True
        for name, value in (("with_", with_), ("without", without), ("only", only)):
            if value:
                args[name] = list(value)
        if poetry_version != "latest":
            args["poetry_version"] = poetry_version
        if old_installer:
            args["old_installer"] = True
        fb = self._options(args, force_build, env, secrets, gpu)
        return self._child("poetry_install_from_file", args, fb)

    @_method
    def micromamba_install(
        self,
        *packages,
        spec_file=None,
        channels=[],  # noqa: B006
        force_build=False,
        env=None,
        secrets=None,
        gpu=None,
    ):
        """Install a list of additional packages using micromamba."""
        pkgs = _flatten_str_args("micromamba_install", "packages", packages)
        if not pkgs and spec_file is None:
            return self
        args = {}
        if pkgs:
            args["packages"] = pkgs
        if spec_file is not None:
            args["spec_file"] = _path(spec_file)
        if channels:
            args["channels"] = list(channels)
        fb = self._options(args, force_build, env, secrets, gpu)
        return self._child("micromamba_install", args, fb)

    @_method
    def apt_install(self, *packages, force_build=False, env=None, secrets=None, gpu=None):
        """Install a list of Debian packages using `apt`."""
        pkgs = _flatten_str_args("apt_install", "packages", packages)
        if not pkgs:
            return self
        args = {"packages": pkgs}
        fb = self._options(args, force_build, env, secrets, gpu)
        return self._child("apt_install", args, fb)

    # ----- commands and configuration -----

    @_method
    def run_commands(self, *commands, env=None, secrets=None, volumes=None, gpu=None, force_build=False):
        """Extend an image with a list of shell commands to run."""
        cmds = _flatten_str_args("run_commands", "commands", commands)
        if not cmds:
            return self
        args = {"commands": cmds}
        vols = _check_volumes(volumes, "run_commands")
        if vols:
            args["volumes"] = vols
        fb = self._options(args, force_build, env, secrets, gpu)
        return self._child("run_commands", args, fb)

    @_method
    def dockerfile_commands(
        self,
        *dockerfile_commands,
        context_files={},  # noqa: B006
        env=None,
        secrets=None,
        gpu=None,
        context_dir=None,
        force_build=False,
        ignore=AUTO_DOCKERIGNORE,
        build_args={},  # noqa: B006
    ):
        """Extend an image with arbitrary Dockerfile-like commands."""
        cmds = _flatten_str_args("dockerfile_commands", "dockerfile_commands", dockerfile_commands)
        if not cmds:
            return self
        args = {"commands": cmds}
        if context_files:
            args["context_files"] = {str(k): _path(v) for k, v in context_files.items()}
        if context_dir is not None:
            args["context_dir"] = _path(context_dir)
        ignore = _check_ignore(ignore)
        if ignore is not AUTO_DOCKERIGNORE:
            args["ignore"] = ignore
        if build_args:
            args["build_args"] = _check_build_args(build_args)
        fb = self._options(args, force_build, env, secrets, gpu)
        return self._child("dockerfile_commands", args, fb)

    @_method
    def env(self, vars):
        """Sets the environment variables in an Image."""
        if not isinstance(vars, dict):
            raise InvalidError("Image.env takes a dict of variable names to string values")
        bad = [k for k, v in vars.items() if not isinstance(v, str)]
        if bad:
            raise InvalidError("Image ENV variables must be strings. Invalid keys: %s" % bad)
        return self._child("env", {"vars": {str(k): v for k, v in vars.items()}})

    @_method
    def workdir(self, path):
        """Set the working directory for subsequent image build steps and function execution."""
        return self._child("workdir", {"path": str(path)})

    @_method
    def entrypoint(self, entrypoint_commands):
        """Set the ENTRYPOINT for the image."""
        if not isinstance(entrypoint_commands, list) or not all(isinstance(x, str) for x in entrypoint_commands):
            raise InvalidError("entrypoint_commands must be a list of strings.")
        # Modal emits it with dockerfile_commands: it inherits force_build.
        return self._child("entrypoint", {"entrypoint_commands": list(entrypoint_commands)}, self.force_build)

    @_method
    def shell(self, shell_commands):
        """Overwrite default shell for the image."""
        if not isinstance(shell_commands, list) or not all(isinstance(x, str) for x in shell_commands):
            raise InvalidError("shell_commands must be a list of strings.")
        return self._child("shell", {"shell_commands": list(shell_commands)}, self.force_build)

    @_method
    def cmd(self, cmd):
        """Set the default command (`CMD`) to run when a container is started."""
        if not isinstance(cmd, list) or not all(isinstance(x, str) for x in cmd):
            raise InvalidError("Image CMD must be a list of strings.")
        return self._child("cmd", {"cmd": list(cmd)}, self.force_build)

    # ----- local files -----

    @_method
    def add_local_file(self, local_path, remote_path, *, copy=False):
        """Adds a local file to the image at `remote_path` within the container."""
        if not PurePosixPath(remote_path).is_absolute():
            raise InvalidError("image.add_local_file() currently only supports absolute remote_path values")
        args = {"local_path": _path(local_path), "remote_path": str(remote_path)}
        if copy:
            args["copy"] = True
        return self._child("add_local_file", args)

    @_method
    def add_local_dir(self, local_path, remote_path, *, copy=False, ignore=[]):  # noqa: B006
        """Adds a local directory's content to the image at `remote_path` within the container."""
        if not PurePosixPath(remote_path).is_absolute():
            raise InvalidError("image.add_local_dir() currently only supports absolute remote_path values")
        args = {"local_path": _path(local_path), "remote_path": str(remote_path)}
        if copy:
            args["copy"] = True
        ignore = _check_ignore(ignore)
        if ignore is not None and not (isinstance(ignore, list) and not ignore):
            args["ignore"] = ignore
        return self._child("add_local_dir", args)

    @_method
    def add_local_python_source(self, *modules, copy=False, ignore=NON_PYTHON_FILES):
        """Adds locally available Python packages/modules to containers (under /root).

        The modules are found, as Modal does, with importlib.util.find_spec in
        this Python process when the recipe is written: each package directory
        becomes an add_local_dir step to /root/<dotted/name>, a single-file
        module an add_local_file step to /root/<parents>/<file>.py.
        """
        if not all(isinstance(m, str) for m in modules):
            raise InvalidError("Local Python modules must be specified as strings.")
        if not modules:
            return self
        args = {"modules": list(modules)}
        if copy:
            args["copy"] = True
        args["ignore"] = NON_PYTHON_FILES if ignore is None else _check_ignore(ignore)
        return self._child("add_local_python_source", args)

    # ----- build functions -----

    @_method
    def run_function(
        self,
        raw_f,
        *,
        env=None,
        secrets=None,
        volumes={},  # noqa: B006
        network_file_systems={},  # noqa: B006
        gpu=None,
        cpu=None,
        memory=None,
        timeout=60 * 60,
        cloud=None,
        region=None,
        force_build=False,
        args=(),
        kwargs={},  # noqa: B006
        include_source=True,
    ):
        """Run user-defined function `raw_f` as an image build step.

        The function runs once in a container of this image (snapbuild's
        runner imports its module from /root, or unpickles it when it was
        defined in an interactive session); what it writes becomes a layer.
        """
        if not callable(raw_f):
            raise InvalidError("Argument to Image.run_function must be a function, not %s." % type(raw_f).__name__)
        raw = _raw_function(raw_f)
        if getattr(raw, "__name__", None) == "<lambda>":
            raise InvalidError("Image.run_function does not support lambda functions.")
        qualname = getattr(raw, "__qualname__", getattr(raw, "__name__", ""))
        if "<locals>" in qualname and not _pickled(raw):
            raise LocalFunctionError(
                "Modal can only import functions defined in global scope unless they are `serialized=True`"
            )
        if timeout is None:
            raise InvalidError("The `timeout` parameter cannot be set to None: https://modal.com/docs/guide/timeouts")
        secrets = _check_secrets(secrets)
        env_vars = _check_env(env)
        gpus = gpu if isinstance(gpu, list) else [gpu]
        gpu_strings = [gpu_string(g) for g in gpus]
        fn_input = None
        if len(args) + len(kwargs) > 0:
            fn_input = _serialize_input((args, kwargs))
            if len(fn_input) > MAX_OBJECT_SIZE_BYTES:
                raise InvalidError(
                    "Arguments to `run_function` are too large (%d bytes). Maximum size is %d bytes."
                    % (len(fn_input), MAX_OBJECT_SIZE_BYTES)
                )
        rf = {
            "raw_f": raw_f,
            "raw": raw,
            "secrets": secrets,
            "secrets_arg": secrets if secrets else [],
            "env": env_vars,
            "env_arg": env,
            "volumes": _check_volumes(volumes, "run_function"),
            "volumes_arg": volumes,
            "network_file_systems": dict(network_file_systems or {}),
            "gpu": gpu,
            "gpu_strings": gpu_strings,
            "timeout": timeout,
            "cloud": cloud,
            "region": region,
            "input": fn_input,
            "include_source": include_source,
        }
        fb = self.force_build or force_build
        rf["force_build"] = fb
        return self._child("run_function", rf, fb)

    # ----- the rest of Modal's Image API -----

    @_method
    def pipe(self, func, *args, **kwargs):
        """Returns func(self, *args, **kwargs): apply a function that builds on an image."""
        return func(self, *args, **kwargs)

    @_method
    def build(self, app):
        """Eagerly build an image. In snapbuild, a no-op inside `app.run()`: images are
        built by `snapbuild build`."""
        if getattr(app, "app_id", None) is None:
            raise InvalidError("App has not been initialized yet. Use the context manager `app.run()` or `App.lookup`")
        return self

    @_method
    @contextlib.contextmanager
    def imports(self):
        """Used to import packages in global scope that are only available when running remotely.

        Exceptions in the block are caught, as with Modal when the image is
        not the one running: ImportErrors silently, others with a warning.
        """
        try:
            yield
        except Exception as exc:
            self.inside_exceptions.append(exc)
            if not isinstance(exc, ImportError):
                _cloud.warn("Warning: caught a non-ImportError exception in an `imports()` block: %r" % (exc,))


def _step_options(args, force_build, env=None, secrets=None, gpu=None):
    """Adds the per-step options (secrets, env, gpu, force_build) to args and
    returns force_build (the step's effective value: Modal combines a step's
    force_build with its parent's)."""
    secrets = _check_secrets(secrets)
    if secrets:
        args["secrets"] = secrets
    env = _check_env(env)
    if env:
        args["env"] = env
    g = gpu_string(gpu)
    if g is not None:
        args["gpu"] = g
    if force_build:
        args["force_build"] = True
    return bool(force_build)


def _pip_flags(args, find_links, index_url, extra_index_url, pre, extra_options):
    if find_links is not None:
        args["find_links"] = find_links
    if index_url is not None:
        args["index_url"] = index_url
    if extra_index_url is not None:
        args["extra_index_url"] = extra_index_url
    if pre:
        args["pre"] = True
    if extra_options:
        args["extra_options"] = extra_options


def _check_build_args(build_args):
    if not isinstance(build_args, dict) or not all(isinstance(v, str) for v in build_args.values()):
        raise InvalidError("build_args must be a dict of strings")
    return {str(k): v for k, v in build_args.items()}


# ----- run_function helpers -----


def _raw_function(f):
    """The plain function of f: a modal Function (app.function) is unwrapped
    with get_raw_f(), as Modal's container does."""
    while hasattr(f, "get_raw_f") and callable(f.get_raw_f):
        raw = f.get_raw_f()
        if raw is f:
            break
        f = raw
    return f


def _pickled(raw):
    """Whether a function can only be sent pickled: it lives in the __main__
    of another program (an interactive session, a notebook), not in the file
    being built."""
    if getattr(raw, "__module__", None) != "__main__":
        return False
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return not (main_file and _state.build_file and os.path.abspath(main_file) == _state.build_file)


def _serialize(obj):
    """Pickles obj as Modal does (cloudpickle, protocol 4), with plain pickle
    when cloudpickle is not installed."""
    cp = _state.cloudpickle()
    if cp is not None:
        return cp.dumps(obj, protocol=PICKLE_PROTOCOL)
    return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)


def _serialize_input(value):
    """run_function's (args, kwargs): plain pickle (protocol 4), which the
    runner loads without cloudpickle; cloudpickle only for what pickle cannot
    handle (then the image needs cloudpickle too)."""
    try:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except Exception as exc:  # PicklingError, TypeError, AttributeError
        cp = _state.cloudpickle()
        if cp is None:
            raise InvalidError(
                "snapbuild: the args/kwargs of run_function cannot be pickled (%s); "
                "install cloudpickle to send such values" % exc
            ) from None
        return cp.dumps(value, protocol=PICKLE_PROTOCOL)


def _code_globals(code, out):
    """The global names a code object (and the code nested in it) uses, in order."""
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL"):
            out.setdefault(ins.argval, None)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_globals(const, out)
    return out


def _function_globals(raw):
    """The pickled module globals the function refers to (Modal's
    BuildFunction.globals): plain functions are left out, and values that
    cannot be pickled are skipped with Modal's warning. b"" when none."""
    func = raw
    while hasattr(func, "__wrapped__") and func is not func.__wrapped__:
        func = func.__wrapped__
    code = getattr(func, "__code__", None)
    if code is None:
        return b""
    names = _code_globals(code, {})
    g = getattr(func, "__globals__", {})
    have_cp = _state.cloudpickle() is not None
    kept = {}
    for k in names:
        if k not in g:
            continue
        v = g[k]
        if inspect.isfunction(v):
            continue
        if isinstance(v, types.ModuleType) and not have_cp:
            continue  # cloudpickle would pickle it by name: no content to key on
        if type(v).__module__.startswith("modal.") and type(v).__name__ in ("Image", "Function", "Cls", "App"):
            continue  # Modal pickles its objects by ID, not by content
        try:
            _serialize(v)
        except Exception:
            _state.warn(
                "Skipping unserializable global variable %s for %s. Changes to this variable won't invalidate the image."
                % (k, getattr(raw, "__qualname__", raw))
            )
            continue
        kept[k] = v
    return _serialize(kept) if kept else b""


def _function_location(raw):
    """(module, qualname, source): how the build container imports the
    function, and the file or top-level package directory to mount at /root."""
    qualname = raw.__qualname__
    modname = raw.__module__
    if modname == "__main__":
        # Only reached for the file being built run as a script.
        stem = os.path.splitext(os.path.basename(_state.build_file))[0]
        return stem, qualname, _state.build_file
    mod = sys.modules.get(modname)
    if mod is None:
        raise InvalidError("snapbuild: run_function: the module %s of %s is not imported" % (modname, qualname))
    pkg = getattr(mod, "__package__", None) or ""
    if pkg:
        top = sys.modules.get(pkg.split(".")[0])
        top_file = getattr(top, "__file__", None)
        if top_file:
            return modname, qualname, os.path.dirname(os.path.abspath(top_file))
        paths = list(getattr(top, "__path__", []))
        if not paths:
            raise InvalidError("snapbuild: run_function: cannot find the directory of package %s" % pkg.split(".")[0])
        return modname, qualname, os.path.abspath(paths[0])
    mod_file = getattr(mod, "__file__", None)
    if not mod_file:
        raise InvalidError("snapbuild: run_function: the module %s of %s has no source file" % (modname, qualname))
    return modname, qualname, os.path.abspath(mod_file)


def _definition(rf):
    """Modal's BuildFunction.definition: the function's source, a newline,
    and the repr of its build arguments (secrets as reprs, keys only for
    env)."""
    raw = rf["raw"]
    try:
        src = inspect.getsource(raw)
    except (OSError, TypeError) as exc:
        raise InvalidError(
            "snapbuild: cannot read the source of %s for run_function (%s)" % (getattr(raw, "__qualname__", raw), exc)
        ) from None
    secrets = rf["secrets_arg"]
    if rf["env_arg"]:
        secrets = [*secrets, Secret.from_dict(rf["env_arg"])]
    gpus = rf["gpu"] if isinstance(rf["gpu"], list) else [rf["gpu"]]
    build_args = {
        "secrets": repr(secrets),
        "gpu_config": repr([GPUConfigRepr(g) for g in gpus]),
        "network_file_systems": repr(rf["network_file_systems"]),
    }
    if rf["volumes_arg"]:
        build_args["volumes"] = repr(rf["volumes_arg"])
    if rf["cloud"] or rf["region"]:
        build_args["cloud"] = repr(rf["cloud"])
        regions = [rf["region"]] if isinstance(rf["region"], str) else list(rf["region"] or [])
        build_args["scheduler_placement"] = repr(regions)
    return "%s\n%r" % (src, build_args)


def _b64(data):
    return base64.b64encode(data).decode("ascii")


# ----- writing recipes -----


def _volume_form(vol):
    if isinstance(vol, (Volume, CloudBucketMount)):
        return vol.recipe_form()
    return os.fspath(vol)  # snapbuild: a host directory


def _walk_ignored(root, predicate):
    """The files under root that a callable ignore= leaves out, as exact-path
    patterns, sorted. The callable gets each file's path relative to root,
    as Modal gives it; directory symlinks are not followed."""
    base = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if not os.path.isdir(base):
        raise FileNotFoundError("local dir %s does not exist" % base)
    out = []
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), base)
            if predicate(Path(rel)):
                out.append(escape(rel.replace(os.sep, "/")))
    return sorted(out)


def ignore_form(ignore, root):
    """The recipe form of an ignore= value: a list of patterns,
    {patterns: [...], invert: true} or {from_file: PATH, invert: ...}; a
    callable is evaluated on the files under root."""
    if isinstance(ignore, str):
        return [ignore]
    if isinstance(ignore, list):
        return list(ignore)
    form = getattr(ignore, "recipe_form", None)
    if form is not None:
        f = form()
        if f is not None:
            return f
    if callable(ignore):
        return _walk_ignored(root, ignore)
    raise InvalidError("ignore must be a sequence of patterns or a callable, not %s" % type(ignore).__name__)


def _generic_step(img):
    out = {}
    root = None
    if img._method == "add_local_dir":
        root = img._args["local_path"]
    elif img._method in ("dockerfile_commands", "from_dockerfile"):
        root = img._args.get("context_dir") or os.getcwd()
    for k, v in img._args.items():
        if k == "secrets":
            v = [s.recipe_form() for s in v]
        elif k == "secret":
            v = v.recipe_form()
        elif k == "ignore":
            v = ignore_form(v, root)
        elif k == "volumes":
            v = {p: _volume_form(vol) for p, vol in v.items()}
        out[k] = v
    return [{img._method: out}]


def _python_source_steps(img):
    """add_local_python_source, resolved in this process (Modal's
    importlib.util.find_spec): one add_local_dir per package directory, one
    add_local_file per single-file module."""
    args = img._args
    copy = args.get("copy", False)
    ignore = args["ignore"]
    steps = []
    for name in args["modules"]:
        try:
            spec = importlib.util.find_spec(name)
        except Exception as exc:
            raise ModuleNotMountable("Module %s could not be found: %s" % (name, exc)) from None
        if spec is None:
            raise ModuleNotMountable("Module %s has no spec - might not be installed?" % name)
        remote = "/root/" + name.replace(".", "/")
        found = []
        if spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                if os.path.isdir(loc):
                    a = {"local_path": os.path.abspath(loc), "remote_path": remote}
                    if copy:
                        a["copy"] = True
                    a["ignore"] = ignore_form(ignore, loc)
                    found.append({"add_local_dir": a})
        elif spec.origin and spec.origin.endswith(".py"):
            a = {
                "local_path": os.path.abspath(spec.origin),
                "remote_path": posix_dirname(remote) + "/" + os.path.basename(spec.origin),
            }
            if copy:
                a["copy"] = True
            found.append({"add_local_file": a})
        elif spec.origin and spec.origin not in ("built-in", "frozen"):
            raise ModuleNotMountable(
                "Module %s can't be mounted because it contains binary file(s): %s" % (name, spec.origin)
            )
        if not found:
            raise ModuleNotMountable("Module %s has no mountable paths" % name)
        steps.extend(found)
    return steps


def posix_dirname(p):
    return p.rsplit("/", 1)[0] or "/"


def _run_function_step(img):
    rf = img._args
    raw = rf["raw"]
    out = {}
    if _pickled(raw):
        cp = _state.cloudpickle()
        if cp is None:
            raise InvalidError(
                "snapbuild: run_function(%s): the function is defined in __main__ of an interactive session "
                "and can only be sent pickled, which needs cloudpickle (pip install cloudpickle, "
                "or apt-get install python3-cloudpickle)" % raw.__qualname__
            )
        out["pickled"] = _b64(cp.dumps(raw, protocol=PICKLE_PROTOCOL))
    else:
        module, qualname, source = _function_location(raw)
        out["module"] = module
        out["function"] = qualname
        if rf["include_source"]:
            out["source"] = source
    out["definition"] = _definition(rf)
    g = _function_globals(raw)
    if g:
        out["globals"] = _b64(g)
    if rf["input"] is not None:
        out["input"] = _b64(rf["input"])
    if rf["network_file_systems"]:
        for nfs in rf["network_file_systems"].values():
            if isinstance(nfs, NetworkFileSystem):
                nfs.recipe_form()  # raises: not supported locally
        raise InvalidError("snapbuild: network_file_systems cannot be mounted in a local build; use a modal.Volume")
    if rf["secrets"]:
        out["secrets"] = [s.recipe_form() for s in rf["secrets"]]
    if rf["env"]:
        out["env"] = dict(rf["env"])
    if rf["volumes"]:
        out["volumes"] = {p: _volume_form(v) for p, v in rf["volumes"].items()}
    gpus = [g for g in rf["gpu_strings"] if g is not None]
    if isinstance(rf["gpu"], list):
        if gpus:
            out["gpu"] = gpus
    elif gpus:
        out["gpu"] = gpus[0]
    if rf["timeout"] != 60 * 60:
        out["timeout"] = rf["timeout"]
    if rf["force_build"]:
        out["force_build"] = True
    return [{"run_function": out}]


def _own_steps(img):
    if img._method == "add_local_python_source":
        return _python_source_steps(img)
    if img._method == "run_function":
        return _run_function_step(img)
    return _generic_step(img)


def recipe_steps(image, memo=None):
    """The recipe of an image: its steps, oldest first, as JSON-ready values.

    memo (a dict) lets images that share a prefix share its resolution."""
    if memo is None:
        memo = {}
    chain = []
    img = image
    while img is not None and memo.get(id(img), (None,))[0] is not img:
        chain.append(img)
        img = img._parent
    steps = list(memo[id(img)][1]) if img is not None else []
    for img in reversed(chain):
        steps = steps + _own_steps(img)
        memo[id(img)] = (img, steps)
    return list(steps)
