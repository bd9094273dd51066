"""modal.Secret for snapbuild: environment variables for build steps.

Secrets are recorded, not resolved: a recipe names them as
{from_dict: {K: V}}, {from_name: NAME} (snapbuild reads
~/.config/snapbuild/secrets/NAME.env when the step runs) or
{from_dotenv: PATH}. repr() is Modal's, which is what run_function's
definition (its cache key) holds.
"""

import os

from . import _api, _state
from ._object import InertAttrs
from .exception import InvalidError

ENV_DICT_WRONG_TYPE_ERR = "the env_dict argument to Secret has to be a dict[str, Union[str, None]]"


class Secret(metaclass=InertAttrs):
    """A set of environment variables given to a build step (modal.Secret)."""

    def __init__(self, kind, rep, **fields):
        # Made by the from_* constructors only, as in Modal.
        self._kind = kind
        self._rep = rep
        self._fields = fields

    def __repr__(self):
        return self._rep

    @property
    def name(self):
        return self._fields.get("name")

    @staticmethod
    def from_dict(env_dict={}):  # noqa: B006 (Modal's signature)
        """A secret holding the given variables (None values are left out)."""
        if not isinstance(env_dict, dict):
            raise InvalidError(ENV_DICT_WRONG_TYPE_ERR)
        kept = {k: v for k, v in env_dict.items() if v is not None}
        if not all(isinstance(k, str) for k in kept) or not all(isinstance(v, str) for v in kept.values()):
            raise InvalidError(ENV_DICT_WRONG_TYPE_ERR)
        rep = "Secret.from_dict([%s])" % ", ".join(str(k) for k in env_dict.keys())
        return Secret("dict", rep, values=kept)

    @staticmethod
    def from_local_environ(env_keys):
        """A secret with the named variables of the local environment."""
        if _state.in_container:
            return Secret.from_dict({})
        try:
            return Secret.from_dict({k: os.environ[k] for k in env_keys})
        except KeyError as exc:
            raise InvalidError(
                "Could not find local environment variable '%s' for Secret.from_local_environ" % exc.args[0]
            ) from None

    @staticmethod
    def from_dotenv(path=None, *, filename=".env", client=None):
        """A secret read from a .env file: the first `filename` found walking
        up from path (a file or a directory), or from the working directory."""
        return Secret("dotenv", "Secret.from_dotenv()", path=path, filename=filename)

    @staticmethod
    def from_name(name, *, environment_name=None, required_keys=[], client=None):  # noqa: B006
        """A named secret (in snapbuild, the dotenv file NAME.env in the secrets directory)."""
        env = ", environment_name=%r" % environment_name if environment_name else ""
        rep = "modal.Secret.from_name(%r%s)" % (name, env)
        return Secret("name", rep, name=name, environment_name=environment_name, required_keys=list(required_keys))

    @property
    def object_id(self):
        from ._object import object_id_unknown

        object_id_unknown("Secret")

    def hydrate(self, client=None):
        return self

    # --- snapbuild ---

    def recipe_form(self):
        """The secret as a recipe writes it."""
        if self._kind == "dict":
            return {"from_dict": dict(self._fields["values"])}
        if self._kind == "name":
            return {"from_name": self._fields["name"]}
        found = _find_dotenv(self._fields["path"], self._fields["filename"])
        if not found:
            where = self._fields["path"] if self._fields["path"] is not None else os.getcwd()
            _state.warn(
                "Secret.from_dotenv(): no %s file found from %s up; the secret is empty (as with Modal)"
                % (self._fields["filename"], where)
            )
            return {"from_dict": {}}
        return {"from_dotenv": found}


def _find_dotenv(path, filename):
    """python-dotenv's search: from path (or the working directory) up to /."""
    start = os.path.abspath(os.fspath(path)) if path is not None else os.getcwd()
    if path is not None and not os.path.exists(start):
        raise IOError("Starting path not found")
    if os.path.isfile(start):
        start = os.path.dirname(start)
    d = start
    while True:
        candidate = os.path.join(d, filename)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(d)
        if parent == d:
            return ""
        d = parent


__getattr__ = _api.module_getattr(__name__)  # the rest of the module: see _api
