"""modal.App for snapbuild: records which image each function uses.

@app.function(image=...) and @app.cls(...) return wrappers that remember the
function (or class), its image and its options; the front end collects their
images. Nothing runs remotely: .remote(), .spawn(), .map() and
App.deploy() raise _cloud.ServerCallError (one line naming the call and the
user's line); .local() and calling the wrapper run the function here.
local_entrypoint() is inert, and app.run() is an inert context manager.
"""

import contextlib
import functools

from . import _api, _cloud, _state
from ._image import Image
from ._object import InertAttrs
from .exception import InvalidError


# References to deployed functions and classes (Function.from_name,
# Cls.from_name): lazy in Modal, so they are made; using one needs the servers.
_FunctionRef = _cloud.server_class("Function", "modal.functions", lazy=("from_name", "from_id"))
_ClsRef = _cloud.server_class("Cls", "modal.cls", lazy=("from_name",), callable_=True)

# Methods of a registered function or class method that run on Modal.
_REMOTE_METHODS = frozenset(
    "remote remote_gen spawn spawn_map map starmap for_each get_web_url get_current_stats "
    "hydrate keep_warm update_autoscaler".split()
)
# Properties that Modal's servers answer: reading one raises.
_REMOTE_PROPERTIES = frozenset(["web_url"])


def _remote_attr(label, name):
    if name in _REMOTE_PROPERTIES:
        _cloud.server_call("%s.%s" % (label, name))
    return _cloud.ServerCall("%s.%s" % (label, name))


class Function(metaclass=InertAttrs):
    """A function registered with @app.function() (modal.Function).

    .local() and calling it run the function here; .remote(), .spawn(),
    .map() and the other methods that run on Modal raise ServerCallError.
    """

    from_name = staticmethod(_FunctionRef.from_name)
    from_id = staticmethod(_FunctionRef.from_id)

    @staticmethod
    def lookup(*args, **kwargs):
        """Deprecated in Modal: looks the function up on Modal's servers."""
        _cloud.server_call("modal.Function.lookup(%s)" % _cloud.args_repr(args, kwargs))

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

    def with_options(self, **kwargs):
        return self

    def __getattr__(self, name):
        if name in _REMOTE_METHODS or name in _REMOTE_PROPERTIES:
            return _remote_attr(self._name, name)
        raise AttributeError("%r object has no attribute %r" % (type(self).__name__, name))

    def __repr__(self):
        return "modal.Function(%s)" % self._name


class _Method:
    """A method of an instance of a registered class (Model().generate):
    .local() and calling it run it here; .remote() and the like raise."""

    def __init__(self, label, get_bound):
        self._label = label
        self._get_bound = get_bound

    def local(self, *args, **kwargs):
        return self._get_bound()(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self._get_bound()(*args, **kwargs)

    def __getattr__(self, name):
        if name in _REMOTE_METHODS or name in _REMOTE_PROPERTIES:
            return _remote_attr(self._label, name)
        return getattr(self._get_bound(), name)


class _Obj:
    """An instance of a registered class (modal.cls.Obj): the user's class is
    instantiated on first use, as in Modal; its methods are _Methods."""

    def __init__(self, cls, args, kwargs):
        self._cls = cls
        self._args = args
        self._kwargs = kwargs
        self._instance = None

    def _get(self):
        if self._instance is None:
            self._instance = self._cls._user_cls(*self._args, **self._kwargs)
        return self._instance

    def with_options(self, **kwargs):
        return self

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._cls._user_cls, name, None)
        if not callable(attr) or isinstance(attr, type):
            return getattr(self._get(), name)
        return _Method("%s().%s" % (self._cls._name, name), lambda: getattr(self._get(), name))

    def __repr__(self):
        return "modal.Cls(%s)()" % self._cls._name


class Cls(metaclass=InertAttrs):
    """A class registered with @app.cls() (modal.Cls).

    Calling it gives an instance whose methods run here with .local() (or a
    plain call); .remote(), .spawn() and .map() raise ServerCallError.
    """

    from_name = staticmethod(_ClsRef.from_name)

    @staticmethod
    def lookup(*args, **kwargs):
        """Deprecated in Modal: looks the class up on Modal's servers."""
        _cloud.server_call("modal.Cls.lookup(%s)" % _cloud.args_repr(args, kwargs))

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
        """An instance of the class (the user's class is instantiated on first use)."""
        return _Obj(self, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._user_cls, name)

    def with_options(self, **kwargs):
        return self

    with_concurrency = with_options
    with_batching = with_options

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
        """Deploys the App on Modal: raises ServerCallError."""
        _cloud.server_call("%s.deploy()" % ("app" if self._name is None else "modal.App(%r)" % self._name))

    @staticmethod
    def lookup(name, *args, **kwargs):
        """Looks a deployed App up on Modal's servers: raises ServerCallError."""
        _cloud.server_call("modal.App.lookup(%r)" % (name,))

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


__getattr__ = _api.module_getattr(__name__)  # the rest of the module: see _api
