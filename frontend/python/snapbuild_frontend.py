"""snapbuild's Python front end: turns a Modal app file into a recipe.

    python3 snapbuild_frontend.py [--select NAME] [--out FILE] [--meta FILE] [--list]
                                  (APP.py[::NAME] | --module PKG.MOD[::NAME])

It imports APP.py as `modal deploy APP.py` does, with snapbuild's modal
package (next to this file) first on sys.path, so that it wins over a real
modal: the file's directory and the working directory ("") come next on
sys.path, the module is named after the file's stem (its __name__ is the
stem, not "__main__", so `if __name__ == "__main__":` blocks do not run) and
is registered in sys.modules; the working directory is left as it is. No
byte code is written (a __pycache__ would change what add_local_dir adds).

With --module, it imports the module as `modal run -m PKG.MOD` does: the
working directory comes next on sys.path, and the module is imported with
importlib.import_module under its dotted name, so that its package's
relative imports (`from . import x`) work; `__main__` blocks do not run.

Then it collects the images the file defines, in definition order:

  - every module-level global that is a modal.Image, named by the variable;
  - the image of every function and class registered with @app.function()
    or @app.cls() (found as module globals, then through the Apps among the
    globals, whose included Apps count too), named by the function or class
    name; when that name is already taken, by "<app>.<name>" (the App's name,
    or the variable that holds the App, or "app"), then "<app>.<name>-2",
    "-3"...

and writes them as JSON, {name: [steps...]}, to --out (default stdout). A
selector (--select NAME, or APP.py::NAME) keeps only the image of that name.
--list prints the names, one a line. --meta FILE writes what names the
images, in the recipe's order:

  {"source": "/abs/APP.py" or "PKG.MOD", "stem": "APP" or "PKG.MOD",
   "images": [{"name": NAME, "app": APP_NAME or null,
               "kind": "image" | "function" | "class",
               "same_as": NAME of an earlier image with the same steps, or null}]}

"app" is, for a function or class, the name of its modal.App (null when the
App has none); for an Image variable, the name of the App of the first
function or class that uses that very image, else the name of the only named
App of the module (its global Apps and the Apps they include), else null.

With --watch-fd FD --owns DIR (how snapbuild starts it), the process forks:
the child loads the file in a process group of its own, and the parent
watches FD, the read end of a pipe whose write end only snapbuild holds.
When snapbuild exits, however it exits (a SIGKILL too), the pipe reads end
of file: the parent then kills the child's process group, removes DIR (the
temporary directory snapbuild wrote this script to) and exits. The child
also dies with the parent (PR_SET_PDEATHSIG), and whatever it started at
import is killed with its group when it ends; the parent is the subreaper
of what the child starts (PR_SET_CHILD_SUBREAPER), so a process started in
a session of its own is killed then too.

Exit status: 0 on success; 1 when the file (or what it calls while its
images are written) raises, after printing the traceback, or when it calls
what needs Modal's servers (modal.Sandbox.create(), f.remote()...), after
printing one line naming the call and the line of the file; 2 for a usage
error, a missing file or module, an unknown selector or a file without
images.
"""

import argparse
import importlib
import importlib.util
import json
import os
import select
import shutil
import signal
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
_IMPORTLIB = os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep


class UsageError(Exception):
    pass


def setup_sys_path(script_dir):
    """snapbuild's modal first, then the script's directory and the working directory."""
    rest = [p for p in sys.path if p not in (HERE, script_dir)]
    if "" not in rest:
        rest.insert(0, "")
    sys.path[:] = [HERE, script_dir] + rest


def setup_module_sys_path():
    """snapbuild's modal first, then the working directory (modal run -m's sys.path)."""
    rest = [p for p in sys.path if p not in (HERE, "")]
    sys.path[:] = [HERE, ""] + rest


