"""modal.Volume (and the mounts snapbuild cannot honour) for the shim.

A Volume.from_name(name) mounted by run_function is, for snapbuild, a
directory of the host's volume store named after it; its recipe form is
{from_name: NAME} plus create_if_missing: true when asked. Inside a build
container the Volume methods (commit, reload...) do nothing: writes go
straight to the host directory.
"""

from . import _api
from ._inert import Inert, public
from ._object import InertAttrs
from .exception import InvalidError


class Volume(metaclass=InertAttrs):
    """A persistent directory mounted into run_function steps (modal.Volume)."""

    def __init__(self, name, environment_name=None, create_if_missing=False, version=None):
        self._name = name
        self._environment_name = environment_name
        self._create_if_missing = bool(create_if_missing)
        self._version = version

    @staticmethod
    def from_name(name, *, environment_name=None, create_if_missing=False, version=None, client=None):
        """A reference to the named volume."""
        if not isinstance(name, str) or not name:
            raise InvalidError("Volume name must be a non-empty string")
        return Volume(name, environment_name, create_if_missing, version)

    @property
    def name(self):
        return self._name

    def __repr__(self):
        env = ", environment_name=%r" % self._environment_name if self._environment_name else ""
        return "modal.Volume.from_name(%r%s)" % (self._name, env)

    def __getattr__(self, attr):
        # commit(), reload(), listdir()... : nothing to do locally.
        if not public(attr):
            raise AttributeError(attr)
        return Inert("Volume.%s" % attr)

    def recipe_form(self):
        out = {"from_name": self._name}
        if self._create_if_missing:
            out["create_if_missing"] = True
        return out


class CloudBucketMount:
    """modal.CloudBucketMount: recorded, but a local build cannot mount it."""

    def __init__(self, bucket_name, *args, **kwargs):
        self.bucket_name = bucket_name

    def __repr__(self):
        return "modal.CloudBucketMount(%r)" % self.bucket_name

    def recipe_form(self):
        raise InvalidError(
            "snapbuild: modal.CloudBucketMount(%r) needs cloud storage and cannot be mounted in a local build; "
            "use a modal.Volume (a host directory) instead" % self.bucket_name
        )


class NetworkFileSystem(metaclass=InertAttrs):
    """modal.NetworkFileSystem: recorded, but a local build cannot mount it."""

    def __init__(self, name):
        self._name = name

    @staticmethod
    def from_name(name, *, environment_name=None, create_if_missing=False, client=None):
        return NetworkFileSystem(name)

    def __repr__(self):
        return "modal.NetworkFileSystem.from_name(%r)" % self._name

    def recipe_form(self):
        raise InvalidError(
            "snapbuild: network_file_systems (modal.NetworkFileSystem %r) cannot be mounted in a local build; "
            "use a modal.Volume (a host directory) instead" % self._name
        )


__getattr__ = _api.module_getattr(__name__)  # the rest of the module: see _api
