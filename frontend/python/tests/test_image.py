"""modal.Image records every method into the recipe form the Go engine reads."""

import os
import tempfile
import unittest
import warnings
from pathlib import Path, PurePosixPath

import modal
from modal import FilePatternMatcher, Image, Secret
from modal._image import recipe_steps
from modal.exception import InvalidError


def steps(img):
    return recipe_steps(img)


def last(img):
    return recipe_steps(img)[-1]


class TestBases(unittest.TestCase):
    def test_debian_slim(self):
        self.assertEqual(steps(Image.debian_slim()), [{"debian_slim": {}}])
        self.assertEqual(steps(Image.debian_slim("3.11")), [{"debian_slim": {"python_version": "3.11"}}])
        self.assertEqual(
            steps(Image.debian_slim(python_version="3.13", force_build=True)),
            [{"debian_slim": {"python_version": "3.13", "force_build": True}}],
        )

    def test_debian_slim_any_series_recorded(self):
        # Whether a series can be had depends on the site (a Docker Hub mirror,
        # a python-build-standalone archive): the Go builder decides at build
        # time, so the front end records every version as given.
        for v in ("3.10", "3.12", "3.14", "3.12.3", "3.9"):
            self.assertEqual(steps(Image.debian_slim(v)), [{"debian_slim": {"python_version": v}}])

    def test_python_version_float(self):
        with self.assertRaisesRegex(TypeError, r"^The `python_version` argument should be a string, not a float\.$"):
            Image.debian_slim(3.10)
        with self.assertRaisesRegex(InvalidError, "Python version must be specified as a string, not int"):
            Image.micromamba(3)

    def test_micromamba(self):
        img = Image.micromamba("3.12").micromamba_install("numpy", ["scipy"], spec_file="env.yml", channels=["conda-forge"])
        self.assertEqual(
            steps(img),
            [
                {"micromamba": {"python_version": "3.12"}},
                {"micromamba_install": {"packages": ["numpy", "scipy"], "spec_file": "env.yml", "channels": ["conda-forge"]}},
            ],
        )
        self.assertIs(img.micromamba_install(), img)

    def test_registries(self):
        s = Secret.from_name("creds")
        for method in ("from_registry", "from_aws_ecr", "from_gcp_artifact_registry"):
            img = getattr(Image, method)(
                "ubuntu:22.04", secret=s, setup_dockerfile_commands=["RUN true"], add_python="3.11", force_build=True
            )
            self.assertEqual(
                steps(img),
                [
                    {
                        method: {
                            "tag": "ubuntu:22.04",
                            "secret": {"from_name": "creds"},
                            "setup_dockerfile_commands": ["RUN true"],
                            "add_python": "3.11",
                            "force_build": True,
                        }
                    }
                ],
            )
            self.assertEqual(steps(getattr(Image, method)("alpine")), [{method: {"tag": "alpine"}}])
            with self.assertRaisesRegex(TypeError, "use the singular 'secret' argument"):
                getattr(Image, method)("alpine", secrets=[s])

    def test_from_dockerfile(self):
        img = Image.from_dockerfile(
            Path("ctx/Dockerfile"),
            context_dir="ctx",
            build_args={"V": "1"},
            ignore=["*.log"],
            secrets=[Secret.from_dict({"K": "v"})],
            env={"E": "x", "N": None},
            gpu="t4",
            force_build=True,
        )
        self.assertEqual(
            steps(img),
            [
                {
                    "from_dockerfile": {
                        "path": "ctx/Dockerfile",
                        "context_dir": "ctx",
                        "ignore": ["*.log"],
                        "build_args": {"V": "1"},
                        "secrets": [{"from_dict": {"K": "v"}}],
                        "env": {"E": "x"},
                        "gpu": "t4",
                        "force_build": True,
                    }
                }
            ],
        )
        self.assertEqual(steps(Image.from_dockerfile("Dockerfile")), [{"from_dockerfile": {"path": "Dockerfile"}}])
        # ignore=[] is explicit: it replaces the .dockerignore lookup.
        self.assertEqual(
            steps(Image.from_dockerfile("Dockerfile", ignore=[])), [{"from_dockerfile": {"path": "Dockerfile", "ignore": []}}]
        )

    def test_from_id_scratch_name(self):
        self.assertEqual(steps(Image.from_id("im-123")), [{"from_id": {"image_id": "im-123"}}])
        self.assertEqual(steps(Image.from_name("base")), [{"from_id": {"image_id": "base"}}])
        self.assertEqual(steps(Image.from_scratch()), [{"from_scratch": {}}])
        with self.assertRaises(InvalidError):
            Image.from_id(None)

    def test_unconstructed(self):
        with self.assertRaisesRegex(
            InvalidError,
            r"^Image has not been constructed yet\. Use one of the static factory methods prior to calling "
            r"pip_install like `modal\.Image\.debian_slim`, `modal\.Image\.from_registry`, or `modal\.Image\.micromamba`$",
        ):
            Image.pip_install("x")
        # With an image as the first argument it is an ordinary call.
        self.assertEqual(last(Image.apt_install(Image.debian_slim(), "git")), {"apt_install": {"packages": ["git"]}})


