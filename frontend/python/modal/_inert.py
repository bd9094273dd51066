"""Inert stand-ins for the parts of Modal that snapbuild does not need.

An image definition file may touch much of Modal at import time (schedules,
retries, web decorators, dicts, queues...). Building an image needs none of
it, so these names resolve to Inert objects: callable (a decorator given a
function or class returns it unchanged), context managers, with inert
attributes. Private and dunder names are not invented, so introspection and
`from modal.x import *` behave.
"""

import importlib.abc
import importlib.machinery
import sys
import types


class Inert:
    """A harmless placeholder for a Modal object snapbuild does not model."""

    def __init__(self, name):
        object.__setattr__(self, "_snapbuild_name", name)

    def __repr__(self):
        return "<modal.%s (inert in snapbuild)>" % self._snapbuild_name

    def __call__(self, *args, **kwargs):
        # Used as a decorator: @modal.x or @modal.x(...) leaves the object as it is.
        if len(args) == 1 and not kwargs and (isinstance(args[0], type) or callable(args[0])):
            return args[0]
        return Inert(self._snapbuild_name + "()")

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Inert(self._snapbuild_name + "." + attr)

    def __setattr__(self, attr, value):
        object.__setattr__(self, attr, value)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    def __iter__(self):
        return iter(())

    def __mro_entries__(self, bases):
        # class X(modal.Something): ... subclasses nothing in particular.
        return ()


def public(name):
    """Whether a module attribute name may be invented as an Inert."""
    return bool(name) and not name.startswith("_")


class InertModule(types.ModuleType):
    """A modal submodule that the shim has no file for (modal.sandbox,
    modal.dict, modal.runner...): its names are _api's (server classes and
    functions, plain values), and every other public name is inert."""

    def __getattr__(self, name):
        from . import _api  # noqa: PLC0415 (_api imports the shim's modules)

        value = _api.lookup(self.__name__, name)
        setattr(self, name, value)
        return value


class _InertLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return InertModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []  # a package: its own submodules are inert too


class InertFinder(importlib.abc.MetaPathFinder):
    """Finds modal.<anything> that the shim lacks, as an InertModule.

    It sits at the end of sys.meta_path, so real submodules of the shim are
    found first.
    """

    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith("modal.") or "modal" not in sys.modules:
            return None
        shim = sys.modules["modal"]
        if not getattr(shim, "__snapbuild__", False):
            return None  # a real modal is in charge
        return importlib.machinery.ModuleSpec(fullname, _InertLoader(), is_package=True)


def install():
    for f in sys.meta_path:
        if isinstance(f, InertFinder):
            return
    sys.meta_path.append(InertFinder())
