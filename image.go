package snapbuild

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/snapbuild/snapbuild/gpu"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// Image is an immutable image definition: a chain of Modal layers, each a
// short Dockerfile. Every method returns a new Image and leaves its receiver
// unchanged, like modal.Image. The zero Image has no layers; start from a
// constructor such as DebianSlim or FromID.
type Image struct {
	layers []*modal.Layer
	err    error
}

// StepOption configures one build step, as Modal's common keyword arguments do.
type StepOption func(*modal.Layer)

// ForceBuild rebuilds the layer even if it is cached, and replaces the cache
// entry (Modal's force_build=True).
func ForceBuild() StepOption { return func(l *modal.Layer) { l.ForceBuild = true } }

// BuildEnv sets environment variables for the step's processes only; they are
// not saved in the image (Modal's env= keyword, which Modal passes as a
// Secret). As in Modal only the names, not the values, feed the cache key.
func BuildEnv(vars map[string]string) StepOption {
	return func(l *modal.Layer) {
		if l.BuildEnv == nil {
			l.BuildEnv = map[string]string{}
		}
		for k, v := range vars {
			l.BuildEnv[k] = v
		}
	}
}

// GPU runs the layer's steps with the host's NVIDIA GPUs (Modal's gpu=
// keyword: "T4", "a100:2", "any", "H100!"; the type is upper-cased). Several
// requests are fallbacks, as Modal's gpu=["H100", "A100"]: the first the
// host can serve is used. The requests are part of the cache key, as
// Modal's gpu_config is part of the layer definition. A step fails before
// its container starts when the host has no such GPU (type and count), and
// says what it has. A bad value (an unknown type, a bad count) is an error
// of the Image (see Err); Modal's client leaves unknown types to its server.
func GPU(requests ...string) StepOption {
	return func(l *modal.Layer) {
		reqs, err := gpu.ParseRequests(requests)
		for _, r := range reqs {
			if err == nil {
				err = r.Validate()
			}
		}
		if err != nil {
			l.GPU, l.OptErr = "", &InvalidError{Method: l.Method, Message: err.Error()}
			return
		}
		l.GPU = gpu.Join(reqs)
	}
}

// Volumes mounts volumes into the layer's RUN steps (Modal's run_commands
// volumes=): container path -> Volume, read-write; what the steps write
// there stays in the volume and is not part of the layer. Paths must be
// canonical absolute paths other than /, /root and /tmp, and a volume may be
// mounted at one path only. The volumes are part of the cache key.
func Volumes(vols map[string]Volume) StepOption {
	return func(l *modal.Layer) {
		if err := modal.CheckVolumes(vols); err != nil {
			l.OptErr = &InvalidError{Method: l.Method, Message: err.Error()}
			return
		}
		if l.Volumes == nil {
			l.Volumes = map[string]Volume{}
		}
		for p, v := range vols {
			l.Volumes[p] = v
		}
	}
}

// Err returns the first error recorded while the image was chained, or nil.
// Builder.Build returns it too.
func (img Image) Err() error { return img.err }

// Commands returns the Dockerfile commands of each layer, base first: what
// Modal would send for this image. It is meant for inspection and tests.
func (img Image) Commands() [][]string {
	out := make([][]string, len(img.layers))
	for i, l := range img.layers {
		out[i] = slices.Clone(l.Commands)
	}
	return out
}

// with returns a copy of img with l appended, after applying opts to l.
func (img Image) with(l *modal.Layer, opts []StepOption) Image {
	if img.err != nil {
		return img
	}
	if len(img.layers) == 0 {
		return Image{err: modal.Invalidf(l.Method, "Image has not been constructed yet. Use one of the static factory methods prior to calling %s like `DebianSlim` or `FromID`", l.Method)}
	}
	for _, o := range opts {
		o(l)
	}
	if l.OptErr != nil {
		return img.fail(l.OptErr)
	}
	if err := l.CheckLines(); err != nil {
		return img.fail(err)
	}
	return Image{layers: append(slices.Clone(img.layers), l)}
}

