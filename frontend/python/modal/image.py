"""modal.image: Modal's module of the Image class."""

from . import _api
from ._image import AUTO_DOCKERIGNORE, Image  # noqa: F401
from .file_pattern_matcher import NON_PYTHON_FILES  # noqa: F401


__getattr__ = _api.module_getattr(__name__)  # the rest of the module: see _api
