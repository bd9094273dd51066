"""Process-wide state of snapbuild's modal shim."""

import sys

# The absolute path of the file being built (set by snapbuild_frontend.py):
# a function whose __module__ is "__main__" is imported from it by name when
# __main__ is that file, and pickled otherwise.
build_file = None

# True inside a build container (set by snapbuild_run_function.py):
# modal.is_local() is then False, as in a Modal container.
in_container = False

# Every App made, in order (the front end collects their functions' images).
apps = []


def warn(msg):
    print("snapbuild: warning: " + msg, file=sys.stderr)


def cloudpickle():
    """The cloudpickle module, or None when it cannot be imported."""
    try:
        import cloudpickle as cp  # noqa: PLC0415
    except ImportError:
        return None
    return cp