func (img Image) fail(err error) Image {
	if img.err != nil {
		return img
	}
	return Image{layers: img.layers, err: err}
}

// DefaultPythonVersion is the Python series DebianSlim uses when given "".
// Modal uses the local interpreter's version instead; snapbuild picks a fixed
// series so that one recipe gives one image on every machine.
const DefaultPythonVersion = "3.11"

var (
	pythonVersionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^3(?:\.\d{1,2}){1,2}(rc\d*)?t?$`) })
	pythonSeriesRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^3\.\d{1,2}`) })
)

// modalSeries is what Modal's 2025.06 builder accepts for debian_slim.
var modalSeries = []string{"3.10", "3.11", "3.12", "3.13", "3.14", "3.14t"}

// DebianSlim is modal.Image.debian_slim(python_version): Debian with Python,
// pip, gcc, gfortran and build-essential, debconf set to noninteractive, and
// CMD ["sleep", "172800"] (builder 2025.06).
//
// Modal starts from Docker Hub's python:<version>-slim-bookworm; snapbuild
// works offline and decides at build time, from what the site provides,
// where the base comes from (see docs/python-versions.md):
//
//   - with a Docker Hub mirror (WithDebianSlimFromRegistry), Modal's own
//     image, then Modal's commands; micro pins ("3.12.3") only this way;
//   - "3.11" and "3.13": bootstrapped from the Debian archive with mmdebstrap
//     (see package base), so the Python is Debian's (bookworm's 3.11, trixie's
//     3.13);
//   - other series Modal allows ("3.10", "3.12", "3.14"): Debian bookworm
//     plus the python-build-standalone tarball add_python uses (found in
//     Builder.PythonStandaloneDir), installed into /usr/local as in Modal's
//     image.
//
// A version Modal's builder refuses is an error here; one the site cannot
// provide is an error of Builder.Build that says how to provide it.
// pythonVersion "" means DefaultPythonVersion.
func DebianSlim(pythonVersion string, opts ...StepOption) Image {
	const method = "debian_slim"
	if pythonVersion == "" {
		pythonVersion = DefaultPythonVersion
	}
	if !pythonVersionRE().MatchString(pythonVersion) {
		return Image{err: modal.Invalidf(method, "Invalid Python version: %s", modal.PyRepr(pythonVersion))}
	}
	if strings.HasSuffix(pythonVersion, "t") {
		return Image{err: modal.Invalidf(method, "Free threaded Python is not supported with Image.debian_slim")}
	}
	series := pythonSeriesRE().FindString(pythonVersion)
	if !slices.Contains(modalSeries, series) {
		reprs := make([]string, len(modalSeries))
		for i, s := range modalSeries {
			reprs[i] = modal.PyRepr(s)
		}
		return Image{err: modal.Invalidf(method, "Unsupported Python version: %s. When using the '2025.06' Image builder, Modal supports the following series: [%s].", modal.PyRepr(pythonVersion), strings.Join(reprs, ", "))}
	}
	// Modal's codename is bookworm for every series; a series bootstrapped
	// from Debian names the suite that ships it (trixie for 3.13).
	suite, ok := modal.DebianSuiteFor[pythonVersion]
	if !ok {
		suite = "bookworm"
	}
	l := &modal.Layer{
		Method: method,
		Commands: []string{
			fmt.Sprintf("FROM python:%s-slim-%s", pythonVersion, suite),
			`CMD ["sleep", "172800"]`,
		},
		Root: &modal.RootSpec{Debian: &modal.DebianBase{Suite: suite, Python: series, Version: pythonVersion}},
	}
	for _, o := range opts {
		o(l)
	}
	return Image{layers: []*modal.Layer{l}}
}

