"""modal.App for snapbuild: records which image each function uses.

@app.function(image=...) and @app.cls(...) return wrappers that remember the
function (or class), its image and its options; the front end collects their
images. Nothing runs remotely: .remote(), .spawn() and .map() fail with a
clear message, .local() and calling the wrapper run the function here.
local_entrypoint() is inert, and app.run() is an inert context manager.
"""

import contextlib
import functools

from . import _state
from ._image import Image
from ._object import InertAttrs
from .exception import ExecutionError, InvalidError


def _no_cloud(what):
    raise ExecutionError(
        "snapbuild: %s needs Modal's cloud; snapbuild only builds images (run one with `snapbuild run NAME`)" % what
    )


class Function(metaclass=InertAttrs):
    """A function registered with @app.function() (modal.Function)."""

    def __init__(self, app, raw_f, image, name, options):
        self._app = app
        self._raw_f = raw_f
        self._image = image
        self._name = name
        self._options = options
        functools.update_wrapper(self, raw_f)

    def get_raw_f(self):
        """The undecorated function."""
        return self._raw_f

    @property
    def image(self):
        return self._image

    @property
    def app(self):
        return self._app

    @property
    def object_id(self):
        return None

    def local(self, *args, **kwargs):
        """Calls the function in this process."""
        return self._raw_f(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self._raw_f(*args, **kwargs)

    def remote(self, *args, **kwargs):
        _no_cloud("%s.remote()" % self._name)

    def remote_gen(self, *args, **kwargs):
        _no_cloud("%s.remote_gen()" % self._name)

    def spawn(self, *args, **kwargs):
        _no_cloud("%s.spawn()" % self._name)

    def map(self, *args, **kwargs):
        _no_cloud("%s.map()" % self._name)

    def starmap(self, *args, **kwargs):
        _no_cloud("%s.starmap()" % self._name)

    def for_each(self, *args, **kwargs):
        _no_cloud("%s.for_each()" % self._name)

    def get_web_url(self):
        _no_cloud("%s.get_web_url()" % self._name)

    def __repr__(self):
        return "modal.Function(%s)" % self._name


class Cls(metaclass=InertAttrs):
    """A class registered with @app.cls() (modal.Cls)."""

    def __init__(self, app, user_cls, image, name, options):
        self._app = app
        self._user_cls = user_cls
        self._image = image
        self._name = name
        self._options = options
        functools.update_wrapper(self, user_cls, updated=())

    @property
    def image(self):
        return self._image

    @property
    def app(self):
        return self._app

    def _get_user_cls(self):
        return self._user_cls

    def __call__(self, *args, **kwargs):
        """An instance of the class, made here."""
        return self._user_cls(*args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._user_cls, name)

    def with_options(self, **kwargs):
        return self

    def __repr__(self):
        return "modal.Cls(%s)" % self._name


class App(metaclass=InertAttrs):
    """A Modal App: a group of functions and classes (modal.App).

    In snapbuild it records which image each of its functions and classes
    uses; `snapbuild build app.py` builds them.
    """

    def __init__(self, name=None, *, tags=None, image=None, secrets=[], volumes={}, include_source=True, **kwargs):  # noqa: B006
        if name is not None and not isinstance(name, str):
            raise InvalidError("Invalid value for `name`: Must be string.")
        if image is not None and not isinstance(image, Image):
            raise InvalidError("image has to be a modal Image or AioImage object")
        self._name = name
        self._image = image
        self._secrets = list(secrets)
        self._volumes = dict(volumes)
        self._functions = {}  # name -> Function or Cls, in registration order
        self._included = []
        self.app_id = None
        _state.apps.append(self)

    @property
    def name(self):
        return self._name

    @property
    def image(self):
        return self._image

    @image.setter
    def image(self, value):
        self._image = value

    @property
    def registered_functions(self):
        return {k: v for k, v in self._functions.items() if isinstance(v, Function)}

    @property
    def registered_classes(self):
        return {k: v for k, v in self._functions.items() if isinstance(v, Cls)}

    def _default_image(self, image):
        if image is not None:
            if not isinstance(image, Image):
                raise InvalidError("image has to be a modal Image or AioImage object")
            return image
        if self._image is not None:
            return self._image
        # Modal's default image.
        return Image.debian_slim()

    def function(self, _warn_parentheses_missing=None, *, image=None, name=None, **kwargs):
        """Decorator: registers a function of the App and records its image."""
        if _warn_parentheses_missing is not None:
            raise InvalidError("Did you forget parentheses? Suggestion: `@app.function()`.")

        def wrapper(f):
            raw = f.get_raw_f() if isinstance(f, Function) else f
            fn_name = name or getattr(raw, "__name__", "function")
            fn = Function(self, raw, self._default_image(image), fn_name, kwargs)
            self._functions[fn_name] = fn
            return fn

        return wrapper

    def cls(self, _warn_parentheses_missing=None, *, image=None, name=None, **kwargs):
        """Decorator: registers a class of the App and records its image."""
        if _warn_parentheses_missing is not None:
            raise InvalidError("Did you forget parentheses? Suggestion: `@app.cls()`.")

        def wrapper(user_cls):
            cls_name = name or getattr(user_cls, "__name__", "cls")
            c = Cls(self, user_cls, self._default_image(image), cls_name, kwargs)
            self._functions[cls_name] = c
            return c

        return wrapper

    def local_entrypoint(self, _warn_parentheses_missing=None, *, name=None):
        """Decorator: inert in snapbuild (the entrypoint is not run)."""
        if _warn_parentheses_missing is not None:
            raise InvalidError("Did you forget parentheses? Suggestion: `@app.local_entrypoint()`.")
        return lambda f: f

    @contextlib.contextmanager
    def run(self, *args, **kwargs):
        """Inert context manager: inside it, image.build(app) is a no-op."""
        self.app_id = "ap-snapbuild-local"
        try:
            yield self
        finally:
            self.app_id = None

    def deploy(self, *args, **kwargs):
        _no_cloud("App.deploy()")

    def include(self, other_app):
        """Adds the functions and classes of another App."""
        self._included.append(other_app)
        return self

    def _all_functions(self):
        seen = set()
        out = []
        for app in [self] + self._included:
            if id(app) in seen:
                continue
            seen.add(id(app))
            out.extend(app._functions.values())
        return out

    def __repr__(self):
        return "modal.App(%r)" % (self._name,)


# Modal's old name, removed in Modal 1.0.
class Stub(App):
    """Deprecated name of modal.App."""