def import_file(path, stem):
    spec = importlib.util.spec_from_file_location(stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[stem] = module
    spec.loader.exec_module(module)
    return module


def _machinery(filename):
    return (
        filename == os.path.abspath(__file__)
        or filename.startswith("<frozen importlib")
        or filename.startswith(_IMPORTLIB)
    )


def _user_traceback(exc):
    """The traceback of exc without this file's frames and the import machinery's."""
    tb = exc.__traceback__
    while tb is not None and _machinery(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def collect(module, modal):
    """[(name, image, fn)] of the module, in definition order; fn is the
    function or class of the image (None for an Image variable)."""
    from modal.app import Cls, Function

    Image, App = modal.Image, modal.App
    entries = []  # [name or None, image, function or None]
    taken = set()
    globals_ = list(vars(module).items())

    for var, value in globals_:
        if isinstance(value, Image) and not var.startswith("__"):
            entries.append([var, value, None])
            taken.add(var)

    app_labels = {}
    for var, value in globals_:
        if isinstance(value, App) and id(value) not in app_labels:
            app_labels[id(value)] = value.name or var

    seen_fns = set()
    order = []  # functions in the order they appear among the globals, then the rest
    for var, value in globals_:
        if isinstance(value, (Function, Cls)) and id(value) not in seen_fns:
            seen_fns.add(id(value))
            order.append((var, value))
    for var, value in globals_:
        if isinstance(value, App):
            for fn in value._all_functions():
                if id(fn) not in seen_fns:
                    seen_fns.add(id(fn))
                    order.append((None, fn))

    # Function images go where their functions are among the globals (or last).
    positions = {var: i for i, (var, _) in enumerate(globals_)}
    placed = []
    for var, fn in order:
        label = app_labels.get(id(fn.app)) or fn.app.name or "app"
        name = fn._name
        if name in taken:
            base = "%s.%s" % (label, name)
            name, n = base, 1
            while name in taken:
                n += 1
                name = "%s-%d" % (base, n)
        taken.add(name)
        placed.append((positions.get(var, len(globals_)), name, fn.image, fn))

    out = [(positions[var], var, img, None) for var, img, _ in entries]
    out.extend(placed)
    out.sort(key=lambda e: e[0])  # stable: functions of one global keep their order
    return [(name, img, fn) for _, name, img, fn in out]


def _module_apps(module, App):
    """The Apps of the module's globals and the Apps they include, once each, in order."""
    apps, seen = [], set()

    def add(app):
        if id(app) in seen:
            return
        seen.add(id(app))
        apps.append(app)
        for other in app._included:
            add(other)

    for value in vars(module).values():
        if isinstance(value, App):
            add(value)
    return apps


def image_meta(module, modal, images, steps):
    """The "images" list of --meta: images are collect()'s entries to write,
    steps their recipe steps (in the same order)."""
    from modal.app import Cls

    fns = [fn for _, _, fn in collect(module, modal) if fn is not None]
    named = {app.name for app in _module_apps(module, modal.App) if app.name is not None}
    only_app = named.pop() if len(named) == 1 else None
    keys = []
    out = []
    for (name, img, fn), st in zip(images, steps):
        if fn is not None:
            kind = "class" if isinstance(fn, Cls) else "function"
            app = fn.app.name
        else:
            kind = "image"
            user = next((f for f in fns if f.image is img), None)
            app = user.app.name if user is not None and user.app.name is not None else only_app
        key = json.dumps(st, sort_keys=True)
        same = next((n for n, k in keys if k == key), None)
        keys.append((name, key))
        out.append({"name": name, "app": app, "kind": kind, "same_as": same})
    return out


def main(argv=None):
    # No __pycache__ in the user's tree (nor in the shim's): a directory added
    # with add_local_dir would change between two builds.
    sys.dont_write_bytecode = True
    p = argparse.ArgumentParser(prog="snapbuild_frontend.py", description="Write the recipe of a Modal app file.")
    p.add_argument("file", nargs="?", help="the app file, APP.py or APP.py::NAME")
    p.add_argument("--module", "-m", default="", help="import this module (PKG.MOD or PKG.MOD::NAME) instead of a file")
    p.add_argument("--select", default="", help="keep only the image of this name")
    p.add_argument("--out", default="-", help="where to write the JSON recipe (default: stdout)")
    p.add_argument("--meta", default="", help="where to write the images' names, Apps and kinds as JSON")
    p.add_argument("--list", action="store_true", help="print the image names instead")
    p.add_argument("--watch-fd", type=int, default=-1, help="load in a child process; kill it and remove --owns when this pipe reads end of file")
    p.add_argument("--owns", default="", help="the directory to remove when --watch-fd reads end of file")
    args = p.parse_args(argv)
    if args.watch_fd >= 0:
        status = supervise(args.watch_fd, args.owns)
        if status is not None:
            return status
    if bool(args.file) == bool(args.module):
        p.error("give an app file or --module, not both" if args.file else "give an app file or --module MODULE")

    ref, selector = args.module or args.file, args.select
    if "::" in ref:
        ref, sel = ref.split("::", 1)
        selector = selector or sel
    try:
        if args.module:
            module, source, stem, label = load_module(ref)
        else:
            module, source, stem, label = load_file(ref)
        if module is None:
            return 1
        return write(module, source, stem, label, selector, args.out, args.meta, args.list)
    except UsageError as exc:
        print("snapbuild: %s" % exc, file=sys.stderr)
        return 2


def supervise(fd, owned):
    """Forks. In the child, returns None: the child goes on to load the file,
    in a process group of its own, and dies with its parent. In the parent,
    waits for the child or for end of file on fd (snapbuild is gone), and
    returns the exit status: the child's (128+N when a signal N killed it),
    or 1 after killing the child's group and removing owned."""
    sys.stdout.flush()
    sys.stderr.flush()
    _become_subreaper()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(fd)
        os.setpgid(0, 0)
        _die_with_parent()
        if os.getppid() != parent:  # the parent died before prctl
            os._exit(1)
        return None
    try:
        os.setpgid(pid, pid)  # the child may not have run yet
    except OSError:
        pass
    # snapbuild handles Ctrl-C: it closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    watched = [fd] if pidfd is None else [fd, pidfd]
    while True:
        try:
            ready, _, _ = select.select(watched, [], [], 0.2 if pidfd is None else None)
        except InterruptedError:
            ready = []
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            _kill_group(pid)  # what it started and left running
            _kill_orphans()
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code
        if fd in ready and not os.read(fd, 512):
            _kill_group(pid)
            os.waitpid(pid, 0)
            _kill_orphans()
            if owned:
                shutil.rmtree(owned, ignore_errors=True)
            return 1


def _die_with_parent():
    """Asks the kernel to SIGKILL this process when its parent dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # no ctypes: the parent still kills the group
        pass


def _become_subreaper():
    """Makes this process the subreaper of what it starts: a process the
    file starts in a session of its own (out of the loader's group), or
    that outlives its parent, becomes this process's child when orphaned,
    and _kill_orphans finds it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:  # no ctypes: the group is still killed
        pass


def _children():
    """Returns the pids of this process's children, from /proc."""
    me, pids = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == me:
            pids.append(int(name))
    return pids


def _kill_orphans():
    """Kills and reaps the processes orphaned to this subreaper (see
    _become_subreaper), and theirs, until none is left."""
    for _ in range(100):
        pids = _children()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _prepare():
    """Imports snapbuild's modal (first on sys.path) and returns it."""
    import modal  # snapbuild's, from HERE

    if not getattr(modal, "__snapbuild__", False):
        raise UsageError("imported %s instead of snapbuild's modal" % getattr(modal, "__file__", "another modal"))
    return modal


def _report(exc, label, relative_hint=None):
    """Prints what the file raised: one line for a call that needs Modal's
    servers, else the traceback. Returns the exit status."""
    from modal._cloud import ServerCallError

    if isinstance(exc, SystemExit):
        print("snapbuild: %s exited (status %s) while being imported" % (label, exc.code), file=sys.stderr)
    elif isinstance(exc, ServerCallError):
        print("snapbuild: %s" % exc, file=sys.stderr)
    elif relative_hint and isinstance(exc, ImportError) and "attempted relative import with no known parent package" in str(exc):
        sys.stderr.write(_user_traceback(exc))
        print("snapbuild: %s" % relative_hint, file=sys.stderr)
    else:
        sys.stderr.write(_user_traceback(exc))
    return 1


def load_file(file):
    """(module, source, stem, label) of an app file; module is None when it raised (reported)."""
    path = os.path.abspath(file)
    if not os.path.isfile(path):
        raise UsageError("%s: no such file" % file)
    stem = os.path.splitext(os.path.basename(path))[0]
    if "." in stem:
        raise UsageError(
            "Invalid Modal source filename: %r.\n\nSource filename cannot contain additional period characters."
            % os.path.basename(path)
        )
    if stem == "modal":
        raise UsageError("%s: a file named modal.py would hide the modal package; rename it" % file)

    setup_sys_path(os.path.dirname(os.path.realpath(path)))
    _prepare()
    from modal import _state

    _state.build_file = path
    sys.argv = [path]
    try:
        return import_file(path, stem), path, stem, file
    except BaseException as exc:  # noqa: BLE001 (report whatever the file raised)
        rel = os.path.relpath(path)
        dotted = rel[: -len(".py")].replace(os.sep, ".") if rel.endswith(".py") and not rel.startswith("..") else ""
        hint = (
            "%s uses relative imports, so it is a module of a package: read it in module mode, "
            "`snapbuild build -m %s`, from the directory that holds the package"
            % (file, dotted or "PKG.%s" % stem)
        )
        _report(exc, file, hint)
        return None, None, None, None


def _valid_module_name(name):
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def load_module(name):
    """(module, source, stem, label) of a module imported by its dotted name
    (modal run -m); module is None when it raised (reported)."""
    if not _valid_module_name(name):
        raise UsageError("-m %s: not a module name (PKG.MODULE, as for python -m)" % name)
    setup_module_sys_path()
    _prepare()
    from modal import _state

    sys.argv = [name]
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        parts = name.split(".")
        prefixes = {".".join(parts[: i + 1]) for i in range(len(parts))}
        if exc.name in prefixes:
            raise UsageError(_not_found(name, exc.name)) from None
        _report(exc, name)  # a module that the module imports is missing
        return None, None, None, None
    except BaseException as exc:  # noqa: BLE001 (report whatever the module raised)
        _report(exc, name)
        return None, None, None, None
    path = getattr(module, "__file__", None)
    if path:
        _state.build_file = os.path.abspath(path)
    return module, name, name, name


def _not_found(name, missing):
    top = name.split(".")[0]
    if missing == top:
        return (
            "-m %s: no module named %r in the working directory (%s) nor elsewhere on sys.path; "
            "run from the directory that holds %s/, as with `modal run -m`" % (name, top, os.getcwd(), top)
        )
    parent, _, child = missing.rpartition(".")
    pkg = sys.modules.get(parent)
    locs = list(getattr(pkg, "__path__", []) or [])
    return "-m %s: package %s (%s) has no module %r" % (name, parent, ", ".join(locs) or "no directory", child)


def write(module, source, stem, label, selector, out, meta, list_only):
    """Writes the recipe (and the meta) of the imported module; returns the exit status."""
    import modal
    from modal._image import recipe_steps

    images = collect(module, modal)
    names = [n for n, _, _ in images]
    if list_only:
        sys.stdout.write("".join(n + "\n" for n in names))
        return 0
    if not images:
        raise UsageError(
            "%s defines no image: assign a modal.Image to a module-level variable, "
            "or use one in @app.function(image=...)" % label
        )
    if selector:
        images = [e for e in images if e[0] == selector]
        if not images:
            raise UsageError("%s has no image named %r; its images: %s" % (label, selector, ", ".join(names)))

    recipe = {}
    memo = {}
    for name, img, _ in images:
        try:
            recipe[name] = recipe_steps(img, memo)
        except BaseException as exc:  # noqa: BLE001
            _report(exc, label)
            print("snapbuild: while writing the recipe of image %r of %s" % (name, label), file=sys.stderr)
            return 1

    data = json.dumps(recipe, indent=1, ensure_ascii=False) + "\n"
    if out == "-":
        sys.stdout.write(data)
    else:
        with open(out, "w", encoding="utf-8") as f:
            f.write(data)
    if meta:
        doc = {
            "source": source,
            "stem": stem,
            "images": image_meta(module, modal, images, [recipe[n] for n, _, _ in images]),
        }
        with open(meta, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