// FromID starts from an image built earlier into the same store, named by its
// ID ("im-...") or by a name given with -t / Builder.Tag
// (modal.Image.from_id).
func FromID(id string) Image {
	if id == "" {
		return Image{err: modal.Invalidf("from_id", "empty image ID")}
	}
	if err := oneLine("from_id", lineArg("image_id", id)); err != nil {
		return Image{err: err}
	}
	return Image{layers: []*modal.Layer{{Method: "from_id", Commands: []string{"FROM " + id}, Root: &modal.RootSpec{FromID: id}}}}
}

// FromScratch is modal.Image.from_scratch(): "FROM scratch", an empty root
// filesystem. Only steps that need no program in the image (COPY, ENV, ...)
// can follow it, unless files are copied in first.
func FromScratch() Image {
	return Image{layers: []*modal.Layer{{Method: "from_scratch", Commands: []string{"FROM scratch"}, Root: &modal.RootSpec{Scratch: true}}}}
}

// AptInstall is modal.Image.apt_install: "RUN apt-get update" then
// "RUN apt-get install -y <packages>", packages in the given order, quoted
// only when needed. No packages gives the same image; a package with a line
// break is an error.
func (img Image) AptInstall(packages []string, opts ...StepOption) Image {
	if len(packages) == 0 {
		return img
	}
	if err := oneLine("apt_install", lineArgs("packages", packages)); err != nil {
		return img.fail(err)
	}
	return img.with(&modal.Layer{Method: "apt_install", Call: "apt_install(" + pyList(packages) + ")", Commands: []string{
		"FROM base",
		"RUN apt-get update",
		"RUN apt-get install -y " + shlexJoin(packages),
	}}, opts)
}

// RunCommands is modal.Image.run_commands: each command becomes its own RUN
// instruction, verbatim, so shell state such as `cd` does not carry from one
// to the next. No commands gives the same image. A line break in a command
// must be a line continuation (a backslash ending the line), and a command
// may not end with one, which would join the next instruction to it: Modal
// sends both as they are, and Docker then reads a bogus instruction.
func (img Image) RunCommands(commands []string, opts ...StepOption) Image {
	if len(commands) == 0 {
		return img
	}
	cmds := []string{"FROM base"}
	for _, c := range commands {
		if strings.TrimSpace(c) == "" {
			return img.fail(modal.Invalidf("run_commands", "empty command: remove it, or give a shell command"))
		}
		if bareNewline(c) {
			return img.fail(modal.Invalidf("run_commands", "command %q holds a line break: each command is one Dockerfile RUN line, so the next line would be read as an instruction. Join the lines with && or ;, end them with \\, or pass each line as its own command", c))
		}
		if endsInContinuation(c) {
			return img.fail(modal.Invalidf("run_commands", "command %q ends with a line continuation (\\), which would join the next instruction to it. Remove the trailing backslash", c))
		}
		cmds = append(cmds, "RUN "+c)
	}
	return img.with(&modal.Layer{Method: "run_commands", Call: "run_commands(" + pyList(commands) + ")", Commands: cmds}, opts)
}

// PipInstall is modal.Image.pip_install for plain package lists:
// "RUN python -m pip install <packages>", packages sorted (Python code-point
// order) and quoted only when needed. A package starting with "-" or holding
// a line break is an error.
func (img Image) PipInstall(packages []string, opts ...StepOption) Image {
	if len(packages) == 0 {
		return img
	}
	for _, p := range packages {
		if strings.HasPrefix(p, "-") {
			return img.fail(modal.Invalidf("pip_install", "Package list for `Image.pip_install` cannot contain other arguments; try the `extra_options` parameter instead."))
		}
	}
	if err := oneLine("pip_install", lineArgs("packages", packages)); err != nil {
		return img.fail(err)
	}
	sorted := slices.Clone(packages)
	sort.Strings(sorted)
	return img.with(&modal.Layer{Method: "pip_install", Call: "pip_install(" + pyList(packages) + ")", Commands: []string{
		"FROM base",
		"RUN python -m pip install " + shlexJoin(sorted),
	}}, opts)
}

