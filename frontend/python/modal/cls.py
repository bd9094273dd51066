"""modal.cls: Modal's module of the Cls class."""

from .app import Cls  # noqa: F401
