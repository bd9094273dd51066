"""snapbuild_run_function.py, run as the build container runs it."""

import base64
import json
import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parent.parent
RUNNER = PYTHON_DIR / "snapbuild_run_function.py"

MODULE = '''\
import json
import os
import sys

import modal

app = modal.App("runner-test")
OUT = os.environ["OUT_DIR"]


def write(name, size=1, **extra):
    with open(os.path.join(OUT, "result.json"), "w") as f:
        json.dump({"name": name, "size": size, "extra": extra, "local": modal.is_local(),
                   "modal": modal.__file__, "module": __name__}, f)
    return "ignored"


@app.function(image=modal.Image.debian_slim())
def decorated():
    open(os.path.join(OUT, "decorated"), "w").write(__name__)


class Holder:
    @staticmethod
    def nested():
        open(os.path.join(OUT, "nested"), "w").write("ok")


async def coro(x):
    open(os.path.join(OUT, "coro"), "w").write(str(x))


def fail():
    raise ValueError("no such model: bogus")


def exits():
    sys.exit(4)
'''


class TestRunner(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name).resolve()
        self.src = self.dir / "src"
        self.src.mkdir()
        (self.src / "build_mod.py").write_text(MODULE)
        # A real modal that must not win.
        (self.dir / "site" / "modal").mkdir(parents=True)
        (self.dir / "site" / "modal" / "__init__.py").write_text("raise ImportError('real modal imported')\n")
        self.out = self.dir / "out"
        self.out.mkdir()

    def tearDown(self):
        self.tmp.cleanup()

    def run_request(self, req, bytecode_env=True):
        path = self.dir / "request.json"
        path.write_text(json.dumps(req))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.src), str(self.dir / "site")])
        env["OUT_DIR"] = str(self.out)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if bytecode_env:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        return subprocess.run(
            [sys.executable, str(RUNNER), str(path)], env=env, capture_output=True, text=True, timeout=60
        )

    def result(self):
        return json.loads((self.out / "result.json").read_text())

    def test_pickled_input(self):
        data = base64.b64encode(pickle.dumps((("tiny",), {"size": 7, "k": [1]}), protocol=4)).decode()
        r = self.run_request({"module": "build_mod", "function": "write", "input": data})
        self.assertEqual(r.returncode, 0, r.stderr)
        res = self.result()
        self.assertEqual((res["name"], res["size"], res["extra"]), ("tiny", 7, {"k": [1]}))
        self.assertFalse(res["local"])  # inside a container
        self.assertEqual(res["modal"], str(PYTHON_DIR / "modal" / "__init__.py"))
        self.assertEqual(res["module"], "build_mod")

    def test_no_bytecode(self):
        # /root/__pycache__ would end up in the image.
        r = self.run_request({"module": "build_mod", "function": "write", "args": ["a"]}, bytecode_env=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse((self.src / "__pycache__").exists())

    def test_json_args(self):
        r = self.run_request({"module": "build_mod", "function": "write", "args": ["a"], "kwargs": {"size": 2}})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((self.result()["name"], self.result()["size"]), ("a", 2))

    def test_no_args_decorated_nested_coroutine(self):
        r = self.run_request({"module": "build_mod", "function": "decorated"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((self.out / "decorated").read_text(), "build_mod")
        r = self.run_request({"module": "build_mod", "function": "Holder.nested"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((self.out / "nested").read_text(), "ok")
        r = self.run_request({"module": "build_mod", "function": "coro", "args": [5]})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((self.out / "coro").read_text(), "5")

    def test_exception(self):
        r = self.run_request({"module": "build_mod", "function": "fail"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("Traceback (most recent call last)", r.stderr)
        self.assertIn('build_mod.py", line 34, in fail', r.stderr)
        self.assertIn("ValueError: no such model: bogus", r.stderr)
        self.assertNotIn("snapbuild_run_function.py", r.stderr)

    def test_exit_status(self):
        r = self.run_request({"module": "build_mod", "function": "exits"})
        self.assertEqual(r.returncode, 4)

    def test_missing(self):
        r = self.run_request({"module": "build_mod", "function": "nope"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("AttributeError", r.stderr)
        r = self.run_request({"module": "no_such_module_z", "function": "f"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("ModuleNotFoundError: No module named 'no_such_module_z'", r.stderr)

    def test_pickled_function(self):
        try:
            import cloudpickle
        except ImportError:
            self.skipTest("cloudpickle is not installed")
        ns = {"__name__": "__main__"}
        exec(  # noqa: S102 (a notebook cell)
            textwrap.dedent(
                """
                import os
                def cell(x):
                    open(os.path.join(os.environ["OUT_DIR"], "cell"), "w").write(str(x * 2))
                """
            ),
            ns,
        )
        data = base64.b64encode(cloudpickle.dumps(ns["cell"], protocol=4)).decode()
        r = self.run_request({"pickled": data, "args": [21]})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((self.out / "cell").read_text(), "42")

    def test_usage(self):
        r = subprocess.run([sys.executable, str(RUNNER)], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)


if __name__ == "__main__":
    unittest.main()