// bareNewline reports whether s has a line break that is not a Dockerfile
// line continuation (a backslash at the end of the line). Modal sends such a
// command as is and its build fails on the next line; snapbuild says so when
// the method is called.
func bareNewline(s string) bool {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasSuffix(strings.TrimRight(l, " \t\r"), "\\") {
			return true
		}
	}
	return false
}

// EnvVar is one environment variable, for EnvVars.
type EnvVar struct{ Name, Value string }

// Env is modal.Image.env: one "ENV KEY=<quoted value>" line per variable,
// persisted in the image config. Go maps have no order, so the lines are
// sorted by name; use EnvVars to keep an order of your own (Modal keeps the
// dict's order). A value with a line break is an error: a Dockerfile ENV
// line cannot hold one (see docs/method-arguments.md).
func (img Image) Env(vars map[string]string) Image {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	list := make([]EnvVar, len(names))
	for i, k := range names {
		list[i] = EnvVar{k, vars[k]}
	}
	return img.EnvVars(list...)
}

// EnvVars is Env with the variables in the given order.
func (img Image) EnvVars(vars ...EnvVar) Image {
	cmds := []string{"FROM base"}
	for _, v := range vars {
		if v.Name == "" || strings.ContainsAny(v.Name, "= \t\n") {
			return img.fail(modal.Invalidf("env", "invalid variable name %q: a name must be non-empty and contain no '=' or whitespace", v.Name))
		}
		if err := oneLine("env", lineArg(fmt.Sprintf("vars[%q]", v.Name), v.Value)); err != nil {
			return img.fail(err)
		}
		cmds = append(cmds, "ENV "+v.Name+"="+modal.ShlexQuote(v.Value))
	}
	return img.with(&modal.Layer{Method: "env", Call: "env(" + pyDict(vars) + ")", Commands: cmds}, nil)
}

// Workdir is modal.Image.workdir: "WORKDIR <path>" (quoted when needed). The
// directory is created if missing, and later steps run in it. A path with a
// line break is an error.
func (img Image) Workdir(dir string) Image {
	if dir == "" {
		return img.fail(modal.Invalidf("workdir", "empty path"))
	}
	if err := oneLine("workdir", lineArg("path", dir)); err != nil {
		return img.fail(err)
	}
	return img.with(&modal.Layer{Method: "workdir", Call: "workdir(" + pyStr(dir) + ")", Commands: []string{"FROM base", "WORKDIR " + modal.ShlexQuote(dir)}}, nil)
}

// Entrypoint is modal.Image.entrypoint: `ENTRYPOINT ["a", "b"]`.
func (img Image) Entrypoint(args []string, opts ...StepOption) Image {
	return img.with(&modal.Layer{Method: "entrypoint", Call: "entrypoint(" + pyList(args) + ")", Commands: []string{"FROM base", "ENTRYPOINT " + jsonList(args)}}, opts)
}

// Cmd is modal.Image.cmd: `CMD ["a", "b"]`.
func (img Image) Cmd(args []string, opts ...StepOption) Image {
	return img.with(&modal.Layer{Method: "cmd", Call: "cmd(" + pyList(args) + ")", Commands: []string{"FROM base", "CMD " + jsonList(args)}}, opts)
}

// Shell is modal.Image.shell: `SHELL ["/bin/bash", "-c"]`; later RUN
// instructions run through it.
func (img Image) Shell(args []string, opts ...StepOption) Image {
	return img.with(&modal.Layer{Method: "shell", Call: "shell(" + pyList(args) + ")", Commands: []string{"FROM base", "SHELL " + jsonList(args)}}, opts)
}

