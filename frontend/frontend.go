// Package frontend reads Modal app files: Python files that define
// modal.Image chains, unchanged, as `snapbuild build app.py` takes them.
//
// snapbuild cannot evaluate Python, so it runs the file with the host's
// python3 and a small modal package of its own (embedded here, under
// python/), which records each Image method call instead of talking to
// Modal. Load imports the file as `modal deploy app.py` does (its __name__
// is the file's stem, so `if __name__ == "__main__":` blocks do not run; the
// file's directory and the working directory are on sys.path; the working
// directory is unchanged) and returns the images it defines as recipe JSON,
// which recipe.Parse reads with the process's working directory as the
// recipe directory (relative local paths are relative to the working
// directory, Modal's rule).
//
// The images of a file are its module-level modal.Image variables, named by
// the variable, and the image of each @app.function() and @app.cls(), named
// by the function or class ("<app>.<name>" when the name is taken), in
// definition order. What Modal resolves in the local Python process
// (add_local_python_source's modules, a callable ignore=, a .env file, a
// run_function's source and globals) is resolved while the file is loaded;
// README.md lists the recipe forms written.
//
// Evaluate does the same for a file or, with Options.Module, for a module
// imported by its dotted name as `modal run -m pkg.app` imports it, and
// can also return Meta: for each image, its kind, the name of its
// modal.App and whether it repeats an earlier image, so that the caller
// can name the images it builds.
//
// The rest of Modal's API is there for the file to import, inert where it
// would only configure Modal; what needs Modal's servers while the file is
// read (modal.Sandbox.create(), f.remote()...) fails the load with one line
// naming the call and the file's line.
//
// run_function steps run the function in a build container: WriteRuntime
// writes the modal package and the runner script for that container, to be
// mounted read-only at RuntimeDir, and the runner is started as
// RunnerCommand("python") with a Request at RequestPath.
package frontend

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// python holds the shim: the modal package, the front end and the runner.
//
//go:embed python/*.py python/modal/*.py
var python embed.FS

const (
	// RuntimeDir is where build containers find the runtime that
	// WriteRuntime writes (snapbuild's modal package and the runner).
	RuntimeDir = "/.snapbuild/python"
	// RunnerScript is the runner's file name in the runtime directory.
	RunnerScript = "snapbuild_run_function.py"
	// RequestPath is where the runner reads its Request in the container.
	RequestPath = "/.snapbuild/request.json"

	bootstrapScript = "snapbuild_frontend.py"
)

// Request is what the runner reads at RequestPath: the function to call,
// by module and qualified name (the module is imported from /root, where the
// step's source is mounted) or pickled, and its arguments, pickled (Input)
// or as JSON values (Args, Kwargs; used when Input is empty).
type Request struct {
	Module   string         `json:"module,omitempty"`
	Function string         `json:"function,omitempty"`
	Pickled  string         `json:"pickled,omitempty"` // base64 of cloudpickle.dumps(f)
	Input    string         `json:"input,omitempty"`   // base64 of pickle.dumps((args, kwargs))
	Args     []any          `json:"args,omitempty"`
	Kwargs   map[string]any `json:"kwargs,omitempty"`
}

// RunnerCommand is the command that runs a run_function step in a build
// container whose runtime is mounted at RuntimeDir: python (the image's
// interpreter, e.g. "python"), the runner, and RequestPath. The runner
// exits 0 when the function returns, 1 with the traceback on stderr when it
// raises.
func RunnerCommand(python string) []string {
	return []string{python, path.Join(RuntimeDir, RunnerScript), RequestPath}
}

// Options tune LoadWith and Evaluate. The zero value is Load's behaviour.
type Options struct {
	// Selector keeps only the image of this name (a variable, function or
	// class name). The default is every image of the file.
	Selector string
	// Python is the interpreter that runs the file. The default is python3
	// on PATH.
	Python string
	// Output receives what the file prints, and Python's warnings when the
	// file loads. The default is os.Stderr.
	Output io.Writer
	// Module, when set, is a module to import instead of a file, by its
	// dotted name ("pkg.app", or "pkg.app::NAME" with a selector), as
	// `modal run -m pkg.app` imports it: the working directory is first on
	// sys.path (after snapbuild's modal), the module is imported with
	// importlib.import_module under its dotted name (so its package's
	// relative imports work), and its `if __name__ == "__main__":` blocks do
	// not run. The file argument is then ignored. A module that cannot be
	// found is an *Error saying from which directory to run.
	Module string
	// Meta asks Evaluate for Result.Meta, what names the images. The
	// default leaves Result.Meta empty.
	Meta bool
	// Timeout bounds how long the file may take to load (Python's start,
	// the file's import and the recipe's writing). A file still loading
	// then is stopped, and Evaluate returns a *TimeoutError. The default,
	// 0, is no limit, as Modal has none.
	Timeout time.Duration
}

