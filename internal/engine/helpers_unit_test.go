package engine

import (
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// uImg stands in for the root package's Image in the engine's tests: a
// chain of layers, with the add_local_* layers as the root package lowers
// them.
type uImg struct{ layers []*modal.Layer }

// uBase is debian_slim("3.11") (uSlimLayer).
func uBase(t *testing.T) uImg {
	t.Helper()
	return uImg{layers: []*modal.Layer{uSlimLayer()}}
}

func (img uImg) with(l *modal.Layer) uImg {
	return uImg{layers: append(append([]*modal.Layer{}, img.layers...), l)}
}

// AddLocalDir is add_local_dir(local, remote, copy) as lowered.
func (img uImg) AddLocalDir(local, remote string, copy bool, ignore modal.Matcher) uImg {
	in := modal.ContextInput{Local: local, Remote: path.Clean(remote), Dir: true, Ignore: ignore}
	return img.with(uContextLayer("add_local_dir", copy, in))
}

// AddLocalFile is add_local_file(local, remote, copy) as lowered.
func (img uImg) AddLocalFile(local, remote string, copy bool) uImg {
	if strings.HasSuffix(remote, "/") {
		remote += filepath.Base(local)
	}
	in := modal.ContextInput{Local: local, Remote: path.Clean(remote)}
	return img.with(uContextLayer("add_local_file", copy, in))
}

func uContextLayer(method string, copy bool, in modal.ContextInput) *modal.Layer {
	if !copy {
		return &modal.Layer{Method: method, Mount: true, Context: []modal.ContextInput{in}}
	}
	return &modal.Layer{Method: method, Commands: []string{"FROM base", "COPY . /"}, Context: []modal.ContextInput{in}}
}

// FromScratch, FromID, DebianSlim and the methods below make layers as the
// root package's constructors and methods of the same names lower them.

func FromScratch() uImg {
	return uImg{layers: []*modal.Layer{{Method: "from_scratch", Commands: []string{"FROM scratch"}, Root: &modal.RootSpec{Scratch: true}}}}
}

func FromID(id string) uImg {
	return uImg{layers: []*modal.Layer{{Method: "from_id", Commands: []string{"FROM " + id}, Root: &modal.RootSpec{FromID: id}}}}
}

// DebianSlim is debian_slim(version) for a series ("3.11") or a micro
// version ("3.13.3", which Modal's own bookworm image pins).
func DebianSlim(version string) uImg {
	series, suite := version, "bookworm"
	if parts := strings.SplitN(version, ".", 3); len(parts) == 3 {
		series = parts[0] + "." + parts[1]
	} else if s, ok := modal.DebianSuiteFor[series]; ok {
		suite = s
	}
	return uImg{layers: []*modal.Layer{{Method: "debian_slim",
		Root:     &modal.RootSpec{Debian: &modal.DebianBase{Suite: suite, Python: series, Version: version}},
		Commands: []string{"FROM python:" + version + "-slim-" + suite, `CMD ["sleep", "172800"]`}}}}
}

// uOption is a step option (the root package's BuildEnv, GPU, ...).
type uOption func(*modal.Layer)

// BuildEnv is the env= step option.
func BuildEnv(vars map[string]string) uOption {
	return func(l *modal.Layer) { l.BuildEnv = vars }
}

func (img uImg) withOpts(l *modal.Layer, opts []uOption) uImg {
	for _, o := range opts {
		o(l)
	}
	return img.with(l)
}

// Env is env(vars): one ENV line per name, sorted, values shell-quoted.
func (img uImg) Env(vars map[string]string) uImg {
	lines := []string{"FROM base"}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		lines = append(lines, "ENV "+k+"="+modal.ShlexQuote(vars[k]))
	}
	return img.with(&modal.Layer{Method: "env", Commands: lines})
}

// RunCommands is run_commands(cmds).
func (img uImg) RunCommands(cmds []string, opts ...uOption) uImg {
	lines := []string{"FROM base"}
	for _, c := range cmds {
		lines = append(lines, "RUN "+c)
	}
	return img.withOpts(&modal.Layer{Method: "run_commands", Commands: lines}, opts)
}

// RunFunction is run_function(fn, call).
func (img uImg) RunFunction(fn modal.Function, call modal.FunctionCall, opts ...uOption) uImg {
	return img.withOpts(&modal.Layer{Method: "run_function", Commands: []string{"FROM base"}, Function: &modal.FunctionStep{Fn: fn, Call: call}}, opts)
}

// last is the image's last layer.
func (img uImg) last() *modal.Layer { return img.layers[len(img.layers)-1] }

// Err is nil: these layers are made without checks.
func (img uImg) Err() error { return nil }
