"""The rest of Modal's public API, as snapbuild's shim provides it.

Every public module of Modal (1.x) can be imported from the shim, and every
public name of them exists. The names that the shim models itself (Image,
App, Secret, Volume...) live in their modules; this table gives the others:

  - references to objects on Modal's servers (Dict, Queue, Proxy,
    FunctionCall, Sandbox...): server classes of _cloud, whose lazy
    constructors (from_name, from_id) work as in Modal and whose every other
    use raises ServerCallError;
  - functions that need Modal's servers (modal.runner.deploy_app,
    modal.forward...): they raise ServerCallError when called;
  - plain values (Retries, Cron, Period, SchedulerPlacement, Probe...):
    data classes that take any arguments and keep them;
  - a few functions with a local answer (current_input_id() is None,
    enable_output() a context manager that does nothing).

A name of a Modal module that the table does not list is an _inert.Inert.
"""

import contextlib
import importlib
import sys

from . import _cloud
from ._inert import Inert
from ._object import InertAttrs

_made = {}


def _once(key, make):
    def get():
        if key not in _made:
            _made[key] = make()
        return _made[key]

    return get


def _server(name, module, lazy=(), callable_=False):
    return _once(module + "." + name, lambda: _cloud.server_class(name, module, lazy=lazy, callable_=callable_))


def _server_fn(qualname):
    return _once("fn:" + qualname, lambda: _cloud.server_function(qualname))


def _data(name, module):
    """A class of plain values (modal.Retries(max_retries=3)): any arguments are kept."""

    def make():
        def __init__(self, *args, **kwargs):
            self._args, self._kwargs = args, kwargs

        def __repr__(self):
            parts = [repr(a) for a in self._args] + ["%s=%r" % kv for kv in self._kwargs.items()]
            return "modal.%s(%s)" % (name, ", ".join(parts))

        def __getattr__(self, attr):
            if attr.startswith("_"):
                raise AttributeError(attr)
            if attr in self._kwargs:
                return self._kwargs[attr]
            return Inert("%s.%s" % (name, attr))

        ns = {
            "__init__": __init__,
            "__repr__": __repr__,
            "__getattr__": __getattr__,
            "__module__": module,
            "__qualname__": name,
            "__doc__": "modal.%s: a plain value; snapbuild keeps its arguments." % name,
        }
        return InertAttrs(name, (), ns)

    return _once(module + "." + name, make)


def _value(v):
    return lambda: v


def _real(module, name):
    return lambda: getattr(importlib.import_module(module), name)


def _none(*args, **kwargs):
    """None, as Modal answers outside a Modal container."""
    return None


@contextlib.contextmanager
def enable_output(show_progress=True):
    """modal.enable_output(): Modal's progress output; nothing to show in snapbuild."""
    yield


_FUNCTION_CALL = _server("FunctionCall", "modal.functions", lazy=("from_id",))

