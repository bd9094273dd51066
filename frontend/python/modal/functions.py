"""modal.functions: Modal's module of the Function class."""

from .app import Function  # noqa: F401
