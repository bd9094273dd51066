package modal

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/snapbuild/snapbuild/frontend"
)

// Function names the Python callable a RunFunction step calls inside the
// build container (Modal's run_function raw_f).
type Function struct {
	// Module is the callable's module as the container imports it: "app"
	// for app.py, "pkg.train" for a module of package pkg.
	Module string
	// Name is the callable's qualified name within Module: "download" or
	// "Model.download". A decorated modal Function is unwrapped in the
	// container (its get_raw_f()), as Modal does.
	Name string
	// Source is the local file (app.py) or top-level package directory
	// (pkg/) that defines Module; it is bind-mounted read-only at
	// /root/<base name> for the step and is not part of the layer (Modal's
	// include_source=True). "" means the module is already in the image
	// (include_source=False).
	Source string
	// Pickled is a cloudpickle payload of the callable, for functions that
	// cannot be imported (defined in __main__ of an interactive session);
	// it replaces Module and Name and needs cloudpickle in the image.
	Pickled []byte
	// Definition is the text that identifies the callable's code in the
	// cache key: Modal's inspect.getsource(f) plus the repr of the step's
	// resources. "" means Module, Name and the content of Source.
	Definition string
	// Globals are the referenced global values, serialized by the caller:
	// opaque bytes that only feed the cache key (Modal's
	// BuildFunction.globals).
	Globals []byte
}

// FunctionCall holds run_function's arguments other than the callable.
type FunctionCall struct {
	// Args and Kwargs are JSON values passed to the callable (numbers,
	// strings, lists, maps). Input replaces them.
	Args   []any
	Kwargs map[string]any
	// Input is pickle.dumps((args, kwargs)), as Modal serializes a
	// Function's input; at most 2 MiB.
	Input []byte
	// Volumes maps absolute container paths to volumes, bind-mounted
	// read-write for the step; what the function writes there stays in the
	// volume and is not part of the layer.
	Volumes map[string]Volume
	// Timeout kills the function after this long and fails the build
	// (Modal's timeout=, default 3600 s). It is not part of the cache key.
	Timeout time.Duration
}

// MaxFunctionInput is Modal's limit on run_function's serialized arguments.
const MaxFunctionInput = 2 << 20

// DefaultFunctionTimeout is run_function's default timeout, as Modal's.
const DefaultFunctionTimeout = time.Hour

// Volume is a directory on this machine mounted into a run_function step,
// standing in for a modal.Volume: either a named volume kept in the
// store (<root>/volumes/<name>) or a host directory.
type Volume struct {
	Name            string // a named volume; "" for HostPath
	CreateIfMissing bool   // a missing named volume is created (else an error)
	HostPath        string // a host directory, used as it is
}

// VolumeFromName is modal.Volume.from_name(name, create_if_missing=...).
func VolumeFromName(name string, createIfMissing bool) Volume {
	return Volume{Name: name, CreateIfMissing: createIfMissing}
}

// HostVolume mounts the host directory dir as a volume ("~" expanded, made
// absolute when the step runs).
func HostVolume(dir string) Volume { return Volume{HostPath: dir} }

// Repr is the volume as it counts in the cache key.
func (v Volume) Repr() string {
	if v.Name != "" {
		return fmt.Sprintf("modal.Volume.from_name(%s)", PyRepr(v.Name))
	}
	return fmt.Sprintf("HostVolume(%s)", PyRepr(v.HostPath))
}

