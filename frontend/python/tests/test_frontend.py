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

    def build(self, file, *args, cwd=None, env=None):
        out = self.dir / "out.json"
        if out.exists():
            out.unlink()
        r = run(["--out", str(out)] + list(args) + [str(file)], cwd or self.dir, env)
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


if __name__ == "__main__":
    unittest.main()
