"""snapbuild's run_function runner, run inside a build container:

    python /.snapbuild/python/snapbuild_run_function.py /.snapbuild/request.json

request.json is {"module": NAME, "function": QUALNAME} (the module is
imported from /root, where snapbuild mounts its source), or {"pickled":
BASE64} (a cloudpickled function, for functions defined in an interactive
session), plus the arguments: "input" (BASE64 of pickle.dumps((args,
kwargs))) or "args" (a JSON list) and "kwargs" (a JSON object).

The function is called once; its return value is ignored (a coroutine is run
to completion). An exception prints its traceback on stderr and exits 1.
No byte code is written (it would land in the layer).
snapbuild's modal package (this file's directory) comes first on sys.path
and /root next, so `import modal` in the user's module finds the shim, and
modal.is_local() is False. Only the standard library is needed, and
cloudpickle for a pickled function or arguments that needed it.
"""

import base64
import importlib
import inspect
import json
import os
import pickle
import sys
import traceback

RUNTIME = os.path.dirname(os.path.abspath(__file__))


def _setup_path():
    rest = [p for p in sys.path if p not in (RUNTIME, "/root")]
    sys.path[:] = [RUNTIME, "/root"] + rest


def _unpickle(data, what):
    try:
        return pickle.loads(base64.b64decode(data))
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "cloudpickle":
            raise RuntimeError(
                "snapbuild: the %s was pickled with cloudpickle, which this image lacks: "
                "install it in an earlier step (e.g. .pip_install(\"cloudpickle\") or .apt_install(\"python3-cloudpickle\"))"
                % what
            ) from None
        raise


def load_function(req):
    """The callable a request names, unwrapped with get_raw_f()."""
    if req.get("pickled"):
        f = _unpickle(req["pickled"], "function")
    else:
        obj = importlib.import_module(req["module"])
        for part in req["function"].split("."):
            obj = getattr(obj, part)
        f = obj
    while hasattr(f, "get_raw_f") and callable(f.get_raw_f):
        raw = f.get_raw_f()
        if raw is f:
            break
        f = raw
    return f


def load_arguments(req):
    if req.get("input"):
        args, kwargs = _unpickle(req["input"], "input")
    else:
        args, kwargs = req.get("args") or [], req.get("kwargs") or {}
    return list(args), dict(kwargs)


def _print_traceback(exc):
    tb = exc.__traceback__
    here = os.path.abspath(__file__)
    while tb is not None and tb.tb_frame.f_code.co_filename == here:
        tb = tb.tb_next
    sys.stderr.write("".join(traceback.format_exception(type(exc), exc, tb)))
    sys.stderr.flush()


def main(argv):
    if len(argv) != 2:
        print("usage: %s REQUEST.json" % os.path.basename(argv[0]), file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        req = json.load(f)
    _setup_path()
    # Byte code of the user's modules would land in the image (/root/__pycache__).
    sys.dont_write_bytecode = True
    import modal  # noqa: PLC0415 (snapbuild's, first on sys.path)

    state = getattr(modal, "_state", None)
    if state is not None:
        state.in_container = True
    sys.argv = [req.get("module") or "pickled-function"]
    try:
        f = load_function(req)
        args, kwargs = load_arguments(req)
        result = f(*args, **kwargs)
        if inspect.iscoroutine(result):
            import asyncio  # noqa: PLC0415

            asyncio.run(result)
    except SystemExit as exc:
        if exc.code in (None, 0):
            return 0
        _print_traceback(exc)
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 (report whatever the function raised)
        _print_traceback(exc)
        return 1
    finally:
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
