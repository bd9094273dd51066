package snapbuild

import (
	"encoding/json"
	"strings"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// RunFunction is modal.Image.run_function: the callable runs once, in a
// sandbox on this image, with the image's Python (python, else python3 on
// the image's PATH); when it returns, the filesystem it leaves is committed
// as a layer. The module is imported in the container (its top-level code
// runs there) with /root and snapbuild's own "modal" package first on
// sys.path, so the module's `import modal` works without Modal. Source and
// volumes are bind mounts and do not reach the layer. An exception fails
// the build with the Python traceback (a *StepError); so does the timeout.
//
// Step options: Secrets and BuildEnv (environment of the call), GPU
// (NVIDIA devices), ForceBuild. The cache key holds
// Definition (or Source's content), Globals, the arguments, the secrets'
// names, the env names, gpu and the volumes; not the timeout.
//
// Errors (Modal's where it has them): no Module/Name and no Pickled;
// arguments over 2 MiB ("Arguments to `run_function` are too large (N
// bytes). Maximum size is 2097152 bytes."); a negative timeout; a relative
// or duplicate volume path; a bad volume name.
func (img Image) RunFunction(fn Function, call FunctionCall, opts ...StepOption) Image {
	const method = "run_function"
	if len(fn.Pickled) == 0 {
		if !modal.PyDotted().MatchString(fn.Module) {
			return img.fail(modal.Invalidf(method, "module %q is not a Python module name: give the module that defines the function (e.g. \"app\" for app.py)", fn.Module))
		}
		if strings.HasSuffix(fn.Name, "<lambda>") {
			return img.fail(modal.Invalidf(method, "Image.run_function does not support lambda functions."))
		}
		if strings.Contains(fn.Name, "<locals>") {
			return img.fail(modal.Invalidf(method, "Modal can only import functions defined in global scope unless they are `serialized=True`"))
		}
		if !modal.PyDotted().MatchString(fn.Name) {
			return img.fail(modal.Invalidf(method, "function %q is not a qualified name: give the function's name in its module (e.g. \"download\" or \"Model.download\")", fn.Name))
		}
	}
	if n := len(call.Input); n > modal.MaxFunctionInput {
		return img.fail(modal.Invalidf(method, "Arguments to `run_function` are too large (%d bytes). Maximum size is %d bytes.", n, modal.MaxFunctionInput))
	}
	if len(call.Input) == 0 {
		b, err := json.Marshal([]any{call.Args, call.Kwargs})
		if err != nil {
			return img.fail(modal.Invalidf(method, "args and kwargs must be JSON values: %v", err))
		}
		if len(b) > modal.MaxFunctionInput {
			return img.fail(modal.Invalidf(method, "Arguments to `run_function` are too large (%d bytes). Maximum size is %d bytes.", len(b), modal.MaxFunctionInput))
		}
	}
	if call.Timeout < 0 {
		return img.fail(modal.Invalidf(method, "timeout must be positive, not %s", call.Timeout))
	}
	if err := modal.CheckVolumes(call.Volumes); err != nil {
		return img.fail(modal.Invalidf(method, "%s", err))
	}
	return img.with(&modal.Layer{Method: method, Commands: []string{"FROM base"}, Function: &modal.FunctionStep{Fn: fn, Call: call}}, opts)
}

// Function names the Python callable a RunFunction step calls inside the
// build container (Modal's run_function raw_f): Module and Name, or a
// cloudpickle payload (Pickled); Source, the local file or package that
// defines Module, mounted read-only at /root/<base name>; Definition and
// Globals, what identifies the code in the cache key. The fields are
// documented on the type.
type Function = modal.Function

// FunctionCall holds run_function's arguments other than the callable: Args
// and Kwargs (JSON values) or Input (pickled, at most 2 MiB), Volumes by
// absolute container path, and Timeout (Modal's timeout=; not part of the
// cache key).
type FunctionCall = modal.FunctionCall

// Volume is a directory on this machine mounted into a step, standing in
// for a modal.Volume: a named volume kept in the store
// (<root>/volumes/<name>; Name and CreateIfMissing) or a host directory
// (HostPath).
type Volume = modal.Volume

// DefaultFunctionTimeout is run_function's default timeout, as Modal's.
const DefaultFunctionTimeout = modal.DefaultFunctionTimeout

// VolumeFromName is modal.Volume.from_name(name, create_if_missing=...).
func VolumeFromName(name string, createIfMissing bool) Volume {
	return modal.VolumeFromName(name, createIfMissing)
}

// HostVolume mounts the host directory dir as a volume ("~" expanded, made
// absolute when the step runs).
func HostVolume(dir string) Volume { return modal.HostVolume(dir) }