// AddLocalFile is modal.Image.add_local_file(local_path, remote_path, copy).
// remotePath must be absolute; a trailing "/" appends the local file's name.
// A leading "~" in localPath is expanded when the method is called, as for
// every local path (see docs/method-arguments.md; Modal expands it in
// add_local_dir only); a relative path is resolved against the working
// directory, and its symlinks followed, when the file is read.
//
// copy=true: a layer "COPY . /" whose build context holds the file at
// remotePath, cached by path, content and mode.
//
// copy=false (Modal's default): no layer and no new image ID; the file is
// read and attached when `snapbuild run` (Builder.Run) starts a container,
// and written as a last layer when the image is exported (an OCI image has
// no other place for it). A build step after a copy=false layer is an error,
// as in Modal.
func (img Image) AddLocalFile(localPath, remotePath string, copy bool) Image {
	const method = "add_local_file"
	if !path.IsAbs(remotePath) {
		return img.fail(modal.Invalidf(method, "image.add_local_file() currently only supports absolute remote_path values"))
	}
	local, err := modal.ExpandHome(localPath)
	if err != nil {
		return img.fail(modal.Invalidf(method, "local_path: %v", err))
	}
	if strings.HasSuffix(remotePath, "/") {
		remotePath += filepath.Base(local)
	}
	in := modal.ContextInput{Local: local, Remote: path.Clean(remotePath)}
	if !copy {
		return img.with(&modal.Layer{Method: method, Mount: true, Context: []modal.ContextInput{in}}, nil)
	}
	return img.with(&modal.Layer{Method: method, Call: fmt.Sprintf("add_local_file(%s, %s, copy=True)", pyStr(localPath), pyStr(in.Remote)),
		Commands: []string{"FROM base", "COPY . /"}, Context: []modal.ContextInput{in}}, nil)
}

// AddLocalDir is modal.Image.add_local_dir(local_path, remote_path, copy=True,
// ignore=...): the directory's contents land under remotePath. ignore
// (nil: nothing) is given each file's path relative to localPath and leaves
// out those it matches: NewFilePatternMatcher("*.pyc", "!keep.pyc") for
// .dockerignore-style patterns, FilePatternMatcherFromFile, Invert, or a
// MatcherFunc, as Modal's ignore takes patterns or a callable. Directory symlinks are
// not descended, file symlinks are copied as their targets' content, as Modal
// does. localPath is expanded and resolved as in AddLocalFile.
// copy=false works as for AddLocalFile.
func (img Image) AddLocalDir(localPath, remotePath string, copy bool, ignore Matcher) Image {
	const method = "add_local_dir"
	if !path.IsAbs(remotePath) {
		return img.fail(modal.Invalidf(method, "image.add_local_dir() currently only supports absolute remote_path values"))
	}
	local, err := modal.ExpandHome(localPath)
	if err != nil {
		return img.fail(modal.Invalidf(method, "local_path: %v", err))
	}
	in := modal.ContextInput{Local: local, Remote: path.Clean(remotePath), Dir: true, Ignore: ignore}
	if !copy {
		return img.with(&modal.Layer{Method: method, Mount: true, Context: []modal.ContextInput{in}}, nil)
	}
	return img.with(&modal.Layer{Method: method, Call: fmt.Sprintf("add_local_dir(%s, %s, copy=True)", pyStr(localPath), pyStr(in.Remote)),
		Commands: []string{"FROM base", "COPY . /"}, Context: []modal.ContextInput{in}}, nil)
}

// shlexJoin is Python's shlex.join.
func shlexJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = modal.ShlexQuote(a)
	}
	return strings.Join(q, " ")
}

// jsonList renders a Dockerfile exec-form list the way Modal does: items in
// double quotes joined by ", ". Modal does not escape; snapbuild escapes as
// JSON does ('"', '\\' and control characters; a deliberate fix: Modal's
// output is then invalid JSON, which Docker silently runs in shell form, or
// a newline breaks the line). For other items the text, and so the cache key,
// is Modal's.
func jsonList(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(a) // a string always encodes
		q[i] = strings.TrimSuffix(b.String(), "\n")
	}
	return "[" + strings.Join(q, ", ") + "]"
}