# module -> {name: () -> value}
MODULES = {
    "modal.billing": {"workspace_billing_report": _server_fn("billing.workspace_billing_report")},
    "modal.call_graph": {"InputInfo": _data("InputInfo", "modal.call_graph"), "InputStatus": _data("InputStatus", "modal.call_graph")},
    "modal.client": {"Client": _server("Client", "modal.client")},
    "modal.cloud_bucket_mount": {"CloudBucketMount": _real("modal.volume", "CloudBucketMount")},
    "modal.cls": {"Obj": _server("Obj", "modal.cls")},
    "modal.container_process": {"ContainerProcess": _server("ContainerProcess", "modal.container_process")},
    "modal.dict": {"Dict": _server("Dict", "modal.dict", lazy=("from_name", "from_id"))},
    "modal.environments": {
        "Environment": _server("Environment", "modal.environments", lazy=("from_name",)),
        "create_environment": _server_fn("environments.create_environment"),
        "delete_environment": _server_fn("environments.delete_environment"),
        "list_environments": _server_fn("environments.list_environments"),
        "update_environment": _server_fn("environments.update_environment"),
    },
    "modal.experimental": {
        "clustered": _real("modal.partial_function", "clustered"),
        "stop_fetching_inputs": _server_fn("experimental.stop_fetching_inputs"),
        "get_local_input_concurrency": _server_fn("experimental.get_local_input_concurrency"),
        "set_local_input_concurrency": _server_fn("experimental.set_local_input_concurrency"),
        "get_cluster_info": _server_fn("experimental.get_cluster_info"),
        "list_deployed_apps": _server_fn("experimental.list_deployed_apps"),
        "get_app_lifecycle": _server_fn("experimental.get_app_lifecycle"),
        "stop_app": _server_fn("experimental.stop_app"),
        "get_app_objects": _server_fn("experimental.get_app_objects"),
        "image_delete": _server_fn("experimental.image_delete"),
        "update_autoscaler": _server_fn("experimental.update_autoscaler"),
    },
    "modal.file_io": {
        "FileIO": _server("FileIO", "modal.file_io"),
        "FileWatchEvent": _data("FileWatchEvent", "modal.file_io"),
        "FileWatchEventType": _data("FileWatchEventType", "modal.file_io"),
        "ls": _server_fn("file_io.ls"),
        "mkdir": _server_fn("file_io.mkdir"),
        "rm": _server_fn("file_io.rm"),
        "watch": _server_fn("file_io.watch"),
    },
    "modal.functions": {"FunctionCall": _FUNCTION_CALL},
    "modal.io_streams": {
        "StreamReader": _server("StreamReader", "modal.io_streams"),
        "StreamWriter": _server("StreamWriter", "modal.io_streams"),
    },
    "modal.network_file_system": {"NetworkFileSystem": _real("modal.volume", "NetworkFileSystem")},
    "modal.output": {"enable_output": _value(enable_output)},
    "modal.proxy": {"Proxy": _server("Proxy", "modal.proxy", lazy=("from_name",))},
    "modal.queue": {"Queue": _server("Queue", "modal.queue", lazy=("from_name", "from_id"))},
    "modal.retries": {"Retries": _data("Retries", "modal.retries")},
    "modal.runner": {
        "DeployResult": _data("DeployResult", "modal.runner"),
        "deploy_app": _server_fn("runner.deploy_app"),
        "run_app": _server_fn("runner.run_app"),
        "serve_update": _server_fn("runner.serve_update"),
        "interactive_shell": _server_fn("runner.interactive_shell"),
    },
    "modal.running_app": {"RunningApp": _data("RunningApp", "modal.running_app")},
    "modal.sandbox": {
        "Sandbox": _server("Sandbox", "modal.sandbox"),
        "Probe": _data("Probe", "modal.sandbox"),
    },
    "modal.schedule": {
        "Schedule": _data("Schedule", "modal.schedule"),
        "Cron": _data("Cron", "modal.schedule"),
        "Period": _data("Period", "modal.schedule"),
    },
    "modal.scheduler_placement": {"SchedulerPlacement": _data("SchedulerPlacement", "modal.scheduler_placement")},
    "modal.server": {"Server": _server("Server", "modal.server", lazy=("from_name",))},
    "modal.serving": {"serve_app": _server_fn("serving.serve_app")},
    "modal.snapshot": {"SandboxSnapshot": _server("SandboxSnapshot", "modal.snapshot")},
    "modal.workspace": {"Workspace": _server("Workspace", "modal.workspace")},
    "modal._tunnel": {
        "Tunnel": _data("Tunnel", "modal._tunnel"),
        "forward": _server_fn("forward"),
    },
    "modal._runtime.execution_context": {
        "current_function_call_id": _value(_none),
        "current_input_id": _value(_none),
        "interact": _value(_none),
    },
}

# Modal's public submodules (import modal.x works, and so does modal.x after
# `import modal`, as with Modal, whose modal/__init__ imports them all).
SUBMODULES = (
    "app billing call_graph client cloud_bucket_mount cls config container_process dict environments "
    "exception experimental file_io file_pattern_matcher functions gpu image io_streams mount "
    "network_file_system object output parallel_map partial_function proxy queue retries runner "
    "running_app sandbox sandbox_fs schedule scheduler_placement secret server serving snapshot "
    "stream_type types volume workspace"
).split()

# Names of `modal` that the table gives: name -> module.
TOP_LEVEL = {
    "Client": "modal.client",
    "Cron": "modal.schedule",
    "Dict": "modal.dict",
    "Environment": "modal.environments",
    "FunctionCall": "modal.functions",
    "Period": "modal.schedule",
    "Probe": "modal.sandbox",
    "Proxy": "modal.proxy",
    "Queue": "modal.queue",
    "Retries": "modal.retries",
    "Sandbox": "modal.sandbox",
    "SandboxSnapshot": "modal.snapshot",
    "SchedulerPlacement": "modal.scheduler_placement",
    "Server": "modal.server",
    "Tunnel": "modal._tunnel",
    "Workspace": "modal.workspace",
    "current_function_call_id": "modal._runtime.execution_context",
    "current_input_id": "modal._runtime.execution_context",
    "enable_output": "modal.output",
    "forward": "modal._tunnel",
    "interact": "modal._runtime.execution_context",
}


def lookup(module, name):
    """The value of module.name from the table, or an Inert; AttributeError
    for a private name."""
    if not name or name.startswith("_"):
        raise AttributeError(name)
    make = MODULES.get(module, {}).get(name)
    if make is not None:
        return make()
    return Inert("%s.%s" % (module[len("modal.") :], name))


def top_level(name):
    """The value of modal.<name> that the shim's __init__ does not define."""
    if name in SUBMODULES:
        return importlib.import_module("modal." + name)
    if name in TOP_LEVEL:
        return lookup(TOP_LEVEL[name], name)
    if not name or name.startswith("_"):
        raise AttributeError(name)
    return Inert(name)


def module_getattr(module):
    """A module __getattr__ (PEP 562) for a module of the shim: the table's
    names of that module, then Inerts."""

    def __getattr__(name):
        value = lookup(module, name)
        setattr(sys.modules[module], name, value)
        return value

    return __getattr__
