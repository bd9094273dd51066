"""What needs Modal's servers, and where in the user's file it was asked for.

snapbuild reads an app file without talking to Modal. References that Modal
resolves lazily (modal.Dict.from_name("d"), modal.Function.from_name(...),
modal.Queue.from_name(...)) are made as in Modal: nothing is looked up. What
would reach Modal's servers (using such a reference: d.get(k), f.remote(),
q.put(x); or an eager call: modal.Sandbox.create(), modal.App.lookup(...),
modal.runner.deploy_app(app)) raises ServerCallError, whose message names the
call and the line of the user's file that made it:

    app.py:12: modal.Sandbox.create() cannot run while snapbuild reads the
    file (it needs Modal's servers); move it under a function or
    `if __name__ == "__main__":`

(one line). The front end prints that message alone and exits 1.

user_frame() and warn() place errors and warnings at the user's line: the
innermost frame outside this package, contextlib and the import machinery.
"""

import contextlib
import os
import sys
import warnings

from . import _state
from .exception import ExecutionError, InvalidError

_SHIM_DIR = os.path.dirname(os.path.abspath(__file__))
_BOOT_DIR = os.path.dirname(_SHIM_DIR)  # snapbuild_frontend.py, snapbuild_run_function.py
_CONTEXTLIB = os.path.splitext(os.path.abspath(contextlib.__file__))[0]


def _internal(filename):
    if filename.startswith(_SHIM_DIR + os.sep) or filename.startswith("<frozen importlib"):
        return True
    d, base = os.path.split(filename)
    if d == _BOOT_DIR and base.startswith("snapbuild_"):
        return True
    return os.path.splitext(filename)[0] == _CONTEXTLIB


def user_frame(depth=1):
    """The innermost frame of the caller's stack that is not this package's
    (nor contextlib's, nor the import machinery's): the user's code. None
    when there is none."""
    f = sys._getframe(depth)
    while f is not None and _internal(os.path.abspath(f.f_code.co_filename)):
        f = f.f_back
    return f


def display_path(filename):
    """filename relative to the working directory when it is under it, else as it is."""
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def location():
    """"FILE:LINE" of the user's code that called into the shim, or ""."""
    f = user_frame()
    if f is None:
        return ""
    return "%s:%d" % (display_path(f.f_code.co_filename), f.f_lineno)


def warn(message, category=UserWarning):
    """warnings.warn(message, category), attributed to the user's line (as
    Modal's warnings are, through their stacklevel), not to the shim."""
    f = user_frame()
    if f is None:
        warnings.warn(message, category, stacklevel=2)
        return
    g = f.f_globals
    warnings.warn_explicit(
        message,
        category,
        f.f_code.co_filename,
        f.f_lineno,
        module=g.get("__name__", "<unknown>"),
        registry=g.setdefault("__warningregistry__", {}),
        module_globals=g,
    )


class ServerCallError(ExecutionError):
    """A call that needs Modal's servers, made while snapbuild reads the
    file (or in a build step). str() is the one-line message."""

    def __init__(self, call, where):
        self.call = call
        self.where = where
        if _state.in_container:
            msg = "%s cannot run in a snapbuild build step (it needs Modal's servers)" % call
        else:
            msg = (
                "%s cannot run while snapbuild reads the file (it needs Modal's servers); "
                'move it under a function or `if __name__ == "__main__":`' % call
            )
        super().__init__("%s: %s" % (where, msg) if where else msg)


def server_call(call):
    """Raises ServerCallError for call (e.g. "modal.Sandbox.create()")."""
    raise ServerCallError(call, location())


class ServerCall:
    """A method of a Modal object that needs Modal's servers (d.get, f.remote,
    modal.Sandbox.create...): calling it raises ServerCallError. Its
    .aio is the same call; another attribute is a call of its own
    (Cls.from_name(...)().predict.remote)."""

    def __init__(self, label):
        self._label = label

    def __call__(self, *args, **kwargs):
        server_call(self._label + "()")

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        if attr == "aio":  # the async form of the same call
            return self
        return ServerCall("%s.%s" % (self._label, attr))

    def __repr__(self):
        return "<%s (needs Modal's servers)>" % self._label


