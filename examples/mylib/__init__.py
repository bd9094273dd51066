"""mylib: a small package of the local_source example, added to the image
with add_local_python_source("mylib")."""

from .text import shout

__all__ = ["shout"]