class TestSteps(unittest.TestCase):
    def setUp(self):
        self.base = Image.debian_slim("3.11")

    def test_pip_install(self):
        img = self.base.pip_install(
            "a",
            ["b", "c>=1"],
            find_links="/wheels",
            index_url="http://127.0.0.1:1/simple",
            extra_index_url="http://x/simple",
            pre=True,
            extra_options="--no-deps",
            env={"PIP_X": "1"},
            secrets=[Secret.from_name("tok")],
            gpu="A100:2",
            force_build=True,
        )
        self.assertEqual(
            last(img),
            {
                "pip_install": {
                    "packages": ["a", "b", "c>=1"],
                    "find_links": "/wheels",
                    "index_url": "http://127.0.0.1:1/simple",
                    "extra_index_url": "http://x/simple",
                    "pre": True,
                    "extra_options": "--no-deps",
                    "secrets": [{"from_name": "tok"}],
                    "env": {"PIP_X": "1"},
                    "gpu": "A100:2",
                    "force_build": True,
                }
            },
        )
        # Defaults are left out.
        self.assertEqual(last(self.base.pip_install("a", pre=False, extra_options="")), {"pip_install": {"packages": ["a"]}})
        self.assertIs(self.base.pip_install(), self.base)
        self.assertIs(self.base.pip_install([]), self.base)

    def test_flatten_errors(self):
        with self.assertRaisesRegex(InvalidError, "^pip_install: packages must only contain strings$"):
            self.base.pip_install(("a",))
        with self.assertRaisesRegex(InvalidError, "^apt_install: packages must only contain strings$"):
            self.base.apt_install([["nested"]])
        with self.assertRaisesRegex(InvalidError, "^run_commands: commands must only contain strings$"):
            self.base.run_commands(1)
        with self.assertRaisesRegex(InvalidError, "cannot contain other arguments; try the `extra_options` parameter"):
            self.base.pip_install("-U", "x")
        with self.assertRaisesRegex(InvalidError, "`Image.uv_pip_install` cannot contain other arguments"):
            self.base.uv_pip_install("--pre")

    def test_requirements_pyproject(self):
        self.assertEqual(
            last(self.base.pip_install_from_requirements("requirements.txt", "/wheels", index_url="http://i/simple")),
            {
                "pip_install_from_requirements": {
                    "requirements_txt": "requirements.txt",
                    "find_links": "/wheels",
                    "index_url": "http://i/simple",
                }
            },
        )
        self.assertEqual(
            last(self.base.pip_install_from_pyproject(Path("pyproject.toml"), ["dev"], pre=True)),
            {"pip_install_from_pyproject": {"pyproject_toml": "pyproject.toml", "optional_dependencies": ["dev"], "pre": True}},
        )
        self.assertEqual(
            last(self.base.pip_install_from_pyproject("pyproject.toml")),
            {"pip_install_from_pyproject": {"pyproject_toml": "pyproject.toml"}},
        )

    def test_private_repos(self):
        s = Secret.from_name("gh")
        img = self.base.pip_install_private_repos("github.com/org/a@1.0", "gitlab.com/org/b", git_user="me", secrets=[s])
        self.assertEqual(
            last(img),
            {
                "pip_install_private_repos": {
                    "repositories": ["github.com/org/a@1.0", "gitlab.com/org/b"],
                    "git_user": "me",
                    "secrets": [{"from_name": "gh"}],
                }
            },
        )
        with self.assertRaisesRegex(InvalidError, "^No secrets provided to function. Installing private packages"):
            self.base.pip_install_private_repos("github.com/org/a", git_user="me")
        with self.assertRaisesRegex(
            InvalidError, r"^1 out of 2 given repository refs are invalid\. Invalid refs: \['bitbucket\.org/x'\]\. $"
        ):
            self.base.pip_install_private_repos("github.com/org/a", "bitbucket.org/x", git_user="me", secrets=[s])

    def test_uv(self):
        self.assertEqual(
            last(self.base.uv_pip_install("a", requirements=["r.txt"], uv_version="0.5.0", index_url="http://i/simple")),
            {
                "uv_pip_install": {
                    "packages": ["a"],
                    "requirements": ["r.txt"],
                    "index_url": "http://i/simple",
                    "uv_version": "0.5.0",
                }
            },
        )
        self.assertEqual(last(self.base.uv_pip_install(requirements=["r.txt"])), {"uv_pip_install": {"requirements": ["r.txt"]}})
        self.assertIs(self.base.uv_pip_install(), self.base)
        with self.assertRaisesRegex(InvalidError, "^requirements must be None or a list of strings$"):
            self.base.uv_pip_install("a", requirements="r.txt")
        self.assertEqual(last(self.base.uv_sync()), {"uv_sync": {}})
        self.assertEqual(
            last(self.base.uv_sync("proj", groups=["dev"], extras=["x"], frozen=False, extra_options="-v", uv_version="0.5")),
            {
                "uv_sync": {
                    "uv_project_dir": "proj",
                    "groups": ["dev"],
                    "extras": ["x"],
                    "frozen": False,
                    "extra_options": "-v",
                    "uv_version": "0.5",
                }
            },
        )
        with self.assertRaisesRegex(InvalidError, "^extras must be None or a list of strings$"):
            self.base.uv_sync(extras="x")

    def test_poetry(self):
        self.assertEqual(
            last(self.base.poetry_install_from_file("pyproject.toml")),
            {"poetry_install_from_file": {"poetry_pyproject_toml": "pyproject.toml"}},
        )
        self.assertEqual(
            last(
                self.base.poetry_install_from_file(
                    "pyproject.toml",
                    "poetry.lock",
                    ignore_lockfile=True,
                    with_=["a"],
                    without=["b"],
                    only=["c"],
                    poetry_version=None,
                    old_installer=True,
                )
            ),
            {
                "poetry_install_from_file": {
                    "poetry_pyproject_toml": "pyproject.toml",
                    "poetry_lockfile": "poetry.lock",
                    "ignore_lockfile": True,
                    "with_": ["a"],
                    "without": ["b"],
                    "only": ["c"],
                    "poetry_version": None,
                    "old_installer": True,
                }
            },
        )

    def test_apt_run_commands(self):
        self.assertEqual(last(self.base.apt_install("git", ["curl"])), {"apt_install": {"packages": ["git", "curl"]}})
        self.assertIs(self.base.apt_install(), self.base)
        vol = modal.Volume.from_name("cache", create_if_missing=True)
        img = self.base.run_commands(
            "echo a", ["echo b"], env={"A": "1"}, secrets=[Secret.from_dict({"S": "x"})], volumes={"/cache": vol}, gpu="T4"
        )
        self.assertEqual(
            last(img),
            {
                "run_commands": {
                    "commands": ["echo a", "echo b"],
                    "volumes": {"/cache": {"from_name": "cache", "create_if_missing": True}},
                    "secrets": [{"from_dict": {"S": "x"}}],
                    "env": {"A": "1"},
                    "gpu": "T4",
                }
            },
        )
        self.assertIs(self.base.run_commands(), self.base)

    def test_dockerfile_commands(self):
        img = self.base.dockerfile_commands(
            ["COPY data /data", "RUN ls"],
            context_files={"/f": Path("local/f")},
            context_dir="ctx",
            build_args={"A": "b"},
            ignore=FilePatternMatcher("*.tmp"),
        )
        self.assertEqual(
            last(img),
            {
                "dockerfile_commands": {
                    "commands": ["COPY data /data", "RUN ls"],
                    "context_files": {"/f": "local/f"},
                    "context_dir": "ctx",
                    "ignore": ["*.tmp"],
                    "build_args": {"A": "b"},
                }
            },
        )
        self.assertEqual(last(self.base.dockerfile_commands("RUN x")), {"dockerfile_commands": {"commands": ["RUN x"]}})
        self.assertIs(self.base.dockerfile_commands(), self.base)

    def test_config(self):
        img = (
            self.base.env({"A": "1", "B": "x y"})
            .workdir(PurePosixPath("/app"))
            .entrypoint(["/bin/sh", "-c"])
            .shell(["/bin/bash", "-c"])
            .cmd(["python", "app.py"])
        )
        self.assertEqual(
            steps(img)[1:],
            [
                {"env": {"vars": {"A": "1", "B": "x y"}}},
                {"workdir": {"path": "/app"}},
                {"entrypoint": {"entrypoint_commands": ["/bin/sh", "-c"]}},
                {"shell": {"shell_commands": ["/bin/bash", "-c"]}},
                {"cmd": {"cmd": ["python", "app.py"]}},
            ],
        )
        with self.assertRaisesRegex(InvalidError, r"^Image ENV variables must be strings\. Invalid keys: \['N'\]$"):
            self.base.env({"A": "1", "N": 2})
        with self.assertRaisesRegex(InvalidError, r"^entrypoint_commands must be a list of strings\.$"):
            self.base.entrypoint("sh")
        with self.assertRaisesRegex(InvalidError, r"^shell_commands must be a list of strings\.$"):
            self.base.shell(("sh",))
        with self.assertRaisesRegex(InvalidError, r"^Image CMD must be a list of strings\.$"):
            self.base.cmd([1])

    def test_local_files(self):
        self.assertEqual(
            last(self.base.add_local_file(Path("data/x.txt"), "/data/", copy=True)),
            {"add_local_file": {"local_path": "data/x.txt", "remote_path": "/data/", "copy": True}},
        )
        self.assertEqual(
            last(self.base.add_local_dir("~/assets", remote_path="/assets")),
            {"add_local_dir": {"local_path": "~/assets", "remote_path": "/assets"}},
        )
        self.assertEqual(
            last(self.base.add_local_dir("assets", "/assets", ignore=["*.venv", "!keep.venv"])),
            {"add_local_dir": {"local_path": "assets", "remote_path": "/assets", "ignore": ["*.venv", "!keep.venv"]}},
        )
        self.assertEqual(
            last(self.base.add_local_dir("assets", "/assets", ignore=~FilePatternMatcher("**/*.py"))),
            {
                "add_local_dir": {
                    "local_path": "assets",
                    "remote_path": "/assets",
                    "ignore": {"patterns": ["**/*.py"], "invert": True},
                }
            },
        )
        self.assertEqual(
            last(self.base.add_local_dir("assets", "/assets", ignore=FilePatternMatcher.from_file(".ignore"))),
            {"add_local_dir": {"local_path": "assets", "remote_path": "/assets", "ignore": {"from_file": ".ignore"}}},
        )
        self.assertEqual(
            last(self.base.add_local_dir("assets", "/assets", ignore=~FilePatternMatcher.from_file(".ignore"))),
            {
                "add_local_dir": {
                    "local_path": "assets",
                    "remote_path": "/assets",
                    "ignore": {"from_file": ".ignore", "invert": True},
                }
            },
        )
        with self.assertRaisesRegex(InvalidError, r"^image\.add_local_file\(\) currently only supports absolute remote_path values$"):
            self.base.add_local_file("a", "rel")
        with self.assertRaisesRegex(InvalidError, r"^image\.add_local_dir\(\) currently only supports absolute remote_path values$"):
            self.base.add_local_dir("a", "rel/")
        with self.assertRaisesRegex(InvalidError, r"^Local Python modules must be specified as strings\.$"):
            self.base.add_local_python_source(Path("x"))

    def test_secrets_must_be_secrets(self):
        with self.assertRaisesRegex(InvalidError, r"^All secrets of an Image need to be modal\.Secret instances\.$"):
            self.base.apt_install("git", secrets=["name"])
        with self.assertRaisesRegex(InvalidError, "the env_dict argument to Secret"):
            self.base.apt_install("git", env={"A": 1})

    def test_gpu(self):
        self.assertEqual(last(self.base.apt_install("x", gpu="a100-80gb:4"))["apt_install"]["gpu"], "a100-80gb:4")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.assertEqual(last(self.base.apt_install("x", gpu=modal.gpu.A100(count=2)))["apt_install"]["gpu"], "A100:2")
            self.assertEqual(last(self.base.apt_install("x", gpu=modal.gpu.T4()))["apt_install"]["gpu"], "T4")
            self.assertEqual(str(modal.gpu.A100(size="80GB")), "A100-80GB")
        with self.assertRaisesRegex(InvalidError, r"^Invalid GPU count: two\. Value must be an integer\.$"):
            self.base.apt_install("x", gpu="T4:two")
        with self.assertRaisesRegex(InvalidError, "^Invalid GPU config"):
            self.base.apt_install("x", gpu=2)

    def test_force_build_inheritance(self):
        # As Modal: a step's force_build is its own or its parent's, except
        # env, workdir and add_local_* which reset it.
        img = Image.debian_slim(force_build=True).apt_install("git").cmd(["sh"]).env({"A": "1"}).apt_install("curl")
        self.assertEqual(
            steps(img),
            [
                {"debian_slim": {"force_build": True}},
                {"apt_install": {"packages": ["git"], "force_build": True}},
                {"cmd": {"cmd": ["sh"]}},
                {"env": {"vars": {"A": "1"}}},
                {"apt_install": {"packages": ["curl"]}},
            ],
        )

    def test_shared_prefix(self):
        base = Image.debian_slim("3.11").apt_install("git")
        a = base.pip_install("a")
        b = base.pip_install("b").env({"X": "1"})
        memo = {}
        sa, sb, sbase = recipe_steps(a, memo), recipe_steps(b, memo), recipe_steps(base, memo)
        self.assertEqual(sa[:2], sbase)
        self.assertEqual(sb[:2], sbase)
        self.assertEqual(sa[2], {"pip_install": {"packages": ["a"]}})
        self.assertEqual(sb[2:], [{"pip_install": {"packages": ["b"]}}, {"env": {"vars": {"X": "1"}}}])
        # Images are values: the base is unchanged.
        self.assertEqual(len(recipe_steps(base)), 2)

    def test_pipe_build_imports(self):
        img = self.base.pipe(lambda im, pkg: im.apt_install(pkg), "git")
        self.assertEqual(last(img), {"apt_install": {"packages": ["git"]}})
        app = modal.App("x")
        with self.assertRaisesRegex(InvalidError, "^App has not been initialized yet"):
            img.build(app)
        with app.run():
            self.assertIs(img.build(app), img)
        with img.imports():
            import snapbuild_no_such_module  # noqa: F401
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with img.imports():
                raise ValueError("boom")
        self.assertIn("caught a non-ImportError exception in an `imports()` block", str(w[0].message))
        self.assertIsNone(img.object_id)


