package snapbuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunFunctionErrors(t *testing.T) {
	base := uBase(t)
	ok := Function{Module: "app", Name: "download"}
	for _, tc := range []struct {
		name string
		img  Image
		want string
	}{
		{"no module", base.RunFunction(Function{Name: "f"}, FunctionCall{}), `run_function: module "" is not a Python module name`},
		{"bad name", base.RunFunction(Function{Module: "app", Name: "f()"}, FunctionCall{}), `run_function: function "f()" is not a qualified name`},
		{"local scope", base.RunFunction(Function{Module: "app", Name: "outer.<locals>.inner"}, FunctionCall{}), "run_function: Modal can only import functions defined in global scope unless they are `serialized=True`"},
		{"lambda", base.RunFunction(Function{Module: "app", Name: "<lambda>"}, FunctionCall{}), "run_function: Image.run_function does not support lambda functions."},
		{"too large", base.RunFunction(ok, FunctionCall{Input: make([]byte, 2<<20+1)}),
			"run_function: Arguments to `run_function` are too large (2097153 bytes). Maximum size is 2097152 bytes."},
		{"too large json", base.RunFunction(ok, FunctionCall{Args: []any{strings.Repeat("x", 2<<20)}}),
			"run_function: Arguments to `run_function` are too large (2097163 bytes). Maximum size is 2097152 bytes."},
		{"not json", base.RunFunction(ok, FunctionCall{Args: []any{func() {}}}), "run_function: args and kwargs must be JSON values"},
		{"negative timeout", base.RunFunction(ok, FunctionCall{Timeout: -time.Second}), "run_function: timeout must be positive"},
		{"relative volume", base.RunFunction(ok, FunctionCall{Volumes: map[string]Volume{"data": VolumeFromName("v", true)}}), `run_function: volume mount path "data" must be a canonical, absolute path`},
		{"root volume", base.RunFunction(ok, FunctionCall{Volumes: map[string]Volume{"/": VolumeFromName("v", true)}}), "run_function: volume mount path \"/\": a volume cannot be mounted at /, /root or /tmp"},
		{"tmp volume", base.RunFunction(ok, FunctionCall{Volumes: map[string]Volume{"/tmp": VolumeFromName("v", true)}}), "run_function: volume mount path \"/tmp\": a volume cannot be mounted at /, /root or /tmp"},
		{"unclean volume", base.RunFunction(ok, FunctionCall{Volumes: map[string]Volume{"/data/": VolumeFromName("v", true)}}), `run_function: volume mount path "/data/" must be a canonical, absolute path`},
		{"volume twice", base.RunFunction(ok, FunctionCall{Volumes: map[string]Volume{"/a": VolumeFromName("v", true), "/b": VolumeFromName("v", false)}}),
			"run_function: modal.Volume.from_name('v') is mounted at both /a and /b: a volume can be mounted at one path only"},
		{"run_commands volume", base.RunCommands([]string{"true"}, Volumes(map[string]Volume{"/root": HostVolume("/srv")})),
			"run_commands: volume mount path \"/root\": a volume cannot be mounted at /, /root or /tmp"},
		{"bad volume name", base.RunFunction(ok, FunctionCall{Volumes: map[string]Volume{"/d": VolumeFromName("a/b", true)}}), `run_function: volume name "a/b"`},
		{"empty volume", base.RunFunction(ok, FunctionCall{Volumes: map[string]Volume{"/d": {}}}), "run_function: volume at /d has neither a name nor a host path"},
		{"both volume", base.RunFunction(ok, FunctionCall{Volumes: map[string]Volume{"/d": {Name: "v", HostPath: "/x"}}}), "run_function: volume at /d: give a name or a host path, not both"},
		{"no base", Image{}.RunFunction(ok, FunctionCall{}), "run_function: Image has not been constructed yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.img.Err()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want prefix %q", err, tc.want)
			}
		})
	}
	// A pickled callable needs no module or name.
	if err := base.RunFunction(Function{Pickled: []byte("x")}, FunctionCall{}).Err(); err != nil {
		t.Errorf("pickled: %v", err)
	}
	img := base.RunFunction(ok, FunctionCall{Args: []any{1}})
	if l := img.layers[len(img.layers)-1]; l.Function == nil || l.Function.Title() != "RUN_FUNCTION app.download" || len(l.Commands) != 1 {
		t.Errorf("layer: %+v", l)
	}
}

// The cache key holds the code, globals, arguments, volumes and whether the
// source is mounted; not the timeout.
func TestRunFunctionKeyInputs(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.py")
	os.WriteFile(src, []byte("def f(x):\n    pass\n"), 0o644)
	key := func(fn Function, call FunctionCall) string {
		t.Helper()
		img := uBase(t).RunFunction(fn, call)
		if img.Err() != nil {
			t.Fatal(img.Err())
		}
		l := img.layers[len(img.layers)-1]
		s, err := l.Function.KeyInputs()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	fn := Function{Module: "app", Name: "f", Source: src}
	k0 := key(fn, FunctionCall{Args: []any{1}})
	same := map[string]string{
		"timeout":   key(fn, FunctionCall{Args: []any{1}, Timeout: time.Minute}),
		"same args": key(fn, FunctionCall{Args: []any{1}}),
	}
	for name, k := range same {
		if k != k0 {
			t.Errorf("%s changed the key", name)
		}
	}
	differ := map[string]string{
		"args":         key(fn, FunctionCall{Args: []any{2}}),
		"kwargs":       key(fn, FunctionCall{Args: []any{1}, Kwargs: map[string]any{"a": 1}}),
		"input":        key(fn, FunctionCall{Input: []byte("pickle")}),
		"volume":       key(fn, FunctionCall{Args: []any{1}, Volumes: map[string]Volume{"/d": VolumeFromName("v", true)}}),
		"name":         key(Function{Module: "app", Name: "g", Source: src}, FunctionCall{Args: []any{1}}),
		"no source":    key(Function{Module: "app", Name: "f"}, FunctionCall{Args: []any{1}}),
		"definition":   key(Function{Module: "app", Name: "f", Source: src, Definition: "def f(x): pass"}, FunctionCall{Args: []any{1}}),
		"globals":      key(Function{Module: "app", Name: "f", Source: src, Globals: []byte("g")}, FunctionCall{Args: []any{1}}),
		"pickled":      key(Function{Pickled: []byte("p")}, FunctionCall{Args: []any{1}}),
		"other volume": key(fn, FunctionCall{Args: []any{1}, Volumes: map[string]Volume{"/d": HostVolume("/srv")}}),
	}
	seen := map[string]string{"base": k0}
	for name, k := range differ {
		for other, ok := range seen {
			if k == ok {
				t.Errorf("%s gives the same key as %s", name, other)
			}
		}
		seen[name] = k
	}
	// Editing the source changes the key when there is no Definition.
	os.WriteFile(src, []byte("def f(x):\n    return x\n"), 0o644)
	if key(fn, FunctionCall{Args: []any{1}}) == k0 {
		t.Error("a changed source file kept the key")
	}
}
