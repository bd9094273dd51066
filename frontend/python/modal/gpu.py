"""modal.gpu: Modal's deprecated GPU objects, and GPU argument parsing.

gpu= takes a string ("T4", "a100:2", "A100-80GB:4"), None, or (deprecated)
one of these objects: modal.gpu.A100(count=2) is "A100:2".
"""

from . import _cloud
from .exception import DeprecationError, InvalidError


class _GPUConfig:
    gpu_type = ""

    def __init__(self, *, count=1):
        _cloud.warn(
            "modal.gpu.%s is deprecated: use the string form, gpu=%r" % (type(self).__name__, self._string(count)),
            DeprecationError,
        )
        self.count = count

    def _string(self, count=None):
        count = self.count if count is None else count
        return self.gpu_type if count == 1 else "%s:%d" % (self.gpu_type, count)

    def __str__(self):
        return self._string()

    def __repr__(self):
        return "modal.gpu.%s(count=%d)" % (type(self).__name__, self.count)


def _simple(name, gpu_type):
    cls = type(name, (_GPUConfig,), {"gpu_type": gpu_type, "__module__": __name__})
    cls.__doc__ = "The %s GPU (deprecated: use gpu=%r)." % (gpu_type, gpu_type)
    return cls


T4 = _simple("T4", "T4")
L4 = _simple("L4", "L4")
A10G = _simple("A10G", "A10G")
L40S = _simple("L40S", "L40S")
H100 = _simple("H100", "H100")
H200 = _simple("H200", "H200")
B200 = _simple("B200", "B200")
Any = _simple("Any", "ANY")


class A100(_GPUConfig):
    """The A100 GPU (deprecated: use gpu="A100", "A100-80GB", "A100:2")."""

    def __init__(self, *, count=1, size=None, memory=0):
        if memory and not size:
            size = "%dGB" % memory
        self.gpu_type = "A100-" + size.upper() if size and size.upper() != "40GB" else "A100"
        super().__init__(count=count)


def to_string(value):
    """The string form of a gpu= argument (None stays None); raises
    InvalidError as Modal does for a bad value."""
    if value is None:
        return None
    if isinstance(value, _GPUConfig):
        return str(value)
    if isinstance(value, str):
        if ":" in value:
            count = value.split(":", 1)[1]
            try:
                int(count)
            except ValueError:
                raise InvalidError("Invalid GPU count: %s. Value must be an integer." % count) from None
        return value
    raise InvalidError(
        "Invalid GPU config: %r. Value must be a string or `None` (or a deprecated `modal.gpu` object)" % (value,)
    )


class GPUConfigRepr:
    """Modal's GPUConfig proto as its repr (text format) reads, for
    run_function's definition."""

    def __init__(self, value):
        s = to_string(value)
        self.gpu_type, self.count = "", 0
        if s is not None:
            t, _, c = s.partition(":")
            self.gpu_type, self.count = t.upper(), int(c) if c else 1

    def __repr__(self):
        out = ""
        if self.gpu_type:
            out += 'gpu_type: "%s"\n' % self.gpu_type
        if self.count:
            out += "count: %d\n" % self.count
        return out