// TimeoutError is Evaluate's error for a file still loading after
// Options.Timeout: a file that loops or waits at import, or whose imports
// take longer than the timeout. Python was stopped.
type TimeoutError struct {
	File    string        // the file, or "-m MODULE"
	Timeout time.Duration // Options.Timeout
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s: still loading after %v, the load timeout: python was stopped (does the file loop or wait at import, outside a function and an `if __name__ == \"__main__\":` block?)", e.File, e.Timeout)
}

// Result is what Evaluate returns.
type Result struct {
	// Recipe is the images as recipe JSON, {name: [steps...]}, as Load
	// returns it.
	Recipe []byte
	// Meta describes the images of Recipe, when Options.Meta is set.
	Meta Meta
}

// Meta says where the images come from and what they belong to, so that
// the caller can name them.
type Meta struct {
	// Source is the file's absolute path, or the module's dotted name.
	Source string `json:"source"`
	// Stem is the file's name without ".py", or the module's dotted name.
	Stem string `json:"stem"`
	// Images are the images of the recipe, in its order.
	Images []ImageMeta `json:"images"`
}

// The kinds of ImageMeta.
const (
	KindImage    = "image"    // a module-level modal.Image variable
	KindFunction = "function" // the image of an @app.function()
	KindClass    = "class"    // the image of an @app.cls()
)

// ImageMeta describes one image of a recipe.
type ImageMeta struct {
	// Name is the image's name in the recipe.
	Name string `json:"name"`
	// App is the name of the modal.App the image belongs to, or "": for a
	// function or class, its App's name (modal.App("example-hello")); for
	// an Image variable, the App of the first function or class that uses
	// that very image, else the only named App of the module (its global
	// Apps and the Apps they include). "" when the App has no name or there
	// is no such App.
	App string `json:"app"`
	// Kind is KindImage, KindFunction or KindClass.
	Kind string `json:"kind"`
	// SameAs is the name of an earlier image of the recipe with the same
	// steps, or "".
	SameAs string `json:"same_as"`
}

// Error is a failure of the Python side: the file raised (Output holds the
// traceback), called what needs Modal's servers, had no such image, or
// could not be run; or the module was not found.
type Error struct {
	File   string // the file, or the module (Options.Module)
	Output string // what Python wrote on stderr
	Err    error  // the exit status, usually
}

