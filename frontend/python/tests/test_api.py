"""The rest of Modal's API in the shim: modal.config, the public names and
modules, what needs Modal's servers, and where warnings point."""

import logging
import os
import sys
import tempfile
import unittest
import warnings
from pathlib import Path

import modal
import modal.config
from modal._cloud import ServerCallError
from modal.exception import DeprecationError, InvalidError

HERE = os.path.abspath(__file__)


def _line_of(marker):
    """The line number of the line of this file that holds marker."""
    for n, line in enumerate(Path(HERE).read_text().splitlines(), 1):
        if marker in line and "_line_of" not in line:
            return n
    raise AssertionError(marker)


class TestConfig(unittest.TestCase):
    KEYS = ("MODAL_ENVIRONMENT", "MODAL_LOGLEVEL", "MODAL_SERVER_URL", "MODAL_PROFILE", "MODAL_FORCE_BUILD", "MODAL_LOGS_TIMEOUT")

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.saved_env = {k: os.environ.pop(k) for k in self.KEYS if k in os.environ}
        self.saved = (modal.config.user_config_path, modal.config._user_config, modal.config.__dict__.pop("_profile", None))
        modal.config.user_config_path = os.path.join(self.tmp.name, "modal.toml")  # none yet
        modal.config._user_config = None

    def tearDown(self):
        for k in self.KEYS:
            os.environ.pop(k, None)
        os.environ.update(self.saved_env)
        modal.config.user_config_path, modal.config._user_config, profile = self.saved
        modal.config.__dict__.pop("_profile", None)
        if profile is not None:
            modal.config._profile = profile
        self.tmp.cleanup()

    def test_defaults(self):
        c = modal.config.config
        self.assertIsInstance(c, modal.config.Config)
        self.assertEqual(c.get("server_url"), "https://api.modal.com")
        self.assertEqual(c["loglevel"], "WARNING")
        self.assertEqual(c["log_format"], "STRING")
        self.assertEqual(c["build_validation"], "error")
        self.assertEqual(c["logs_timeout"], 10)
        self.assertIs(c["force_build"], False)
        # No default in Modal: None, as there.
        self.assertIsNone(c.get("environment"))
        self.assertIsNone(c.get("token_id"))
        self.assertIsNone(c.get("image_builder_version"))
        with self.assertRaises(KeyError):
            c.get("workspace")  # not a Modal setting
        self.assertEqual(modal.config._profile, "default")
        self.assertEqual(list(modal.config.config_profiles()), [])
        self.assertIn("server_url", c.to_dict())

    def test_environment_overrides(self):
        os.environ.update(
            {"MODAL_ENVIRONMENT": "dev", "MODAL_LOGLEVEL": "debug", "MODAL_FORCE_BUILD": "1", "MODAL_LOGS_TIMEOUT": "2.5"}
        )
        c = modal.config.config
        self.assertEqual(c.get("environment"), "dev")
        self.assertEqual(c["loglevel"], "DEBUG")  # Modal's transform
        self.assertIs(c["force_build"], True)
        self.assertEqual(c["logs_timeout"], 2.5)
        self.assertIsNone(c.get("environment", use_env=False))
        os.environ["MODAL_LOGS_TIMEOUT"] = "soon"
        with self.assertRaisesRegex(InvalidError, r"Invalid value for logs_timeout config \('soon'\)"):
            c["logs_timeout"]

    def test_profiles(self):
        Path(modal.config.user_config_path).write_text(
            '[work]\nactive = true\nenvironment = "staging"\n\n[other]\nserver_url = "https://x"\n'
        )
        self.assertEqual(modal.config._profile, "work")
        self.assertEqual(modal.config.config.get("environment"), "staging")
        self.assertEqual(modal.config.config.get("server_url", profile="other"), "https://x")
        self.assertEqual(sorted(modal.config.config_profiles()), ["other", "work"])
        modal.config.config_set_active_profile("other")  # this process only
        self.assertEqual(modal.config._profile, "other")
        self.assertEqual(modal.config.config.get("server_url"), "https://x")
        self.assertIn("active = true", Path(modal.config.user_config_path).read_text())

    def test_profile_from_environment(self):
        os.environ["MODAL_PROFILE"] = "ci"
        self.assertEqual(modal.config._profile, "ci")

    def test_logger(self):
        self.assertIsInstance(modal.config.logger, logging.Logger)
        self.assertEqual(modal.config.logger.name, "modal-client")
        from modal.config import config, logger  # noqa: F401