var (
	volumeName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`) })
	PyDotted   = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
	})
)

// CheckVolumes validates volume mounts as Modal does: canonical
// absolute paths other than /, /root and /tmp, each volume at one path.
func CheckVolumes(vols map[string]Volume) error {
	paths := make([]string, 0, len(vols))
	for p := range vols {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	seen := map[Volume]string{}
	for _, p := range paths {
		v := vols[p]
		switch {
		case !path.IsAbs(p) || path.Clean(p) != p:
			return fmt.Errorf("volume mount path %q must be a canonical, absolute path", p)
		case p == "/" || p == "/root" || p == "/tmp":
			return fmt.Errorf("volume mount path %q: a volume cannot be mounted at /, /root or /tmp", p)
		case v.Name != "" && v.HostPath != "":
			return fmt.Errorf("volume at %s: give a name or a host path, not both", p)
		case v.Name != "" && !volumeName().MatchString(v.Name):
			return fmt.Errorf("volume name %q: use 1-64 letters, digits, '.', '-' or '_'", v.Name)
		case v.Name == "" && v.HostPath == "":
			return fmt.Errorf("volume at %s has neither a name nor a host path", p)
		}
		key := Volume{Name: v.Name, HostPath: v.HostPath}
		if other, dup := seen[key]; dup {
			return fmt.Errorf("%s is mounted at both %s and %s: a volume can be mounted at one path only", v.Repr(), other, p)
		}
		seen[key] = p
	}
	return nil
}

// volumesKey is the volumes as they count in a cache key.
func volumesKey(vols map[string]Volume) []string {
	var out []string
	for p, v := range vols {
		out = append(out, p+"="+v.Repr())
	}
	sort.Strings(out)
	return out
}

// FunctionStep is a run_function layer's callable and call.
type FunctionStep struct {
	Fn   Function
	Call FunctionCall
}

// Title is the step's instruction text in progress output and history.
func (f *FunctionStep) Title() string {
	if len(f.Fn.Pickled) > 0 {
		return "RUN_FUNCTION <pickled function>"
	}
	return "RUN_FUNCTION " + f.Fn.Module + "." + f.Fn.Name
}

// FunctionRuntimeDir is the directory mounted for a run_function step: it
// holds snapbuild's Python runtime (frontend.RuntimeDir) and the request
// (frontend.RequestPath), which must share it.
var FunctionRuntimeDir = path.Dir(frontend.RuntimeDir)

// WriteRuntime writes the Python runtime and the request into dir, which is
// mounted at functionRuntimeDir.
func (f *FunctionStep) WriteRuntime(dir string) error {
	if path.Dir(frontend.RequestPath) != FunctionRuntimeDir {
		return fmt.Errorf("run_function: the runtime (%s) and the request (%s) are not in one directory", frontend.RuntimeDir, frontend.RequestPath)
	}
	if err := frontend.WriteRuntime(filepath.Join(dir, path.Base(frontend.RuntimeDir))); err != nil {
		return err
	}
	var req frontend.Request
	if len(f.Fn.Pickled) > 0 {
		req.Pickled = base64.StdEncoding.EncodeToString(f.Fn.Pickled)
	} else {
		req.Module, req.Function = f.Fn.Module, f.Fn.Name
	}
	if len(f.Call.Input) > 0 {
		req.Input = base64.StdEncoding.EncodeToString(f.Call.Input)
	} else {
		req.Args, req.Kwargs = f.Call.Args, f.Call.Kwargs
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, path.Base(frontend.RequestPath)), b, 0o644)
}

func orEmpty(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

func orEmptyMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// KeyInputs is what identifies the call in the cache key: the code's
// definition (or the source's content), the globals, the arguments and the
// volumes. Secrets, env names and gpu are added by stepKey.
func (f *FunctionStep) KeyInputs() (string, error) {
	def := f.Fn.Definition
	if def == "" && len(f.Fn.Pickled) == 0 {
		sum, err := sourceDigest(f.Fn.Source)
		if err != nil {
			return "", err
		}
		def = fmt.Sprintf("%s.%s source=%s", f.Fn.Module, f.Fn.Name, sum)
	}
	vols := volumesKey(f.Call.Volumes)
	input := f.Call.Input
	if len(input) == 0 {
		input, _ = json.Marshal([]any{orEmpty(f.Call.Args), orEmptyMap(f.Call.Kwargs)})
	}
	var pickled string
	if len(f.Fn.Pickled) > 0 {
		pickled = SHA256Hex(string(f.Fn.Pickled))
	}
	v := struct {
		Module     string   `json:"module,omitempty"`
		Name       string   `json:"name,omitempty"`
		Pickled    string   `json:"pickled,omitempty"`
		Definition string   `json:"definition"`
		Globals    string   `json:"globals"`
		Input      string   `json:"input"`
		Volumes    []string `json:"volumes"`
		Source     bool     `json:"includeSource"`
	}{f.Fn.Module, f.Fn.Name, pickled, def, SHA256Hex(string(f.Fn.Globals)), SHA256Hex(string(input)), vols, f.Fn.Source != ""}
	b, err := json.Marshal(v)
	return "function=" + string(b), err
}

// sourceDigest hashes a source file, or a package directory's .py files
// (paths and contents), for a Function without a Definition.
func sourceDigest(src string) (string, error) {
	if src == "" {
		return "none", nil
	}
	src, err := AbsLocal(src)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || (p != src && !strings.HasSuffix(p, ".py")) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("function source: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
