"""modal.FilePatternMatcher semantics and recipe forms; modal.Secret reprs and forms."""

import contextlib
import io
import os
import tempfile
import unittest
from pathlib import Path

import modal
from modal import FilePatternMatcher, Secret
from modal.exception import InvalidError
from modal.file_pattern_matcher import NON_PYTHON_FILES, _NOTHING, escape


class TestMatcher(unittest.TestCase):
    def check(self, m, yes, no):
        for p in yes:
            self.assertTrue(m(Path(p)), "%r should match %s" % (m, p))
        for p in no:
            self.assertFalse(m(Path(p)), "%r should not match %s" % (m, p))

    def test_globs(self):
        # The examples of the spec (section 9).
        self.check(FilePatternMatcher("*.py"), ["a.py"], ["d/a.py", "a.pyc"])
        self.check(FilePatternMatcher("**/*.py"), ["a.py", "d/a.py", "d/e/a.py"], ["a.txt"])
        self.check(FilePatternMatcher("node_modules"), ["node_modules", "node_modules/x/y.js"], ["sub/node_modules/x"])
        self.check(FilePatternMatcher(".git"), [".git/config"], ["sub/.git/config"])
        self.check(FilePatternMatcher("*", "!*.py"), ["a.txt", "d/a.py"], ["a.py"])
        self.check(FilePatternMatcher("d/**"), ["d/x", "d/e/f"], ["d", "e/d/x"])
        self.check(FilePatternMatcher("a?c"), ["abc"], ["a/c", "abbc"])
        self.check(FilePatternMatcher("[a-c].txt"), ["b.txt"], ["d.txt", "-.txt"])
        self.check(FilePatternMatcher("\\*.txt"), ["*.txt"], ["a.txt"])
        self.check(FilePatternMatcher("  /dir/  ", "", "x/../y"), ["dir/f", "y"], ["x", "other"])
        self.check(FilePatternMatcher("a+b(c).txt"), ["a+b(c).txt"], ["aab(c).txt"])
        self.assertFalse(FilePatternMatcher("*")(Path(".")))

    def test_exclusion_and_invert(self):
        with self.assertRaisesRegex(ValueError, '^Illegal exclusion pattern: "!"$'):
            FilePatternMatcher("!")
        m = FilePatternMatcher("*.pyc", "!keep.pyc")
        self.check(m, ["a.pyc"], ["keep.pyc"])
        self.assertFalse(m.can_prune_directories())
        self.assertTrue(FilePatternMatcher("*.pyc").can_prune_directories())
        self.check(~FilePatternMatcher("**/*.py"), ["a.txt", "d/a.pyc"], ["a.py", "d/a.py"])
        self.assertIs(~~m, m)
        self.check(NON_PYTHON_FILES, ["x.json"], ["x.py"])
        self.check(_NOTHING, ["anything", "a/b"], [])

    def test_from_file(self):
        with tempfile.TemporaryDirectory() as d:
            f = Path(d, "ignore")
            m = FilePatternMatcher.from_file(f)  # read on first use
            f.write_text("*.log\n!keep.log\n")
            self.check(m, ["a.log"], ["keep.log", "a.txt"])
            self.assertEqual(m.recipe_form(), {"from_file": str(f)})
            self.assertEqual((~m).recipe_form(), {"from_file": str(f), "invert": True})

    def test_recipe_forms(self):
        self.assertEqual(FilePatternMatcher("a", "!b").recipe_form(), ["a", "!b"])
        self.assertEqual((~FilePatternMatcher("**/*.py")).recipe_form(), {"patterns": ["**/*.py"], "invert": True})
        self.assertEqual(_NOTHING.recipe_form(), {"patterns": [], "invert": True})
        # ~ of a callable matcher is evaluated by walking, not serialized.
        self.assertIsNone((~(~modal.file_pattern_matcher._CustomPatternMatcher(lambda p: True))).recipe_form())

    def test_escape(self):
        for name in ["plain.txt", "a[1].txt", "star*.txt", "q?.txt", "back\\slash", "!bang", "d/!not-first"]:
            m = FilePatternMatcher(escape(name))
            self.assertTrue(m(Path(name)), name)
        self.assertFalse(FilePatternMatcher(escape("a[1].txt"))(Path("a1.txt")))
        self.assertEqual(escape("!x*"), "\\!x\\*")


