"""snapbuild's modal: the parts of Modal's API that an image definition uses.

snapbuild runs a Modal app file (`snapbuild build app.py`) with this package
first on sys.path, so `import modal` finds it even where the real modal is
installed. modal.Image records method chains that snapbuild builds locally;
modal.App, Secret, Volume, FilePatternMatcher, gpu and exception follow
Modal's signatures. Everything else an app file may touch at import time is
there too (see _api.py): references to objects on Modal's servers
(Dict.from_name...) are made as in Modal, plain values (Retries, Cron...)
keep their arguments, and anything else is inert (_inert.py). What cannot be
done locally (f.remote(), Sandbox.create(), d.get(k); Mount, network file
systems, cloud buckets) fails with a message saying so (_cloud.py).

The same package is mounted read-only at /.snapbuild/python in build
containers, where snapbuild_run_function.py imports the app's module to run
an Image.run_function step; there modal.is_local() is False.
"""

import sys as _sys

from . import _api, _inert, _state
from . import exception, gpu  # noqa: F401 (public submodules)
from ._image import AUTO_DOCKERIGNORE, Image  # noqa: F401
from .app import App, Cls, Function, Stub  # noqa: F401
from .exception import Error  # noqa: F401
from .file_pattern_matcher import FilePatternMatcher  # noqa: F401
from .mount import Mount  # noqa: F401
from .partial_function import (  # noqa: F401
    asgi_app,
    batched,
    build,
    clustered,
    concurrent,
    enter,
    exit,
    fastapi_endpoint,
    method,
    parameter,
    web_endpoint,
    web_server,
    wsgi_app,
)
from .secret import Secret  # noqa: F401
from .volume import CloudBucketMount, NetworkFileSystem, Volume  # noqa: F401

__version__ = "1.0.0+snapbuild"
__snapbuild__ = True  # this is snapbuild's modal, not Modal's


def is_local():
    """True while snapbuild reads the file; False inside a build container."""
    return not _state.in_container


def __getattr__(name):
    # The rest of Modal's API (Dict, Queue, Sandbox, FunctionCall, Retries,
    # Cron, forward, enable_output..., and the submodules: modal.config,
    # modal.runner...): see _api.
    value = _api.top_level(name)
    setattr(_sys.modules[__name__], name, value)
    return value


_inert.install()
