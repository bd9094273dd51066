"""modal.functions: Modal's module of the Function and FunctionCall classes."""

from . import _api
from .app import Function  # noqa: F401

__getattr__ = _api.module_getattr(__name__)  # FunctionCall, and inert names