def args_repr(args, kwargs):
    """The arguments of a call as a label shows them: positional reprs, then \"...\" for keywords."""
    parts = [repr(a) for a in args]
    if kwargs:
        parts.append("...")
    return ", ".join(parts)


class _ServerMeta(type):
    """Class-level attributes of a server class: its lazy constructors are
    real methods; every other public name needs the servers."""

    def __getattr__(cls, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return ServerCall("modal.%s.%s" % (cls.__name__, name))


class ServerObject(metaclass=_ServerMeta):
    """A reference to an object on Modal's servers (a Dict, a Queue, a
    deployed Function...). Made by a lazy constructor, as in Modal; using it
    raises ServerCallError. with_*() options give another reference, and
    calling a reference to a class (Cls.from_name(...)()) gives a reference
    to an instance."""

    _callable = False  # calling the reference gives another reference (a Cls)

    def __init__(self, *args, **kwargs):
        raise InvalidError(
            "Class %s has no constructor. Use class constructor methods instead." % type(self).__name__
        )

    @classmethod
    def _reference(cls, label):
        obj = object.__new__(cls)
        obj._label = label
        return obj

    def __repr__(self):
        return self._label

    def __getattr__(self, attr):
        if attr.startswith("_"):
            raise AttributeError(attr)
        if attr.startswith("with_"):
            return lambda *a, **k: type(self)._reference("%s.%s(%s)" % (self._label, attr, args_repr(a, k)))
        return ServerCall("%s.%s" % (self._label, attr))

    def __call__(self, *args, **kwargs):
        if not self._callable:
            server_call(self._label + "()")
        return type(self)._reference("%s(%s)" % (self._label, args_repr(args, kwargs)))

    def __getitem__(self, key):
        server_call("%s[%r]" % (self._label, key))

    def __setitem__(self, key, value):
        server_call("%s[%r] = ..." % (self._label, key))

    def __delitem__(self, key):
        server_call("del %s[%r]" % (self._label, key))

    def __contains__(self, key):
        server_call("%r in %s" % (key, self._label))

    def __len__(self):
        server_call("len(%s)" % self._label)

    def __iter__(self):
        server_call("iter(%s)" % self._label)

    def __aiter__(self):
        server_call("aiter(%s)" % self._label)

    def __enter__(self):
        server_call("with %s" % self._label)

    async def __aenter__(self):
        server_call("async with %s" % self._label)


def _lazy_constructor(name):
    def make(cls, *args, **kwargs):
        return cls._reference("modal.%s.%s(%s)" % (cls.__name__, name, args_repr(args, kwargs)))

    make.__name__ = name
    make.__doc__ = "A reference to the object, resolved by Modal when it is used (snapbuild: never)."
    return classmethod(make)


def server_class(name, module, lazy=(), callable_=False, doc=None):
    """A ServerObject subclass named name (modal.<name>), of the given
    module; lazy names its constructors that make a reference without a
    server call (from_name, from_id)."""
    ns = {n: _lazy_constructor(n) for n in lazy}
    ns["__module__"] = module
    ns["__qualname__"] = name
    ns["_callable"] = callable_
    ns["__doc__"] = doc or "modal.%s: needs Modal's servers; snapbuild only records references to it." % name
    return _ServerMeta(name, (ServerObject,), ns)


def server_function(qualname):
    """A module function that needs Modal's servers (modal.runner.deploy_app,
    modal.forward...): calling it raises ServerCallError."""
    label = "modal." + qualname

    def f(*args, **kwargs):
        server_call(label + "()")

    f.__name__ = qualname.rsplit(".", 1)[-1]
    f.__qualname__ = f.__name__
    f.__doc__ = "%s: needs Modal's servers (raises ServerCallError in snapbuild)." % label
    return f
