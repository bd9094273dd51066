"""modal.config: Modal's client settings, read as Modal 1.x reads them.

config.get(key) (or config[key]) looks a setting up as Modal does, in
decreasing order of priority:

  1. the environment variable MODAL_<KEY> (MODAL_ENVIRONMENT,
     MODAL_LOGLEVEL...), through the setting's transform (loglevel is
     upper-cased, logs_timeout a float, force_build a bool...);
  2. the key in the active profile of the user's Modal config file
     (MODAL_CONFIG_PATH, default ~/.modal.toml), read on first use and never
     written, nor read in a build container (as Modal does not read it in
     its containers);
  3. the setting's default: loglevel "WARNING", log_format "STRING",
     server_url "https://api.modal.com", logs_timeout 10,
     heartbeat_interval 15, build_validation "error", force_build False...;
     None for environment, token_id, token_secret, image_builder_version and
     the other settings without one.

An unknown key is a KeyError, as in Modal (there is no "workspace" setting).
_profile is the active profile's name: MODAL_PROFILE, else the profile
marked active in the config file, else "default" (Modal's examples use it as
the workspace name). config_profiles() lists the file's profiles;
config_set_active_profile(name) changes _profile in this process only.
logger is Modal's "modal-client" logging.Logger.
"""

import logging
import os
import typing

from . import _state
from .exception import InvalidError

DEFAULT_SERVER_URL = "https://api.modal.com"

user_config_path = os.environ.get("MODAL_CONFIG_PATH") or os.path.expanduser("~/.modal.toml")


def _to_boolean(x):
    return str(x).lower() not in {"", "0", "false"}


def _check_value(options):
    def checker(x):
        if x not in options:
            raise ValueError("Must be one of %s." % (options,))
        return x

    return checker


class _Setting(typing.NamedTuple):
    default: typing.Any = None
    transform: typing.Callable[[str], typing.Any] = lambda x: x  # noqa: E731


# Modal 1.x's settings (modal/config.py), with their defaults and transforms.
_SETTINGS = {
    "loglevel": _Setting("WARNING", lambda s: s.upper()),
    "log_format": _Setting("STRING", lambda s: s.upper()),
    "log_pattern": _Setting(),
    "server_url": _Setting(DEFAULT_SERVER_URL),
    "token_id": _Setting(),
    "token_secret": _Setting(),
    "task_id": _Setting(),
    "serve_timeout": _Setting(transform=float),
    "sync_entrypoint": _Setting(),
    "logs_timeout": _Setting(10, float),
    "image_id": _Setting(),
    "heartbeat_interval": _Setting(15, float),
    "function_runtime": _Setting(),
    "function_runtime_debug": _Setting(False, transform=_to_boolean),
    "runtime_perf_record": _Setting(False, transform=_to_boolean),
    "environment": _Setting(),
    "default_cloud": _Setting(None, transform=lambda x: x if x else None),
    "worker_id": _Setting(),
    "restore_state_path": _Setting("/__modal/restore-state.json"),
    "force_build": _Setting(False, transform=_to_boolean),
    "ignore_cache": _Setting(False, transform=_to_boolean),
    "traceback": _Setting(False, transform=_to_boolean),
    "image_builder_version": _Setting(),
    "strict_parameters": _Setting(False, transform=_to_boolean),
    "snapshot_debug": _Setting(False, transform=_to_boolean),
    "cuda_checkpoint_path": _Setting("/__modal/.bin/cuda-checkpoint"),
    "function_schemas": _Setting(False, transform=_to_boolean),
    "build_validation": _Setting("error", transform=_check_value(["error", "warn", "ignore"])),
}

_user_config = None  # {profile: {key: value}}, read on first use


def _read_user_config():
    """The user's Modal config file as a dict of profiles ({} when there is
    none, in a build container, or before Python 3.11, which has no TOML
    reader)."""
    global _user_config
    if _user_config is not None:
        return _user_config
    data = {}
    if not _state.in_container and os.path.exists(user_config_path):
        try:
            import tomllib  # noqa: PLC0415 (Python 3.11+)
        except ImportError:
            tomllib = None
        if tomllib is not None:
            try:
                with open(user_config_path, "rb") as f:
                    data = tomllib.load(f)
            except (OSError, ValueError) as exc:
                raise InvalidError(
                    "\nError when reading the modal configuration from `%s`.\n\n%s" % (user_config_path, exc)
                ) from None
            if not all(isinstance(v, dict) for v in data.values()):
                raise InvalidError(
                    "\nError when reading the modal configuration from `%s`.\n\n"
                    "TOML file must contain table sections for each profile." % user_config_path
                )
    _user_config = data
    return data


def _active_profile():
    env = os.environ.get("MODAL_PROFILE")
    if env:
        return env
    for name, values in _read_user_config().items():
        if values.get("active", False) is True:
            return name
    return "default"


def config_profiles():
    """The profiles of the user's Modal config file."""
    return _read_user_config().keys()


def config_set_active_profile(env):
    """Makes env the active profile of this process (snapbuild writes no
    config file)."""
    global _profile
    _profile = env


class Config:
    """Modal's settings (modal.config.config): see the module's doc."""

    def get(self, key, profile=None, use_env=True):
        """The value of a setting: MODAL_<KEY>, else the profile's, else the default."""
        if profile is None:
            profile = _get_profile()
        s = _SETTINGS[key]
        env_var_key = "MODAL_" + key.upper()

        def transform(val):
            try:
                return s.transform(val)
            except Exception as e:
                raise InvalidError("Invalid value for %s config (%r): %s" % (key, val, e)) from None

        if use_env and env_var_key in os.environ:
            return transform(os.environ[env_var_key])
        user = _read_user_config()
        if profile in user and key in user[profile]:
            return transform(user[profile][key])
        return s.default

    def override_locally(self, key, value):
        """Sets the setting for this process (through MODAL_<KEY>), as Modal does."""
        try:
            self.get(key)
            os.environ["MODAL_" + key.upper()] = value
        except KeyError:
            os.environ[key.upper()] = value

    def __getitem__(self, key):
        return self.get(key)

    def __repr__(self):
        return repr(self.to_dict())

    def to_dict(self):
        return {key: self.get(key) for key in _SETTINGS}


config = Config()

logger = logging.getLogger("modal-client")
try:
    logger.setLevel(os.environ.get("MODAL_LOGLEVEL", "WARNING").upper())
except ValueError:  # an unknown level name: Modal's logger would fail later, not here
    pass


def _get_profile():
    g = globals()
    if "_profile" not in g:
        g["_profile"] = _active_profile()
    return g["_profile"]


def __getattr__(name):
    # _profile is read on first use: the config file is not read at import.
    if name == "_profile":
        return _get_profile()
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
