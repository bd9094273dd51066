"""Image.run_function: where the function comes from, its definition, input,
globals, and Modal's refusals."""

import base64
import contextlib
import importlib
import io
import pickle
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

import modal
from modal import Image, Secret
from modal._image import recipe_steps
from modal.exception import InvalidError, LocalFunctionError

MODULE = '''\
import threading

import modal

app = modal.App("rf")
SIZE = 3
NAMES = ["a", "b"]
LOCK = threading.Lock()


def helper():
    return 1


def build(name, size=1):
    # writes a model
    helper()
    return name * size * SIZE, NAMES


def locked():
    with LOCK:
        pass


def uses_modal_objects():
    return app, decorated, SIZE


@app.function()
def decorated():
    return "decorated"


def outer():
    def inner():
        pass
    return inner
'''


def step(img):
    return recipe_steps(img)[-1]["run_function"]


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name).resolve()
        (self.root / "rf_mod.py").write_text(MODULE)
        (self.root / "rf_pkg" / "inner").mkdir(parents=True)
        (self.root / "rf_pkg" / "__init__.py").write_text("")
        (self.root / "rf_pkg" / "inner" / "__init__.py").write_text("")
        (self.root / "rf_pkg" / "inner" / "tasks.py").write_text("def task():\n    return 'task'\n")
        sys.path.insert(0, str(self.root))
        self.mod = importlib.import_module("rf_mod")
        self.base = Image.debian_slim("3.11")

    def tearDown(self):
        sys.path.remove(str(self.root))
        for m in list(sys.modules):
            if m.split(".")[0] in ("rf_mod", "rf_pkg"):
                del sys.modules[m]
        self.tmp.cleanup()


