"""Small helpers shared by the shim's object classes."""

from ._inert import Inert, public


class InertAttrs(type):
    """Metaclass: unknown public class attributes (Volume.ephemeral,
    Secret.objects, App.lookup...) are inert instead of AttributeErrors."""

    def __getattr__(cls, name):
        if not public(name):
            raise AttributeError(name)
        return Inert("%s.%s" % (cls.__name__, name))


def object_id_unknown(kind):
    from .exception import InvalidError

    raise InvalidError(
        "snapbuild: a %s has no object ID while snapbuild reads an image definition "
        "(nothing is deployed to Modal); name images with `snapbuild build -t` instead" % kind
    )


def inert_method(owner, name):
    return Inert("%s.%s" % (owner, name))
