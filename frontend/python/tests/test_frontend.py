"""snapbuild_frontend.py: import semantics, image collection, names,
selectors and errors, run in a fresh interpreter as snapbuild runs it."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parent.parent
BOOTSTRAP = PYTHON_DIR / "snapbuild_frontend.py"


def run(args, cwd, env=None):
    e = dict(os.environ)
    e.pop("PYTHONPATH", None)
    e.pop("PYTHONDONTWRITEBYTECODE", None)  # the front end must not write byte code itself
    e.update(env or {})
    return subprocess.run(
        [sys.executable, str(BOOTSTRAP)] + args, cwd=cwd, env=e, capture_output=True, text=True, timeout=60
    )


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name).resolve()

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, rel, text):
        p = self.dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        return p

    def build(self, file, *args, cwd=None, env=None, module=None):
        out = self.dir / "out.json"
        if out.exists():
            out.unlink()
        target = ["--module", module] if module else [str(file)]
        r = run(["--out", str(out)] + list(args) + target, cwd or self.dir, env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(out.read_text()), r


class TestImportSemantics(Base):
    def test_module_like_modal_deploy(self):
        self.write("proj/helper_mod.py", "VALUE = 'from-script-dir'\n")
        self.write("cwd_mod.py", "VALUE = 'from-cwd'\n")
        app = self.write(
            "proj/app.py",
            """
            import os, sys
            import modal
            import helper_mod  # the script's directory is on sys.path
            import cwd_mod  # so is the working directory, as with `modal deploy`
            assert __name__ == "app", __name__
            assert sys.modules["app"] is sys.modules[__name__]
            print("cwd", os.getcwd())
            print("modal", modal.__file__)
            image = modal.Image.debian_slim().env({"V": helper_mod.VALUE, "W": cwd_mod.VALUE})
            if __name__ == "__main__":
                raise SystemExit("the main block ran")
            """,
        )
        recipe, r = self.build(app, cwd=self.dir)
        self.assertEqual(recipe, {"image": [{"debian_slim": {}}, {"env": {"vars": {"V": "from-script-dir", "W": "from-cwd"}}}]})
        self.assertEqual(list(self.dir.rglob("__pycache__")), [])  # no byte code written
        self.assertIn("cwd %s\n" % self.dir, r.stdout)  # unchanged
        self.assertIn("modal %s" % (PYTHON_DIR / "modal" / "__init__.py"), r.stdout)

    def test_real_modal_shadowed(self):
        fake = self.write("site/modal/__init__.py", "raise ImportError('the real modal was imported')\n")
        app = self.write("app.py", "import modal\nimage = modal.Image.debian_slim()\n")
        recipe, _ = self.build(app, env={"PYTHONPATH": str(fake.parent.parent)})
        self.assertEqual(recipe, {"image": [{"debian_slim": {}}]})

    def test_traceback_on_error(self):
        app = self.write(
            "app.py",
            """
            import modal
            image = modal.Image.debian_slim()

            def broken():
                raise ValueError("bad config")

            broken()
            """,
        )
        r = run(["--out", str(self.dir / "o.json"), str(app)], self.dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("Traceback (most recent call last)", r.stderr)
        self.assertIn('app.py", line 8, in <module>', r.stderr)
        self.assertIn("ValueError: bad config", r.stderr)
        self.assertNotIn("snapbuild_frontend.py", r.stderr)

    def test_modal_validation_error(self):
        app = self.write("app.py", "import modal\nimage = modal.Image.debian_slim().pip_install('-U x')\n")
        r = run([str(app)], self.dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("modal.exception.InvalidError: Package list for `Image.pip_install` cannot contain other arguments", r.stderr)

    def test_errors_while_writing(self):
        app = self.write("app.py", "import modal\nimage = modal.Image.debian_slim().add_local_python_source('no_such_mod_x')\n")
        r = run([str(app)], self.dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("Module no_such_mod_x has no spec - might not be installed?", r.stderr)
        self.assertIn("while writing the recipe of image 'image'", r.stderr)

    def test_usage_errors(self):
        r = run([str(self.dir / "missing.py")], self.dir)
        self.assertEqual((r.returncode, r.stderr.strip()), (2, "snapbuild: %s: no such file" % (self.dir / "missing.py")))
        empty = self.write("empty.py", "import modal\n")
        r = run([str(empty)], self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("defines no image", r.stderr)
        dotted = self.write("my.app.py", "")
        r = run([str(dotted)], self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("Source filename cannot contain additional period characters", r.stderr)
        exits = self.write("exits.py", "import sys\nsys.exit(3)\n")
        r = run([str(exits)], self.dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("exited (status 3) while being imported", r.stderr)


class TestCollection(Base):
    APP = """
        import modal

        app = modal.App("shop")
        other = modal.App()

        base = modal.Image.debian_slim("3.11").apt_install("git")
        web_image = base.pip_install("flask")

        @app.function(image=web_image, gpu="T4")
        def web():
            pass

        @app.function()
        def base_fn():
            pass

        @app.cls(image=base.env({"C": "1"}))
        class Model:
            @modal.method()
            def run(self):
                pass

        # A function of another App with a name that is taken.
        @other.function(image=base, name="web")
        def other_web():
            pass

        # A function that rebinds the variable of an image.
        @other.function(image=base.apt_install("vim"))
        def web_image():
            pass

        def register_later():
            @app.function(image=base.pip_install("late"))
            def late():
                pass

        register_later()
        """

    def test_names_and_order(self):
        app = self.write("shop.py", self.APP)
        recipe, _ = self.build(app)
        base = [{"debian_slim": {"python_version": "3.11"}}, {"apt_install": {"packages": ["git"]}}]
        self.assertEqual(
            list(recipe),
            # Globals in order (the variable "web_image" now holds a
            # function: its place is the function's), then the functions
            # only an App knows.
            ["base", "web_image", "web", "base_fn", "Model", "other.web", "late"],
        )
        self.assertEqual(recipe["base"], base)
        self.assertEqual(recipe["web"], base + [{"pip_install": {"packages": ["flask"]}}])
        self.assertEqual(recipe["base_fn"], [{"debian_slim": {}}])  # Modal's default image
        self.assertEqual(recipe["Model"], base + [{"env": {"vars": {"C": "1"}}}])
        self.assertEqual(recipe["other.web"], base)
        self.assertEqual(recipe["web_image"], base + [{"apt_install": {"packages": ["vim"]}}])
        self.assertEqual(recipe["late"], base + [{"pip_install": {"packages": ["late"]}}])

    def test_clash_with_image_variable(self):
        app = self.write(
            "a.py",
            """
            import modal
            app = modal.App("svc")
            web = modal.Image.debian_slim()
            def _f():
                pass
            app.function(image=web.apt_install("x"), name="web")(_f)
            """,
        )
        recipe, _ = self.build(app)
        self.assertEqual(list(recipe), ["web", "svc.web"])

    def test_app_image_default(self):
        app = self.write(
            "a.py",
            """
            import modal
            app = modal.App(image=modal.Image.debian_slim().apt_install("curl"))
            @app.function()
            def f():
                pass
            """,
        )
        recipe, _ = self.build(app)
        self.assertEqual(recipe, {"f": [{"debian_slim": {}}, {"apt_install": {"packages": ["curl"]}}]})

    def test_selector(self):
        app = self.write("shop.py", self.APP)
        recipe, _ = self.build(app, "--select", "web")
        self.assertEqual(list(recipe), ["web"])
        recipe, _ = self.build(str(app) + "::Model")
        self.assertEqual(list(recipe), ["Model"])
        r = run([str(app) + "::nope"], self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("has no image named 'nope'; its images: base, web_image, web, base_fn, Model, other.web, late", r.stderr)
        r = run(["--list", str(app)], self.dir)
        self.assertEqual(r.stdout.split(), ["base", "web_image", "web", "base_fn", "Model", "other.web", "late"])

    def test_selector_skips_other_images(self):
        # Only the selected image is written: another one's failure does not matter.
        app = self.write(
            "a.py",
            """
            import modal
            good = modal.Image.debian_slim()
            bad = modal.Image.debian_slim().add_local_python_source("no_such_mod_y")
            """,
        )
        recipe, _ = self.build(app, "--select", "good")
        self.assertEqual(recipe, {"good": [{"debian_slim": {}}]})

    def test_run_function_in_built_file(self):
        app = self.write(
            "proj/build.py",
            """
            import modal
            def download(n):
                open("/model", "w").write("x" * n)
            image = modal.Image.debian_slim().run_function(download, args=(3,))
            """,
        )
        recipe, _ = self.build(app)
        rf = recipe["image"][1]["run_function"]
        self.assertEqual((rf["module"], rf["function"], rf["source"]), ("build", "download", str(app)))

    def test_sibling_package(self):
        self.write("proj/mylib/__init__.py", "")
        self.write("proj/mylib/util.py", "")
        self.write("proj/mylib/data.json", "{}")
        app = self.write("proj/app.py", "import modal\nimage = modal.Image.debian_slim().add_local_python_source('mylib')\n")
        # From another directory: the module is found next to the file, as Modal finds it.
        recipe, _ = self.build(app, cwd=self.dir)
        self.assertEqual(
            recipe["image"][1],
            {
                "add_local_dir": {
                    "local_path": str(self.dir / "proj" / "mylib"),
                    "remote_path": "/root/mylib",
                    "ignore": {"patterns": ["**/*.py"], "invert": True},
                }
            },
        )


class TestServerCallsAtImport(Base):
    def test_sandbox_create(self):
        app = self.write(
            "app.py",
            """
            import modal

            app = modal.App()
            image = modal.Image.debian_slim()

            sb = modal.Sandbox.create("sleep", "10", app=app, image=image)
            """,
        )
        r = run([str(app)], self.dir)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(
            r.stderr,
            "snapbuild: app.py:7: modal.Sandbox.create() cannot run while snapbuild reads the file "
            "(it needs Modal's servers); move it under a function or `if __name__ == \"__main__\":`\n",
        )

    def test_remote_in_a_helper(self):
        self.write(
            "helpers.py",
            """
            def warm(f):
                return f.remote(1)
            """,
        )
        app = self.write(
            "app.py",
            """
            import modal
            import helpers

            app = modal.App("calls")

            @app.function()
            def square(x):
                return x * x

            helpers.warm(square)
            """,
        )
        r = run([str(app)], self.dir)
        self.assertEqual(r.returncode, 1)
        # The line is the innermost of the user's code: the helper's.
        self.assertEqual(
            r.stderr.splitlines(),
            [
                "snapbuild: helpers.py:3: square.remote() cannot run while snapbuild reads the file "
                "(it needs Modal's servers); move it under a function or `if __name__ == \"__main__\":`"
            ],
        )

    def test_main_block_is_fine(self):
        app = self.write(
            "app.py",
            """
            import modal

            app = modal.App("calls")
            d = modal.Dict.from_name("cache", create_if_missing=True)  # a reference: fine

            @app.function()
            def square(x):
                return d.get(x)

            if __name__ == "__main__":
                with modal.enable_output(), app.run():
                    print(square.remote(2))
            """,
        )
        recipe, _ = self.build(app)
        self.assertEqual(recipe, {"square": [{"debian_slim": {}}]})

    def test_deprecation_warning_points_at_the_file(self):
        app = self.write(
            "app.py",
            """
            import modal

            app = modal.App()

            @app.function(gpu=modal.gpu.T4())
            def f():
                pass
            """,
        )
        _, r = self.build(app)
        self.assertIn("%s:6: DeprecationError: modal.gpu.T4 is deprecated" % app, r.stderr)
        self.assertNotIn("modal/gpu.py", r.stderr)

    def test_config(self):
        app = self.write(
            "app.py",
            """
            import modal

            if modal.is_local():
                workspace = modal.config._profile
            image = modal.Image.debian_slim().env(
                {"WORKSPACE": workspace, "SERVER": modal.config.config.get("server_url"),
                 "LEVEL": modal.config.config["loglevel"]}
            )
            """,
        )
        recipe, _ = self.build(app, env={"MODAL_PROFILE": "acme", "MODAL_LOGLEVEL": "info"})
        self.assertEqual(
            recipe["image"][1],
            {"env": {"vars": {"WORKSPACE": "acme", "SERVER": "https://api.modal.com", "LEVEL": "INFO"}}},
        )


class TestModuleMode(Base):
    def setUp(self):
        super().setUp()
        self.write("proj/pkg/__init__.py", "")
        self.write("proj/pkg/common.py", "import modal\nbase = modal.Image.debian_slim().apt_install('git')\n")
        self.write("proj/pkg/sub/__init__.py", "")
        self.write("proj/pkg/sub/deps.py", "PACKAGES = ['flask']\n")
        self.write(
            "proj/pkg/app.py",
            """
            import modal
            from . import common
            from .sub.deps import PACKAGES

            assert __name__ == "pkg.app", __name__
            app = modal.App("example-hello")
            image = common.base.pip_install(*PACKAGES)

            def build_step():
                pass

            @app.function(image=image.run_function(build_step))
            def hello():
                pass

            if __name__ == "__main__":
                raise SystemExit("the main block ran")
            """,
        )

    def test_relative_imports(self):
        recipe, _ = self.build(None, module="pkg.app", cwd=self.dir / "proj")
        self.assertEqual(list(recipe), ["image", "hello"])
        self.assertEqual(recipe["image"][-1], {"pip_install": {"packages": ["flask"]}})
        rf = recipe["hello"][-1]["run_function"]
        # The build container imports the module by its dotted name from the package's directory.
        self.assertEqual((rf["module"], rf["function"], rf["source"]), ("pkg.app", "build_step", str(self.dir / "proj" / "pkg")))
        recipe, _ = self.build(None, module="pkg.app::hello", cwd=self.dir / "proj")
        self.assertEqual(list(recipe), ["hello"])

    def test_not_found(self):
        r = run(["--module", "pkg.app"], self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(
            r.stderr,
            "snapbuild: -m pkg.app: no module named 'pkg' in the working directory (%s) nor elsewhere on sys.path; "
            "run from the directory that holds pkg/, as with `modal run -m`\n" % self.dir,
        )
        r = run(["--module", "pkg.nope"], self.dir / "proj")
        self.assertEqual((r.returncode, r.stderr), (2, "snapbuild: -m pkg.nope: package pkg (%s) has no module 'nope'\n" % (self.dir / "proj" / "pkg")))
        r = run(["--module", "pkg/app.py"], self.dir / "proj")
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a module name", r.stderr)
        r = run(["--module", "pkg.app", str(self.dir / "proj" / "pkg" / "app.py")], self.dir / "proj")
        self.assertEqual(r.returncode, 2)
        self.assertIn("not both", r.stderr)

    def test_missing_dependency_is_a_traceback(self):
        self.write("proj/pkg/broken.py", "import modal\nimport no_such_dependency_x\n")
        r = run(["--module", "pkg.broken"], self.dir / "proj")
        self.assertEqual(r.returncode, 1)
        self.assertIn("ModuleNotFoundError: No module named 'no_such_dependency_x'", r.stderr)
        self.assertIn('broken.py", line 2, in <module>', r.stderr)
        self.assertNotIn("importlib", r.stderr)

    def test_file_mode_suggests_module_mode(self):
        r = run([str(Path("pkg") / "app.py")], self.dir / "proj")
        self.assertEqual(r.returncode, 1)
        self.assertIn("attempted relative import with no known parent package", r.stderr)
        self.assertIn("read it in module mode, `snapbuild build -m pkg.app`", r.stderr)


class TestMeta(Base):
    def meta(self, file, *args, cwd=None, module=None):
        meta = self.dir / "meta.json"
        recipe, r = self.build(file, "--meta", str(meta), *args, cwd=cwd, module=module)
        return json.loads(meta.read_text()), recipe

    def test_app_rule_and_same_as(self):
        app = self.write(
            "shop.py",
            """
            import modal

            app = modal.App("shop")
            other = modal.App()

            base = modal.Image.debian_slim().apt_install("git")
            web_image = base.pip_install("flask")
            twin = modal.Image.debian_slim().apt_install("git")  # the same steps as base
            lonely = modal.Image.debian_slim().apt_install("vim")

            @app.function(image=web_image)
            def web():
                pass

            @other.function(image=base)
            def job():
                pass

            @app.cls(image=lonely.env({"A": "1"}))
            class Model:
                pass
            """,
        )
        meta, recipe = self.meta(app)
        self.assertEqual(meta["source"], str(app))
        self.assertEqual(meta["stem"], "shop")
        self.assertEqual([m["name"] for m in meta["images"]], list(recipe))
        self.assertEqual(
            meta["images"],
            [
                # base is used first by job, of an unnamed App: the only named App, shop.
                {"name": "base", "app": "shop", "kind": "image", "same_as": None},
                {"name": "web_image", "app": "shop", "kind": "image", "same_as": None},
                {"name": "twin", "app": "shop", "kind": "image", "same_as": "base"},
                {"name": "lonely", "app": "shop", "kind": "image", "same_as": None},
                {"name": "web", "app": "shop", "kind": "function", "same_as": "web_image"},
                {"name": "job", "app": None, "kind": "function", "same_as": "base"},
                {"name": "Model", "app": "shop", "kind": "class", "same_as": None},
            ],
        )
        # The recipe itself is unchanged by --meta.
        plain, _ = self.build(app)
        self.assertEqual(plain, recipe)

    def test_image_of_a_named_app_function(self):
        app = self.write(
            "two.py",
            """
            import modal

            a = modal.App("alpha")
            b = modal.App("beta")
            shared = modal.Image.debian_slim()
            solo = modal.Image.debian_slim().apt_install("x")

            @b.function(image=shared)
            def f():
                pass

            @a.function(image=shared)
            def g():
                pass
            """,
        )
        meta, _ = self.meta(app)
        by_name = {m["name"]: m for m in meta["images"]}
        self.assertEqual(by_name["shared"]["app"], "beta")  # the first function that uses it
        self.assertIsNone(by_name["solo"]["app"])  # two named Apps: none is the only one
        self.assertEqual(by_name["g"]["same_as"], "shared")

    def test_included_app_and_selector(self):
        self.write(
            "lib.py",
            """
            import modal
            lib_app = modal.App("library")

            @lib_app.function()
            def helper():
                pass
            """,
        )
        app = self.write(
            "main.py",
            """
            import modal
            import lib

            app = modal.App().include(lib.lib_app)
            image = modal.Image.debian_slim().pip_install("x")
            """,
        )
        meta, _ = self.meta(app)
        self.assertEqual(
            meta["images"],
            [
                {"name": "image", "app": "library", "kind": "image", "same_as": None},
                {"name": "helper", "app": "library", "kind": "function", "same_as": None},
            ],
        )
        meta, _ = self.meta(app, "--select", "helper")
        self.assertEqual([m["name"] for m in meta["images"]], ["helper"])

    def test_module_mode(self):
        self.write("pkg/__init__.py", "")
        self.write("pkg/svc.py", "import modal\napp = modal.App('svc')\nimage = modal.Image.debian_slim()\n")
        meta, _ = self.meta(None, module="pkg.svc")
        self.assertEqual(meta, {"source": "pkg.svc", "stem": "pkg.svc", "images": [
            {"name": "image", "app": "svc", "kind": "image", "same_as": None}]})


if __name__ == "__main__":
    unittest.main()