class TestRunFunction(Base):
    def test_module_function(self):
        mod = self.mod
        vol = modal.Volume.from_name("models", create_if_missing=True)
        img = self.base.run_function(
            mod.build,
            secrets=[Secret.from_name("hf")],
            env={"MODE": "fast"},
            volumes={"/models": vol, "/host": "/srv/data"},
            gpu="T4",
            timeout=600,
            force_build=True,
            args=("tiny",),
            kwargs={"size": 7},
        )
        rf = step(img)
        self.assertEqual(
            list(rf),
            ["module", "function", "source", "definition", "globals", "input", "secrets", "env", "volumes", "gpu", "timeout", "force_build"],
        )
        self.assertEqual(rf["module"], "rf_mod")
        self.assertEqual(rf["function"], "build")
        self.assertEqual(rf["source"], str(self.root / "rf_mod.py"))
        src = "def build(name, size=1):\n    # writes a model\n    helper()\n    return name * size * SIZE, NAMES\n"
        build_args = {
            "secrets": "[modal.Secret.from_name('hf'), Secret.from_dict([MODE])]",
            "gpu_config": '[gpu_type: "T4"\ncount: 1\n]',
            "network_file_systems": "{}",
            "volumes": "{'/models': modal.Volume.from_name('models'), '/host': '/srv/data'}",
        }
        self.assertEqual(rf["definition"], src + "\n" + repr(build_args))
        self.assertEqual(pickle.loads(base64.b64decode(rf["input"])), (("tiny",), {"size": 7}))
        # Referenced module globals, plain functions left out.
        self.assertEqual(pickle.loads(base64.b64decode(rf["globals"])), {"SIZE": 3, "NAMES": ["a", "b"]})
        self.assertEqual(rf["secrets"], [{"from_name": "hf"}])
        self.assertEqual(rf["env"], {"MODE": "fast"})
        self.assertEqual(rf["volumes"], {"/models": {"from_name": "models", "create_if_missing": True}, "/host": "/srv/data"})
        self.assertEqual(rf["gpu"], "T4")
        self.assertEqual(rf["timeout"], 600)
        self.assertTrue(rf["force_build"])

    def test_defaults_left_out(self):
        rf = step(self.base.run_function(self.mod.decorated, include_source=False))
        self.assertEqual(list(rf), ["module", "function", "definition"])
        self.assertEqual(rf["definition"].split("\n\n")[-1], repr({"secrets": "[]", "gpu_config": "[]", "network_file_systems": "{}"}))

    def test_decorated(self):
        # An @app.function is unwrapped for its source; module and qualname stay.
        rf = step(self.base.run_function(self.mod.decorated))
        self.assertEqual((rf["module"], rf["function"]), ("rf_mod", "decorated"))
        self.assertTrue(rf["definition"].startswith('@app.function()\ndef decorated():\n    return "decorated"\n'))

    def test_package(self):
        tasks = importlib.import_module("rf_pkg.inner.tasks")
        rf = step(self.base.run_function(tasks.task))
        self.assertEqual((rf["module"], rf["function"], rf["source"]), ("rf_pkg.inner.tasks", "task", str(self.root / "rf_pkg")))

    def test_gpu_list(self):
        rf = step(self.base.run_function(self.mod.helper, gpu=["H100", "a100:2"]))
        self.assertEqual(rf["gpu"], ["H100", "a100:2"])
        self.assertIn("'gpu_config': '[gpu_type: \"H100\"\\ncount: 1\\n, gpu_type: \"A100\"\\ncount: 2\\n]'", rf["definition"])

    def test_unserializable_global(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rf = step(self.base.run_function(self.mod.locked))
        self.assertNotIn("globals", rf)
        self.assertIn("Skipping unserializable global variable LOCK for locked. Changes to this variable won't invalidate the image.", err.getvalue())

    def test_modal_objects_left_out(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rf = step(self.base.run_function(self.mod.uses_modal_objects))
        self.assertEqual(pickle.loads(base64.b64decode(rf["globals"])), {"SIZE": 3})
        self.assertEqual(err.getvalue(), "")

    def test_force_build_inherited(self):
        rf = step(Image.debian_slim(force_build=True).run_function(self.mod.helper))
        self.assertTrue(rf["force_build"])

    def test_refusals(self):
        with self.assertRaisesRegex(InvalidError, r"^Argument to Image\.run_function must be a function, not int\.$"):
            self.base.run_function(3)
        with self.assertRaisesRegex(InvalidError, r"^Image\.run_function does not support lambda functions\.$"):
            self.base.run_function(lambda: None)
        with self.assertRaisesRegex(
            LocalFunctionError, r"^Modal can only import functions defined in global scope unless they are `serialized=True`$"
        ):
            self.base.run_function(self.mod.outer())
        with self.assertRaisesRegex(InvalidError, "^The `timeout` parameter cannot be set to None"):
            self.base.run_function(self.mod.helper, timeout=None)
        with self.assertRaisesRegex(InvalidError, r"^Arguments to `run_function` are too large \(\d+ bytes\)\. Maximum size is 2097152 bytes\.$"):
            self.base.run_function(self.mod.build, args=("x" * (2 * 1024 * 1024 + 1),))
        with self.assertRaisesRegex(InvalidError, "snapbuild: network_file_systems"):
            step(self.base.run_function(self.mod.helper, network_file_systems={"/n": modal.NetworkFileSystem.from_name("n")}))
        with self.assertRaisesRegex(InvalidError, "CloudBucketMount"):
            step(self.base.run_function(self.mod.helper, volumes={"/b": modal.CloudBucketMount("bucket")}))

    def test_main_pickled(self):
        # A function of another program's __main__ (a notebook) is cloudpickled.
        ns = {"__name__": "__main__"}
        exec("FACTOR = 5\ndef nb(x):\n    return x * FACTOR\n", ns)  # noqa: S102
        f = ns["nb"]
        try:
            import cloudpickle
        except ImportError:
            self.skipTest("cloudpickle is not installed")
        with self.assertRaisesRegex(InvalidError, "cannot read the source"):
            # exec'd code has no source file: Modal's definition needs it too.
            step(self.base.run_function(f))
        linecache_name = str(self.root / "notebook_cell.py")
        Path(linecache_name).write_text("FACTOR = 5\ndef nb(x):\n    return x * FACTOR\n")
        ns = {"__name__": "__main__"}
        exec(compile(Path(linecache_name).read_text(), linecache_name, "exec"), ns)  # noqa: S102
        rf = step(self.base.run_function(ns["nb"], args=(2,)))
        self.assertNotIn("module", rf)
        self.assertEqual(cloudpickle.loads(base64.b64decode(rf["pickled"]))(2), 10)
        # Without cloudpickle: a clear error.
        saved = sys.modules.get("cloudpickle")
        sys.modules["cloudpickle"] = None
        try:
            with self.assertRaisesRegex(InvalidError, "can only be sent pickled, which needs cloudpickle"):
                step(self.base.run_function(ns["nb"]))
        finally:
            sys.modules["cloudpickle"] = saved

    def test_without_cloudpickle(self):
        # Plain pickle: modules are left out of the globals, values kept.
        saved = sys.modules.get("cloudpickle")
        sys.modules["cloudpickle"] = None
        try:
            ns = {}
            code = textwrap.dedent(
                """
                import os
                LIMIT = 4
                def f():
                    return os.sep, LIMIT
                """
            )
            path = self.root / "rf_plain.py"
            path.write_text(code)
            mod = importlib.import_module("rf_plain")
            rf = step(self.base.run_function(mod.f))
            self.assertEqual(pickle.loads(base64.b64decode(rf["globals"])), {"LIMIT": 4})
            del ns
        finally:
            sys.modules["cloudpickle"] = saved
            sys.modules.pop("rf_plain", None)


if __name__ == "__main__":
    unittest.main()
