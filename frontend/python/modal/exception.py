"""Modal's exception classes (modal.exception), for snapbuild's modal shim.

The names and the hierarchy follow Modal's, so that `except modal.exception.X`
in an image definition behaves as with Modal. A name Modal has and this list
lacks is made on first use as a subclass of Error.
"""


class Error(Exception):
    """Base class for Modal errors."""


class AlreadyExistsError(Error):
    """An object already exists."""


class AuthError(Error):
    """Authentication failed."""


class ConnectionError(Error):  # noqa: A001 (Modal's name)
    """A connection failed."""


class ExecutionError(Error):
    """Something went wrong while running user code."""


class InvalidError(Error):
    """An argument or the use of an API is invalid."""


class LocalFunctionError(InvalidError):
    """A function cannot be imported by name (it is not in global scope)."""


class NotFoundError(Error):
    """An object is not found."""


class VersionError(Error):
    """An unsupported version was asked for."""


class TimeoutError(Error):  # noqa: A001 (Modal's name)
    """Something timed out."""


class FunctionTimeoutError(TimeoutError):
    """A function timed out."""


class SandboxTimeoutError(TimeoutError):
    """A sandbox timed out."""


class SandboxTerminatedError(Error):
    """A sandbox was terminated."""


class MountUploadTimeoutError(TimeoutError):
    """A mount upload timed out."""


class VolumeUploadTimeoutError(TimeoutError):
    """A volume upload timed out."""


class InteractiveTimeoutError(TimeoutError):
    """An interactive session timed out."""


class RemoteError(Error):
    """An error on the remote side."""


class InternalFailure(Error):
    """An internal failure."""


class SerializationError(Error):
    """An object could not be serialized."""


class DeserializationError(Error):
    """An object could not be deserialized."""


class RequestSizeError(Error):
    """A request is too large."""


class OutputExpiredError(TimeoutError):
    """An output expired."""


class ClientClosed(Error):
    """The client is closed."""


class ImageBuildError(Error):
    """An image build failed."""


class ModuleNotMountable(Error):
    """A Python module cannot be added to an image (add_local_python_source)."""


class NonLocalMountError(Error):
    """A mount has no local files."""


class InputCancellation(BaseException):
    """An input was cancelled."""


class DeprecationError(UserWarning):
    """A deprecated API was used."""


class PendingDeprecationError(UserWarning):
    """An API is about to be deprecated."""


class ServerWarning(UserWarning):
    """A warning from the server."""


def __getattr__(name):
    # Other Modal exception names: a subclass of Error, made once.
    if name.startswith("_") or not name[:1].isupper():
        raise AttributeError(name)
    cls = type(name, (Error,), {"__module__": __name__, "__doc__": "A Modal error (snapbuild shim)."})
    globals()[name] = cls
    return cls