class TestPythonSource(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        root = Path(self.tmp.name)
        (root / "pkg_sb_test" / "sub").mkdir(parents=True)
        (root / "pkg_sb_test" / "__init__.py").write_text("")
        (root / "pkg_sb_test" / "sub" / "__init__.py").write_text("")
        (root / "pkg_sb_test" / "data.json").write_text("{}")
        (root / "single_sb_test.py").write_text("X = 1\n")
        import sys

        sys.path.insert(0, str(root))
        self.root = root

    def tearDown(self):
        import sys

        sys.path.remove(str(self.root))
        for m in ["pkg_sb_test", "pkg_sb_test.sub", "single_sb_test"]:
            sys.modules.pop(m, None)
        self.tmp.cleanup()

    def test_resolved(self):
        img = Image.debian_slim().add_local_python_source("pkg_sb_test", "single_sb_test", "pkg_sb_test.sub", copy=True)
        self.assertEqual(
            steps(img)[1:],
            [
                {
                    "add_local_dir": {
                        "local_path": str(self.root / "pkg_sb_test"),
                        "remote_path": "/root/pkg_sb_test",
                        "copy": True,
                        "ignore": {"patterns": ["**/*.py"], "invert": True},
                    }
                },
                {
                    "add_local_file": {
                        "local_path": str(self.root / "single_sb_test.py"),
                        "remote_path": "/root/single_sb_test.py",
                        "copy": True,
                    }
                },
                {
                    "add_local_dir": {
                        "local_path": str(self.root / "pkg_sb_test" / "sub"),
                        "remote_path": "/root/pkg_sb_test/sub",
                        "copy": True,
                        "ignore": {"patterns": ["**/*.py"], "invert": True},
                    }
                },
            ],
        )

    def test_ignore_forms(self):
        img = Image.debian_slim().add_local_python_source("pkg_sb_test", ignore=["data.json"])
        self.assertEqual(last(img)["add_local_dir"]["ignore"], ["data.json"])
        img = Image.debian_slim().add_local_python_source("pkg_sb_test", ignore=lambda p: p.suffix == ".json")
        self.assertEqual(last(img)["add_local_dir"]["ignore"], ["data.json"])

    def test_missing(self):
        from modal.exception import ModuleNotMountable

        img = Image.debian_slim().add_local_python_source("snapbuild_no_such_module")
        with self.assertRaisesRegex(ModuleNotMountable, "^Module snapbuild_no_such_module has no spec - might not be installed\\?$"):
            steps(img)
        import importlib.util

        for name in ("math", "_ctypes", "_decimal", "select", "_json"):
            spec = importlib.util.find_spec(name)
            if spec and spec.origin and spec.origin.endswith(".so"):
                break
        else:
            self.skipTest("no extension module found")
        with self.assertRaisesRegex(ModuleNotMountable, "^Module %s can't be mounted because it contains binary file" % name):
            steps(Image.debian_slim().add_local_python_source(name))


class TestCallableIgnore(unittest.TestCase):
    def test_walk(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            (root / "sub").mkdir()
            for name in ["a.txt", "b.py", "sub/c.txt", "sub/weird[1]*.txt", "!bang.txt"]:
                (root / name).write_text("x")
            seen = []

            def ignore(p):
                seen.append(p)
                return p.suffix == ".txt"

            img = Image.debian_slim().add_local_dir(d, "/data", ignore=ignore)
            form = last(img)["add_local_dir"]["ignore"]
            self.assertEqual(form, ["\\!bang.txt", "a.txt", "sub/c.txt", "sub/weird\\[1\\]\\*.txt"])
            self.assertTrue(all(isinstance(p, Path) and not p.is_absolute() for p in seen))
            # The patterns match exactly the files the callable left out.
            m = FilePatternMatcher(*form)
            for name in ["a.txt", "sub/c.txt", "sub/weird[1]*.txt", "!bang.txt"]:
                self.assertTrue(m(Path(name)), name)
            self.assertFalse(m(Path("b.py")))
            self.assertFalse(m(Path("sub/weird1x.txt")))

    def test_dockerfile_context(self):
        with tempfile.TemporaryDirectory() as d:
            Path(d, "keep").write_text("")
            Path(d, "drop.log").write_text("")
            img = Image.debian_slim().dockerfile_commands("COPY . /x", context_dir=d, ignore=lambda p: p.name.endswith(".log"))
            self.assertEqual(last(img)["dockerfile_commands"]["ignore"], ["drop.log"])
            cwd = os.getcwd()
            try:
                os.chdir(d)
                img = Image.from_dockerfile("Dockerfile", ignore=lambda p: p.name == "keep")
                self.assertEqual(last(img)["from_dockerfile"]["ignore"], ["keep"])
            finally:
                os.chdir(cwd)


if __name__ == "__main__":
    unittest.main()
