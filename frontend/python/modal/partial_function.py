"""Modal's function decorators (modal.method, modal.enter, ...), inert for snapbuild.

They mark how Modal serves a function or class; building an image needs
none of it, so each returns what it decorates unchanged. Both @modal.x and
@modal.x(...) work.
"""

from . import _api


def _inert_decorator(name):
    def decorator(_warn_parentheses_missing=None, **kwargs):
        if _warn_parentheses_missing is not None and callable(_warn_parentheses_missing):
            return _warn_parentheses_missing
        return lambda f: f

    decorator.__name__ = name
    decorator.__qualname__ = name
    decorator.__doc__ = "modal.%s: inert in snapbuild (returns the decorated object unchanged)." % name
    return decorator


method = _inert_decorator("method")
enter = _inert_decorator("enter")
exit = _inert_decorator("exit")  # noqa: A001 (Modal's name)
fastapi_endpoint = _inert_decorator("fastapi_endpoint")
web_endpoint = _inert_decorator("web_endpoint")
asgi_app = _inert_decorator("asgi_app")
wsgi_app = _inert_decorator("wsgi_app")
batched = _inert_decorator("batched")
concurrent = _inert_decorator("concurrent")
build = _inert_decorator("build")
clustered = _inert_decorator("clustered")


def web_server(port=None, **kwargs):
    """modal.web_server: inert in snapbuild."""
    if callable(port):
        return port
    return lambda f: f


def parameter(*, default=None, init=True):
    """modal.parameter(): a class parameter; in snapbuild, its default."""
    return default


__getattr__ = _api.module_getattr(__name__)  # the rest of the module: see _api
