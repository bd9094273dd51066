"""modal.cls: Modal's module of the Cls class."""

from . import _api
from .app import Cls  # noqa: F401
from .partial_function import parameter  # noqa: F401


def is_parameter(p):
    """Whether p is a modal.parameter() (in snapbuild, a parameter is its default: never)."""
    return False


__getattr__ = _api.module_getattr(__name__)  # Obj, and inert names
