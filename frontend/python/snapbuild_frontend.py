"""snapbuild's Python front end: turns a Modal app file into a recipe.

    python3 snapbuild_frontend.py [--select NAME] [--out FILE] [--list] APP.py[::NAME]

It imports APP.py as `modal deploy APP.py` does, with snapbuild's modal
package (next to this file) first on sys.path, so that it wins over a real
modal: the file's directory and the working directory ("") come next on
sys.path, the module is named after the file's stem (its __name__ is the
stem, not "__main__", so `if __name__ == "__main__":` blocks do not run) and
is registered in sys.modules; the working directory is left as it is. No
byte code is written (a __pycache__ would change what add_local_dir adds).

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
--list prints the names, one a line.

Exit status: 0 on success; 1 when the file (or what it calls while its
images are written) raises, after printing the traceback; 2 for a usage
error, a missing file, an unknown selector or a file without images.
"""

import argparse
import importlib.util
import json
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


class UsageError(Exception):
    pass


def setup_sys_path(script_dir):
    """snapbuild's modal first, then the script's directory and the working directory."""
    rest = [p for p in sys.path if p not in (HERE, script_dir)]
    if "" not in rest:
        rest.insert(0, "")
    sys.path[:] = [HERE, script_dir] + rest


def import_file(path, stem):
    spec = importlib.util.spec_from_file_location(stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[stem] = module
    spec.loader.exec_module(module)
    return module


def _user_traceback(exc):
    """The traceback of exc without this file's frames and the import machinery's."""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name == os.path.abspath(__file__) or name.startswith("<frozen importlib"):
            tb = tb.tb_next
            continue
        break
    return "".join(traceback.format_exception(type(exc), exc, tb))


def collect(module, modal):
    """[(name, image)] of the module, in definition order."""
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
        placed.append((positions.get(var, len(globals_)), name, fn.image))

    out = [(positions[var], var, img) for var, img, _ in entries]
    out.extend(placed)
    out.sort(key=lambda e: e[0])  # stable: functions of one global keep their order
    return [(name, img) for _, name, img in out]


def main(argv=None):
    # No __pycache__ in the user's tree (nor in the shim's): a directory added
    # with add_local_dir would change between two builds.
    sys.dont_write_bytecode = True
    p = argparse.ArgumentParser(prog="snapbuild_frontend.py", description="Write the recipe of a Modal app file.")
    p.add_argument("file", help="the app file, APP.py or APP.py::NAME")
    p.add_argument("--select", default="", help="keep only the image of this name")
    p.add_argument("--out", default="-", help="where to write the JSON recipe (default: stdout)")
    p.add_argument("--list", action="store_true", help="print the image names instead")
    args = p.parse_args(argv)

    file, selector = args.file, args.select
    if "::" in file:
        file, sel = file.split("::", 1)
        selector = selector or sel
    try:
        return run(file, selector, args.out, args.list)
    except UsageError as exc:
        print("snapbuild: %s" % exc, file=sys.stderr)
        return 2


def run(file, selector, out, list_only):
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
    import modal  # snapbuild's, from HERE
    from modal import _state
    from modal._image import recipe_steps

    if not getattr(modal, "__snapbuild__", False):
        raise UsageError("imported %s instead of snapbuild's modal" % getattr(modal, "__file__", "another modal"))
    _state.build_file = path
    sys.argv = [path]

    try:
        module = import_file(path, stem)
    except SystemExit as exc:
        print("snapbuild: %s exited (status %s) while being imported" % (file, exc.code), file=sys.stderr)
        return 1
    except BaseException as exc:  # noqa: BLE001 (report whatever the file raised)
        sys.stderr.write(_user_traceback(exc))
        return 1

    images = collect(module, modal)
    names = [n for n, _ in images]
    if list_only:
        sys.stdout.write("".join(n + "\n" for n in names))
        return 0
    if not images:
        raise UsageError(
            "%s defines no image: assign a modal.Image to a module-level variable, "
            "or use one in @app.function(image=...)" % file
        )
    if selector:
        images = [(n, img) for n, img in images if n == selector]
        if not images:
            raise UsageError("%s has no image named %r; its images: %s" % (file, selector, ", ".join(names)))

    recipe = {}
    memo = {}
    for name, img in images:
        try:
            recipe[name] = recipe_steps(img, memo)
        except BaseException as exc:  # noqa: BLE001
            sys.stderr.write(_user_traceback(exc))
            print("snapbuild: while writing the recipe of image %r of %s" % (name, file), file=sys.stderr)
            return 1

    data = json.dumps(recipe, indent=1, ensure_ascii=False) + "\n"
    if out == "-":
        sys.stdout.write(data)
    else:
        with open(out, "w", encoding="utf-8") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