class TestNames(unittest.TestCase):
    def test_top_level(self):
        from modal import (  # noqa: F401
            CloudBucketMount,
            Cron,
            Dict,
            Error,
            FunctionCall,
            NetworkFileSystem,
            Period,
            Proxy,
            Queue,
            Retries,
            Sandbox,
            SchedulerPlacement,
            Tunnel,
            asgi_app,
            batched,
            build,
            concurrent,
            current_function_call_id,
            current_input_id,
            enable_output,
            enter,
            exit,
            fastapi_endpoint,
            forward,
            interact,
            is_local,
            method,
            parameter,
            web_endpoint,
            web_server,
            wsgi_app,
        )

        self.assertIsNone(current_function_call_id())
        self.assertIsNone(current_input_id())
        self.assertIsNone(interact())
        with enable_output():
            pass
        r = Retries(max_retries=3, backoff_coefficient=2.0)
        self.assertEqual(r.max_retries, 3)
        self.assertIsInstance(r, Retries)
        self.assertEqual(repr(Period(days=1)), "modal.Period(days=1)")
        self.assertIsInstance(SchedulerPlacement(region="us-east"), SchedulerPlacement)

    def test_function_call(self):
        from modal.functions import Function, FunctionCall

        self.assertIs(Function, modal.Function)
        self.assertIs(FunctionCall, modal.FunctionCall)
        fc = FunctionCall.from_id("fc-123")  # a reference: lazy, as in Modal
        self.assertIsInstance(fc, FunctionCall)
        with self.assertRaisesRegex(ServerCallError, r"modal.FunctionCall.from_id\('fc-123'\).get\(\) cannot run"):
            fc.get(timeout=1)

    def test_modules(self):
        import modal.call_graph
        import modal.cloud_bucket_mount
        import modal.container_process
        import modal.dict
        import modal.experimental
        import modal.file_io
        import modal.gpu
        import modal.io_streams
        import modal.network_file_system
        import modal.proxy
        import modal.queue
        import modal.retries
        import modal.runner
        import modal.sandbox
        import modal.schedule

        self.assertIs(modal.sandbox.Sandbox, modal.Sandbox)
        self.assertIs(modal.dict.Dict, modal.Dict)
        self.assertIs(modal.queue.Queue, modal.Queue)
        self.assertIs(modal.network_file_system.NetworkFileSystem, modal.NetworkFileSystem)
        self.assertIs(modal.cloud_bucket_mount.CloudBucketMount, modal.CloudBucketMount)
        self.assertIs(modal.retries.Retries, modal.Retries)
        self.assertIs(modal.schedule.Cron, modal.Cron)
        from modal.container_process import ContainerProcess  # noqa: F401
        from modal.exception import NotFoundError, SandboxTimeoutError  # noqa: F401
        from modal.io_streams import StreamReader  # noqa: F401
        from modal.runner import deploy_app  # noqa: F401

        def annotated(p: modal.container_process.ContainerProcess, d: "modal.Dict | None" = None):
            return p

        self.assertIsNotNone(annotated)