class TestSecret(unittest.TestCase):
    def test_reprs(self):
        # Modal's reprs: what run_function's definition holds.
        self.assertEqual(repr(Secret.from_name("my-secret")), "modal.Secret.from_name('my-secret')")
        self.assertEqual(
            repr(Secret.from_name("s", environment_name="dev")), "modal.Secret.from_name('s', environment_name='dev')"
        )
        self.assertEqual(repr(Secret.from_dict({"A": "1", "B": None})), "Secret.from_dict([A, B])")
        self.assertEqual(repr(Secret.from_dict({})), "Secret.from_dict([])")
        self.assertEqual(repr(Secret.from_dotenv()), "Secret.from_dotenv()")

    def test_forms(self):
        self.assertEqual(Secret.from_dict({"A": "1", "B": None}).recipe_form(), {"from_dict": {"A": "1"}})
        self.assertEqual(Secret.from_name("gh").recipe_form(), {"from_name": "gh"})
        with self.assertRaisesRegex(InvalidError, "the env_dict argument to Secret has to be a dict"):
            Secret.from_dict({"A": 1})
        with self.assertRaisesRegex(InvalidError, "the env_dict argument to Secret has to be a dict"):
            Secret.from_dict([("A", "1")])

    def test_local_environ(self):
        os.environ["SNAPBUILD_TEST_VAR"] = "v"
        try:
            self.assertEqual(Secret.from_local_environ(["SNAPBUILD_TEST_VAR"]).recipe_form(), {"from_dict": {"SNAPBUILD_TEST_VAR": "v"}})
        finally:
            del os.environ["SNAPBUILD_TEST_VAR"]
        with self.assertRaisesRegex(InvalidError, "^Could not find local environment variable 'SNAPBUILD_TEST_VAR'"):
            Secret.from_local_environ(["SNAPBUILD_TEST_VAR"])

    def test_dotenv(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d).resolve()
            (root / "a" / "b").mkdir(parents=True)
            (root / ".env").write_text("K=v\n")
            (root / "a" / ".env-dev").write_text("K=dev\n")
            app = root / "a" / "b" / "app.py"
            app.write_text("")
            # From a file: walk up from its directory.
            self.assertEqual(Secret.from_dotenv(app).recipe_form(), {"from_dotenv": str(root / ".env")})
            self.assertEqual(
                Secret.from_dotenv(str(app), filename=".env-dev").recipe_form(), {"from_dotenv": str(root / "a" / ".env-dev")}
            )
            # Without a path: from the working directory.
            cwd = os.getcwd()
            try:
                os.chdir(root / "a" / "b")
                self.assertEqual(Secret.from_dotenv().recipe_form(), {"from_dotenv": str(root / ".env")})
                # Nothing found: an empty secret, as with Modal (and a warning).
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    self.assertEqual(Secret.from_dotenv(filename=".nothing-here").recipe_form(), {"from_dict": {}})
                self.assertIn("no .nothing-here file found", err.getvalue())
            finally:
                os.chdir(cwd)

    def test_inert_class_attributes(self):
        # Secondary APIs are inert rather than AttributeErrors.
        self.assertIn("inert", repr(Secret.objects.list()))
        self.assertIn("inert", repr(modal.Volume.from_name("v").commit()))


class TestInert(unittest.TestCase):
    def test_unknown_names(self):
        # A reference to a server object is made, as in Modal (using it is tested in test_api).
        self.assertEqual(repr(modal.Dict.from_name("d")), "modal.Dict.from_name('d')")
        cron = modal.Cron("0 * * * *")
        self.assertEqual(repr(cron), "modal.Cron('0 * * * *')")

        @modal.experimental.clustered(size=2)
        def f():
            return 1

        self.assertEqual(f(), 1)

        @modal.concurrent(max_inputs=10)
        @modal.fastapi_endpoint(method="POST")
        def g():
            return 2

        self.assertEqual(g(), 2)
        with modal.enable_output():
            pass
        from modal.runner import DeployResult, deploy_app  # a submodule the shim has no file for

        self.assertEqual(deploy_app.__name__, "deploy_app")
        self.assertIn("inert", repr(DeployResult.something))
        from modal.runner import something_new  # a name the shim does not know

        self.assertIn("inert", repr(something_new))
        with self.assertRaises(AttributeError):
            modal._private_thing  # noqa: B018
        self.assertTrue(modal.is_local())

    def test_mount_unsupported(self):
        with self.assertRaisesRegex(InvalidError, "modal.Mount was removed in Modal 1.0 and snapbuild does not support it"):
            modal.Mount.from_local_dir("x", remote_path="/x")

    def test_exceptions(self):
        from modal.exception import Error, InvalidError, LocalFunctionError, NotFoundError

        self.assertTrue(issubclass(LocalFunctionError, InvalidError))
        self.assertTrue(issubclass(NotFoundError, Error))
        from modal.exception import SomethingNewError

        self.assertTrue(issubclass(SomethingNewError, Error))

    def test_decorators(self):
        app = modal.App("t")

        @app.cls(image=modal.Image.debian_slim(), gpu="T4")
        class Model:
            size: int = modal.parameter(default=3)

            @modal.enter()
            def load(self):
                self.loaded = True

            @modal.method()
            def predict(self, x):
                return x * self.size

        m = Model()
        m.load()
        self.assertEqual(m.predict(2), 6)
        self.assertIs(app.registered_classes["Model"], Model)
        with self.assertRaisesRegex(InvalidError, "Did you forget parentheses"):

            @app.function
            def nope():
                pass


if __name__ == "__main__":
    unittest.main()