func (e *Error) Error() string {
	if out := strings.TrimSpace(e.Output); out != "" {
		// The bootstrap's own one-line messages already name the file.
		if msg, ok := strings.CutPrefix(out, "snapbuild: "); ok && !strings.Contains(msg, "\n") {
			return msg
		}
		return fmt.Sprintf("%s: %s", e.File, out)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// SplitRef splits "app.py::name" into the file and the selector (Modal's
// syntax for an object of a file); a ref without "::" is a file.
func SplitRef(ref string) (file, selector string) {
	file, selector, _ = strings.Cut(ref, "::")
	return file, selector
}

// Load runs the Modal app file with the host's python3 and returns its
// images as recipe JSON ({name: [steps...]}); selector, when not empty,
// keeps only the image of that name. See Evaluate.
func Load(ctx context.Context, file, selector string) ([]byte, error) {
	return LoadWith(ctx, file, Options{Selector: selector})
}

// LoadWith is Load with options: Evaluate's recipe.
func LoadWith(ctx context.Context, file string, opts Options) ([]byte, error) {
	opts.Meta = false
	res, err := Evaluate(ctx, file, opts)
	if err != nil {
		return nil, err
	}
	return res.Recipe, nil
}

// Evaluate runs the Modal app file (or imports opts.Module) with the
// host's python3 and snapbuild's modal package, and returns its images as
// recipe JSON, with their Meta when opts.Meta is set.
//
// The embedded Python tree is written to a private temporary directory,
// removed before Evaluate returns, and python removes it too when the
// calling process dies first (a SIGKILL included): python watches a pipe
// whose other end only the calling process holds, and at its end of file
// it kills the file's process group, removes the directory and exits. The
// file is loaded in a child of that python, in a process group of its
// own, which dies with it (PR_SET_PDEATHSIG); whatever the file started
// and left running is killed with that group when it ends. A directory
// that is left all the same (the process died between python's exit and
// the removal) is removed by the next Evaluate of the same user, which
// removes those of processes that are gone. Python runs in the caller's working
// directory and environment, with PYTHONHASHSEED=0 unless set (so that
// run_function's pickled globals are the same from run to run).
//
// Errors: an *Error when the Python side fails. Its Output is Python's
// stderr: the traceback when the file raised. When the file calls, while it
// is read, what needs Modal's servers (modal.Sandbox.create(), f.remote(),
// modal.Dict.from_name("d").get(k)...), Error() is one line that names the
// call and the file's line:
//
//	app.py:12: modal.Sandbox.create() cannot run while snapbuild reads the file (it needs Modal's servers); move it under a function or `if __name__ == "__main__":`
//
// Cancelling ctx stops python (its group) and returns ctx's error wrapped;
// a file still loading after opts.Timeout returns a *TimeoutError.
//
// An unknown selector, a file without images and a module that is not
// found are one-line *Errors too. A missing file is os.Stat's error; no
// python3 on PATH wraps exec.ErrNotFound.
func Evaluate(ctx context.Context, file string, opts Options) (*Result, error) {
	label := file
	if opts.Module != "" {
		label = "-m " + opts.Module
	}
	py := opts.Python
	if py == "" {
		var err error
		if py, err = exec.LookPath("python3"); err != nil {
			// err wraps exec.ErrNotFound.
			return nil, fmt.Errorf("%s: reading a Modal app file needs python3 on PATH (snapbuild runs the file with the local Python, as Modal does): %w", label, err)
		}
	}
	if opts.Module == "" {
		if _, err := os.Stat(file); err != nil {
			return nil, err
		}
	}
	sweepStale(os.TempDir())
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", tempPrefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := writeTree(dir, func(string) bool { return true }); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "recipe.json")
	meta := filepath.Join(dir, "meta.json")
	// The watch pipe: python gets its read end as fd 3; its write end,
	// close-on-exec, is only ever ours, so python reads end of file when
	// this process closes it or exits, a SIGKILL included.
	watch, hold, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer watch.Close()
	var closeHold sync.Once
	release := func() error {
		closeHold.Do(func() { hold.Close() })
		return nil
	}
	defer release()
	args := []string{filepath.Join(dir, bootstrapScript), "--out", out, "--watch-fd", "3", "--owns", dir}
	if opts.Selector != "" {
		args = append(args, "--select", opts.Selector)
	}
	if opts.Meta {
		args = append(args, "--meta", meta)
	}
	if opts.Module != "" {
		args = append(args, "--module", opts.Module)
	} else {
		args = append(args, "--", file)
	}
	runCtx := ctx
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(ctx, opts.Timeout, &TimeoutError{File: label, Timeout: opts.Timeout})
		defer cancel()
	}
	cmd := exec.CommandContext(runCtx, py, args...)
	cmd.Env = os.Environ()
	if _, ok := os.LookupEnv("PYTHONHASHSEED"); !ok {
		cmd.Env = append(cmd.Env, "PYTHONHASHSEED=0")
	}
	cmd.ExtraFiles = []*os.File{watch}
	// A group of its own: a Ctrl-C at the terminal is ours to handle, not
	// python's (no KeyboardInterrupt traceback); we stop it by closing the
	// pipe, and kill it if it has not gone after waitDelay.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = release
	cmd.WaitDelay = waitDelay
	output := opts.Output
	if output == nil {
		output = os.Stderr
	}
	var stderr bytes.Buffer
	cmd.Stdout = output
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, &Error{File: label, Err: err}
	}
	watch.Close() // python's copy is enough
	err = cmd.Wait()
	if err != nil {
		if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil {
			var te *TimeoutError
			if errors.As(cause, &te) {
				return nil, te
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", label, ctx.Err())
		}
		return nil, &Error{File: label, Output: stderr.String(), Err: err}
	}
	io.Copy(output, &stderr) // warnings
	res := &Result{}
	if res.Recipe, err = os.ReadFile(out); err != nil {
		return nil, err
	}
	if opts.Meta {
		data, err := os.ReadFile(meta)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, &res.Meta); err != nil {
			return nil, fmt.Errorf("%s: reading the front end's meta: %w", label, err)
		}
	}
	return res, nil
}

const (
	// tempPrefix starts the name of Evaluate's temporary directories,
	// followed by the pid of the process that made them and "-".
	tempPrefix = "snapbuild-frontend-"
	// waitDelay is how long Evaluate waits, after the pipe closed, for
	// python to stop the file and exit before it kills it.
	waitDelay = 5 * time.Second
)

// sweepStale removes the temporary directories of Evaluate under tmp that
// a process now gone left behind: python removes its own when that process
// exits, but not one left between python's exit and the process's own
// removal, nor one made just before python started. A directory whose
// pid is alive, or is not ours to remove, is left alone.
func sweepStale(tmp string) {
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), tempPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(filepath.Join(tmp, e.Name()))
		}
	}
}

// WriteRuntime writes what a build container needs to run a run_function
// step into dir (created if needed): snapbuild's modal package (dir/modal)
// and the runner (dir/snapbuild_run_function.py), world-readable. Mount dir
// read-only at RuntimeDir and start RunnerCommand.
func WriteRuntime(dir string) error {
	return writeTree(dir, func(p string) bool {
		return p == RunnerScript || strings.HasPrefix(p, "modal/")
	})
}

// writeTree copies the embedded files that keep accepts (by their path
// relative to python/) into dir.
func writeTree(dir string, keep func(string) bool) error {
	return fs.WalkDir(python, "python", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, "python/")
		if !keep(rel) {
			return nil
		}
		data, err := python.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("writing the Python runtime: %w", err)
		}
		return os.Chmod(dst, 0o644) // readable whatever the umask
	})
}
