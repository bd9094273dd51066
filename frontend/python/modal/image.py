"""modal.image: Modal's module of the Image class."""

from ._image import AUTO_DOCKERIGNORE, Image  # noqa: F401
from .file_pattern_matcher import NON_PYTHON_FILES  # noqa: F401