class TestServerCalls(unittest.TestCase):
    def assertServerCall(self, call, fn):
        with self.assertRaises(ServerCallError) as cm:
            fn()
        msg = str(cm.exception)
        self.assertNotIn("\n", msg)
        self.assertTrue(msg.startswith(os.path.relpath(HERE) + ":"), msg)
        self.assertIn(
            ": %s cannot run while snapbuild reads the file (it needs Modal's servers); "
            'move it under a function or `if __name__ == "__main__":`' % call,
            msg,
        )
        return msg

    def test_references_are_lazy(self):
        d = modal.Dict.from_name("cache", create_if_missing=True)
        q = modal.Queue.from_name("jobs")
        f = modal.Function.from_name("other-app", "square")
        c = modal.Cls.from_name("other-app", "Model")
        self.assertIsInstance(d, modal.Dict)
        self.assertIsInstance(q, modal.Queue)
        self.assertEqual(repr(c().with_options(gpu="T4")), "modal.Cls.from_name('other-app', 'Model')().with_options(...)")
        self.assertServerCall("modal.Dict.from_name('cache', ...).get()", lambda: d.get("k"))
        self.assertServerCall("modal.Dict.from_name('cache', ...)['k']", lambda: d["k"])
        self.assertServerCall("modal.Queue.from_name('jobs').put()", lambda: q.put(1))
        self.assertServerCall("modal.Queue.from_name('jobs').put()", lambda: q.put.aio(1))
        self.assertServerCall("modal.Function.from_name('other-app', 'square').remote()", lambda: f.remote(2))
        self.assertServerCall("modal.Cls.from_name('other-app', 'Model')().predict.remote()", lambda: c().predict.remote(1))
        with self.assertRaisesRegex(InvalidError, "Class Dict has no constructor"):
            modal.Dict()

    def test_eager_calls(self):
        line = _line_of("SANDBOX_CREATE_LINE")
        msg = self.assertServerCall("modal.Sandbox.create()", lambda: modal.Sandbox.create("sleep", "1"))  # SANDBOX_CREATE_LINE
        self.assertTrue(msg.startswith("%s:%d: " % (os.path.relpath(HERE), line)), msg)
        self.assertServerCall("modal.App.lookup('x')", lambda: modal.App.lookup("x", create_if_missing=True))
        self.assertServerCall("modal.Function.lookup('a', 'f')", lambda: modal.Function.lookup("a", "f"))
        self.assertServerCall("modal.runner.deploy_app()", lambda: modal.runner.deploy_app(modal.App()))
        self.assertServerCall("modal.forward()", lambda: modal.forward(8000))
        self.assertServerCall("modal.Dict.ephemeral()", lambda: modal.Dict.ephemeral())

    def test_registered_functions(self):
        app = modal.App("calls")

        @app.function()
        def square(x):
            return x * x

        @app.cls()
        class Model:
            def __init__(self):
                self.k = 10

            @modal.method()
            def predict(self, x):
                return x + self.k

        self.assertEqual(square.local(3), 9)
        self.assertEqual(square(3), 9)
        self.assertEqual(Model().predict.local(1), 11)
        self.assertEqual(Model().predict(1), 11)
        self.assertEqual(Model().k, 10)
        self.assertServerCall("square.remote()", lambda: square.remote(2))
        self.assertServerCall("square.map()", lambda: list(square.map([1, 2])))
        self.assertServerCall("square.spawn()", lambda: square.spawn(1))
        self.assertServerCall("square.remote()", lambda: square.remote.aio(1))
        self.assertServerCall("Model().predict.remote()", lambda: Model().predict.remote(1))
        self.assertServerCall("modal.App('calls').deploy()", lambda: app.deploy())
        self.assertServerCall("square.web_url", lambda: square.web_url)
        with self.assertRaises(AttributeError):
            square.no_such_attribute  # noqa: B018


class TestWarningLocation(unittest.TestCase):
    def test_gpu_deprecation(self):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            modal.gpu.T4()  # GPU_T4_LINE
            modal.gpu.A100(count=2)  # GPU_A100_LINE
        self.assertEqual([x.category for x in w], [DeprecationError, DeprecationError])
        self.assertEqual([(x.filename, x.lineno) for x in w], [(HERE, _line_of("GPU_T4_LINE")), (HERE, _line_of("GPU_A100_LINE"))])
        self.assertIn("gpu='A100:2'", str(w[1].message))

    def test_imports_block(self):
        image = modal.Image.debian_slim()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with image.imports():  # IMPORTS_LINE
                raise ValueError("not an ImportError")
        self.assertEqual(len(w), 1)
        self.assertEqual(w[0].filename, HERE)
        # The warning is raised as the with block exits: Python gives that
        # frame the line of the `with` statement (3.11+) or of the raise.
        self.assertIn(w[0].lineno, (_line_of("IMPORTS_LINE"), _line_of("IMPORTS_LINE") + 1))


if __name__ == "__main__":
    unittest.main()
