"""modal.Mount: removed in Modal 1.0, and not supported by snapbuild."""

from . import _api
from .exception import InvalidError

_MESSAGE = (
    "modal.Mount was removed in Modal 1.0 and snapbuild does not support it: add local files to the image with "
    "Image.add_local_file, Image.add_local_dir or Image.add_local_python_source"
)


class _MountMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise InvalidError(_MESSAGE)


class Mount(metaclass=_MountMeta):
    """Unsupported: see Image.add_local_file / add_local_dir / add_local_python_source."""

    def __init__(self, *args, **kwargs):
        raise InvalidError(_MESSAGE)


__getattr__ = _api.module_getattr(__name__)  # the rest of the module: see _api
