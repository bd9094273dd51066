package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/snapbuild/snapbuild"
)

// runCLI runs the command line args as main does and returns what it wrote
// on standard output and standard error, and its exit status. Tests that
// use it must not run in parallel: it swaps os.Stdout and os.Stderr.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	globalRoot = ""
	defer func() { globalRoot = "" }()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var ob, eb bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { io.Copy(&ob, outR); wg.Done() }()
	go func() { io.Copy(&eb, errR); wg.Done() }()
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outW, errW
	code = run(args)
	os.Stdout, os.Stderr = oldOut, oldErr
	outW.Close()
	errW.Close()
	wg.Wait()
	return ob.String(), eb.String(), code
}

// commandFlags are flags each command's help must list, as the help shows
// them.
var commandFlags = map[string][]string{
	"build":   {"--root DIR", "-t NAME", "--tag NAME", "--print", "--progress MODE", "auto (tty on a terminal, else plain)", "-q, --quiet", "--platform OS/ARCH[/VARIANT]", "--force-build", "--pull", "--network MODE", "--security MODE", "--mirror URL", "--replace", "-m PKG.MODULE[::NAME]", "--cdi-spec-dir DIR", "--insecure-registry HOST[:PORT]", "--registries-conf FILE", "--ca-file FILE", "--site-config FILE", "--pip-index-url URL", "--uv-image REPO", "-f, --file FILE", "--build-arg NAME=VALUE", "--target STAGE", "--jobs N", "(default: the number of CPUs)"},
	"run":     {"--root DIR", "-e KEY=VALUE", "-w DIR", "--network MODE", "--security MODE"},
	"images":  {"--root DIR", "--json"},
	"inspect": {"--root DIR"},
	"rm":      {"--root DIR"},
	"export":  {"--root DIR", "--compression ALGORITHM", "--insecure-registry HOST[:PORT]"},
	"push":    {"--root DIR", "--compression ALGORITHM", "--insecure-registry HOST[:PORT]", "--ca-file FILE"},
	"pull":    {"--root DIR", "--insecure-registry HOST[:PORT]", "--registries-conf FILE"},
	"prune":   {"--root DIR", "-a, --all", "-f, --force", "--keep-storage SIZE", "--filter until=DURATION"},
	"df":      {"--root DIR", "-v, --verbose", "--json"},
	"base":    {"--root DIR", "--json", "--mirror URL", "--progress MODE"},
	"save":    {"--root DIR"},
	"load":    {"--root DIR"},
	"version": nil,
}

func TestCommandHelp(t *testing.T) {
	if len(commandFlags) != len(commands) {
		t.Errorf("commandFlags has %d commands, commands %d", len(commandFlags), len(commands))
	}
	for _, c := range commands {
		want, ok := commandFlags[c.name]
		if !ok {
			t.Errorf("no expected flags for %s", c.name)
		}
		var first string
		for _, argv := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}, {"--root", "/nonexistent", c.name, "--help"}} {
			out, errOut, code := runCLI(t, argv...)
			if code != 0 || errOut != "" {
				t.Errorf("snapbuild %s: exit %d, stderr %q", strings.Join(argv, " "), code, errOut)
			}
			if first == "" {
				first = out
			} else if out != first {
				t.Errorf("snapbuild %s printed another help than snapbuild %s --help:\n%s", strings.Join(argv, " "), c.name, out)
			}
		}
		for _, s := range append([]string{"Usage:\n  snapbuild " + c.name, c.summary, "\nExamples:\n  snapbuild " + c.name}, want...) {
			if !strings.Contains(first, s) {
				t.Errorf("snapbuild %s --help lacks %q:\n%s", c.name, s, first)
			}
		}
		if len(want) > 0 && !strings.Contains(first, "\nFlags:\n") {
			t.Errorf("snapbuild %s --help has no Flags section:\n%s", c.name, first)
		}
		if strings.Contains(first, "`") {
			t.Errorf("snapbuild %s --help shows a backquote:\n%s", c.name, first)
		}
	}
	// Help comes before any other check of the arguments.
	if out, _, code := runCLI(t, "export", "onlyone", "--help"); code != 0 || !strings.Contains(out, "Usage:\n  snapbuild export") {
		t.Errorf("snapbuild export onlyone --help: exit %d\n%s", code, out)
	}
}

func TestTopLevelHelp(t *testing.T) {
	var first string
	for _, argv := range [][]string{nil, {"--help"}, {"-h"}, {"help"}, {"help", "--help"}, {"help", "-h"}, {"help", "help"}, {"--root", "x", "--help"}} {
		out, errOut, code := runCLI(t, argv...)
		if code != 0 || errOut != "" {
			t.Errorf("snapbuild %s: exit %d, stderr %q", strings.Join(argv, " "), code, errOut)
		}
		if first == "" {
			first = out
		} else if out != first {
			t.Errorf("snapbuild %s: another help:\n%s", strings.Join(argv, " "), out)
		}
	}
	for _, c := range commands {
		if !strings.Contains(first, "  "+c.name+" ") || !strings.Contains(first, c.summary) {
			t.Errorf("top-level help lacks %s: %s:\n%s", c.name, c.summary, first)
		}
	}
	for _, s := range []string{"Run 'snapbuild COMMAND --help'", "--version", "--root DIR"} {
		if !strings.Contains(first, s) {
			t.Errorf("top-level help lacks %q:\n%s", s, first)
		}
	}
}

func TestVersion(t *testing.T) {
	want, errOut, code := runCLI(t, "version")
	if code != 0 || errOut != "" || !strings.HasPrefix(want, "snapbuild ") || !strings.Contains(want, "Modal image builder") {
		t.Fatalf("snapbuild version: exit %d, %q, stderr %q", code, want, errOut)
	}
	for _, flag := range []string{"--version", "-v"} {
		if out, _, code := runCLI(t, flag); code != 0 || out != want {
			t.Errorf("snapbuild %s = %q, exit %d; want %q", flag, out, code, want)
		}
	}
	if _, errOut, code := runCLI(t, "version", "x"); code != exitUsage || !strings.Contains(errOut, `unexpected argument "x"`) {
		t.Errorf("snapbuild version x: exit %d, stderr %q", code, errOut)
	}
}

func TestUnknownCommand(t *testing.T) {
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"biuld"}, `snapbuild: unknown command "biuld"; did you mean "build"? (see 'snapbuild --help')` + "\n"},
		{[]string{"help", "biuld"}, `snapbuild: unknown command "biuld"; did you mean "build"? (see 'snapbuild --help')` + "\n"},
		{[]string{"--root", "x", "imgaes", "--json"}, `snapbuild: unknown command "imgaes"; did you mean "images"? (see 'snapbuild --help')` + "\n"},
		{[]string{"inspec", "hello"}, `snapbuild: unknown command "inspec"; did you mean "inspect"? (see 'snapbuild --help')` + "\n"},
		{[]string{"frobnicate"}, `snapbuild: unknown command "frobnicate" (see 'snapbuild --help')` + "\n"},
		{[]string{"--progress", "plain", "build"}, "snapbuild: unknown flag --progress before the command: only --root DIR, --help and --version go there (see 'snapbuild --help')\n"},
		{[]string{"build", "--progres", "plain", "x.yaml"}, "snapbuild: build: unknown flag --progres; did you mean --progress? (see 'snapbuild build --help')\n"},
		{[]string{"images", "--jsn"}, "snapbuild: images: unknown flag --jsn; did you mean --json? (see 'snapbuild images --help')\n"},
		{[]string{"build", "--no-cache", "."}, "snapbuild: build: unknown flag --no-cache: snapbuild's --force-build rebuilds every step (see 'snapbuild build --help')\n"},
		{[]string{"build", "-f", "Dockerfile", "a", "b"}, "snapbuild: build: a Dockerfile build takes one build context directory, not 2 arguments (a b): snapbuild build -f Dockerfile [CONTEXT] (see 'snapbuild build --help')\n"},
		{[]string{"build", "-m", "pkg.mod", "--target", "x"}, "snapbuild: build: -m pkg.mod builds a module's images; -f, --build-arg, --secret and --target are for a Dockerfile: give one or the other (see 'snapbuild build --help')\n"},
		{[]string{"build", "-f", "-", "."}, "snapbuild: build: -f -: reading the Dockerfile from standard input is not supported; write it to a file and give its path (see 'snapbuild build --help')\n"},
		{[]string{"build", "--build-arg", "=x", "."}, "snapbuild: build: --build-arg \"=x\": give NAME=VALUE, or NAME to take the value from the environment (see 'snapbuild build --help')\n"},
		{[]string{"build", "-t"}, "snapbuild: build: flag needs an argument: -t (see 'snapbuild build --help')\n"},
		{[]string{"inspect"}, "snapbuild: inspect: usage: snapbuild inspect NAME|ID (see 'snapbuild inspect --help')\n"},
		{[]string{"build"}, "snapbuild: build: give a recipe file, a Python file, a module or a Dockerfile: snapbuild build FILE [IMAGE...], snapbuild build app.py[::NAME], snapbuild build -m pkg.module[::NAME], snapbuild build -f Dockerfile [CONTEXT] (see 'snapbuild build --help')\n"},
	} {
		out, errOut, code := runCLI(t, c.argv...)
		if code != exitUsage || out != "" || errOut != c.want {
			t.Errorf("snapbuild %s: exit %d, stdout %q, stderr %q; want exit %d, stderr %q", strings.Join(c.argv, " "), code, out, errOut, exitUsage, c.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"build", "run", "images", "inspect", "rm", "export", "push", "pull", "save", "load", "version", "help"}
	for _, c := range []struct{ in, want string }{
		{"biuld", "build"},
		{"bulid", "build"},
		{"buidl", "build"},
		{"Build", "build"},
		{"imags", "images"},
		{"exprot", "export"},
		{"psh", "push"},
		{"verison", "version"},
		{"vers", "version"}, // a prefix
		{"x", ""},
		{"frobnicate", ""},
		{"delete", ""},
	} {
		if got := suggest(c.in, names); got != c.want {
			t.Errorf("suggest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestMissingStore: commands that only read or remove create no store where
// --root names none, and say so once.
func TestMissingStore(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "3")
	for _, c := range []struct {
		argv     []string
		code     int
		stdout   string
		stderrRe string // "" for none
	}{
		{[]string{"--root", root, "images"}, 0, "NAME  IMAGE ID  MANIFEST  LAYERS  SIZE\n", ""},
		{[]string{"images", "--root", root, "--json"}, 0, "[]\n", ""},
		{[]string{"--root", root, "inspect", "hello"}, 1, "", `no image "hello": store ` + root + ` does not exist`},
		{[]string{"inspect", "--root=" + root, "hello"}, 1, "", `no image "hello": store ` + root + ` does not exist`},
		{[]string{"--root", root, "rm", "a", "b"}, 1, "", `no images "a", "b": store ` + root + ` does not exist`},
		{[]string{"--root", root, "export", "hello", "oci:" + filepath.Join(tmp, "out") + ":latest"}, 1, "", `no image "hello": store ` + root + ` does not exist`},
		{[]string{"--root", root, "push", "hello", "localhost:1/hello:latest"}, 1, "", `no image "hello": store ` + root + ` does not exist`},
		{[]string{"--root", root, "save", filepath.Join(tmp, "saved"), "hello"}, 1, "", `no image "hello": store ` + root + ` does not exist`},
		// A build that fails before it builds anything makes no store either.
		{[]string{"--root", root, "build", filepath.Join(tmp, "missing.yaml")}, 1, "", "missing.yaml: no such file or directory"},
		// Nor does a load of a directory that holds no layout, or a pull
		// under a name that cannot be an image's.
		{[]string{"--root", root, "load", filepath.Join(tmp, "nolayout")}, 1, "", "is not an OCI layout"},
		{[]string{"--root", root, "pull", "oci:" + filepath.Join(tmp, "nolayout")}, 1, "", "no such file or directory"},
	} {
		out, errOut, code := runCLI(t, c.argv...)
		name := "snapbuild " + strings.Join(c.argv, " ")
		if code != c.code || out != c.stdout {
			t.Errorf("%s: exit %d, stdout %q; want exit %d, stdout %q (stderr %q)", name, code, out, c.code, c.stdout, errOut)
		}
		switch {
		case c.stderrRe == "" && errOut != "":
			t.Errorf("%s: stderr %q, want none", name, errOut)
		case c.stderrRe != "" && (strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "snapbuild: ") || !strings.Contains(errOut, c.stderrRe)):
			t.Errorf("%s: stderr %q, want one line with %q", name, errOut, c.stderrRe)
		}
		if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s made %s (%v)", name, root, err)
		}
		for _, d := range []string{"out", "saved"} {
			if _, err := os.Stat(filepath.Join(tmp, d)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s made %s", name, d)
			}
		}
	}
}

// TestInspectMissingImage: inspect of a name an existing store lacks prints
// one error line (it printed two: the metadata probe's and inspect's).
func TestInspectMissingImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("opening a store needs root or a user namespace (snapbuild.Init); TestMissingStore runs without")
	}
	root := t.TempDir()
	out, errOut, code := runCLI(t, "--root", root, "inspect", "nope")
	want := `snapbuild: no image "nope" in store ` + root + " (it has no named images): build it first, or pass --root\n"
	if code != 1 || out != "" || errOut != want {
		t.Errorf("snapbuild inspect nope: exit %d, stdout %q, stderr %q; want exit 1, stderr %q", code, out, errOut, want)
	}
	out, errOut, code = runCLI(t, "--root", root, "rm", "nope")
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, `"nope"`) {
		t.Errorf("snapbuild rm nope: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "--root", root, "images", "--json")
	if code != 0 || out != "[]\n" || errOut != "" {
		t.Errorf("snapbuild images --json of an empty store: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// A command cancelled by a signal exits as a shell reports a process the
// signal killed: 130 for SIGINT, 143 for SIGTERM.
func TestSignalExitStatus(t *testing.T) {
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: 130, syscall.SIGTERM: 143} {
		if got := report(signalled{sig}); got != want {
			t.Errorf("report(%v) = %d, want %d", sig, got, want)
		}
		// A step stopped by the signal reports it as canceled.
		if !errors.Is(signalled{sig}, context.Canceled) {
			t.Errorf("errors.Is(signalled{%v}, context.Canceled) = false, want true", sig)
		}
		// A build step stopped by the signal returns it wrapped.
		wrapped := fmt.Errorf("build app: step 2 (run_function) failed: %w", signalled{sig})
		if got := report(wrapped); got != want {
			t.Errorf("report(%v) = %d, want %d", wrapped, got, want)
		}
	}
}

// TestNetworkAndTimestampsFlags checks that a --network, --security or --timestamps
// value snapbuild does not know is a usage error (exit 125) naming the flag,
// given before anything is read or a store is made.
func TestNetworkAndTimestampsFlags(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"build", "--network", "bogus", "-f", "Dockerfile.missing"}, `snapbuild: build: --network bogus: use host`},
		{[]string{"build", "--timestamps=bogus", "-f", "Dockerfile.missing"}, `snapbuild: build: --timestamps: timestamps "bogus": use "clamp"`},
		{[]string{"run", "--network=bogus", "img"}, `snapbuild: run: --network bogus: use host (the host's network), none (loopback only) or private`},
		{[]string{"build", "--security", "privileged", "-f", "Dockerfile.missing"}, `snapbuild: build: --security privileged: use sandbox (the default`},
		{[]string{"run", "--security=bogus", "img"}, `snapbuild: run: --security bogus: use sandbox`},
	} {
		argv := append([]string{"--root", root}, c.argv...)
		_, errOut, code := runCLI(t, argv...)
		if code != exitUsage || !strings.HasPrefix(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("snapbuild %s: exit %d, stderr %q; want exit %d and %q", strings.Join(argv, " "), code, errOut, exitUsage, c.want)
		}
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused flag made the store %s (%v)", root, err)
	}
}

// TestDurationFlagError: a duration flag given a number without its unit
// is a usage error that says what a duration looks like (the flag package
// says only "parse error").
func TestDurationFlagError(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	argv := []string{"--root", root, "build", "--load-timeout", "5", "app.py"}
	_, errOut, code := runCLI(t, argv...)
	want := `snapbuild: build: invalid value "5" for flag --load-timeout: not a duration: give a number with a unit, such as 30s, 5m or 1h30m`
	if code != exitUsage || !strings.HasPrefix(errOut, want) {
		t.Errorf("snapbuild %s: exit %d, stderr %q; want exit %d and %q", strings.Join(argv, " "), code, errOut, exitUsage, want)
	}
}

// TestBuildJobs checks build's --jobs: a value below 1 or not a whole
// number is a usage error (exit 125) naming --jobs, given before anything
// is read or a store is made; a valid value is taken as given.
func TestBuildJobs(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	for _, v := range []string{"0", "-1", "two", "1.5", ""} {
		argv := []string{"--root", root, "build", "--jobs=" + v, "-f", "Dockerfile.missing"}
		_, errOut, code := runCLI(t, argv...)
		want := `snapbuild: build: invalid value "` + v + `" for flag --jobs: give a whole number of at least 1`
		if code != exitUsage || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("snapbuild %s: exit %d, stderr %q; want exit %d and %q", strings.Join(argv, " "), code, errOut, exitUsage, want)
		}
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused --jobs made the store %s (%v)", root, err)
	}
	for in, want := range map[string]jobsFlag{"1": 1, "2": 2, "64": 64} {
		var j jobsFlag
		if err := j.Set(in); err != nil || j != want {
			t.Errorf("--jobs %s = %d, %v; want %d", in, j, err, want)
		}
	}
}

// TestBuildQuiet checks that -q (--quiet) refuses the flags it contradicts,
// --print and --progress, with a usage error (exit 125) that names both,
// before anything is read or a store is made.
func TestBuildQuiet(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-q", "--print"}, "snapbuild: build: -q prints the ID of the image a build makes, and --print builds nothing: give one or the other"},
		{[]string{"--quiet", "--print=json"}, "snapbuild: build: -q prints the ID of the image a build makes, and --print builds nothing: give one or the other"},
		{[]string{"-q", "--progress", "plain"}, "snapbuild: build: -q shows no progress, and --progress plain chooses how to show it: give one or the other"},
		{[]string{"--progress=auto", "--quiet"}, "snapbuild: build: -q shows no progress, and --progress auto chooses how to show it: give one or the other"},
	} {
		argv := append([]string{"--root", root, "build"}, append(c.args, "-f", "Dockerfile.missing")...)
		out, errOut, code := runCLI(t, argv...)
		if code != exitUsage || !strings.HasPrefix(errOut, c.want) || strings.Count(errOut, "\n") != 1 || out != "" {
			t.Errorf("snapbuild %s: exit %d, stdout %q, stderr %q; want exit %d and %q", strings.Join(argv, " "), code, out, errOut, exitUsage, c.want)
		}
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused -q made the store %s (%v)", root, err)
	}
}

// TestBuildPlatform checks build's --platform: the host's platform, in any
// of its spellings, passes the check; another, a list, or a malformed one
// is a usage error (exit 125) that names the host's platform, given before
// anything is read or a store is made.
func TestBuildPlatform(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	host := snapbuild.HostPlatform()
	foreign := "linux/arm64"
	if runtime.GOARCH == "arm64" {
		foreign = "linux/amd64"
	}
	for _, c := range []struct {
		platform string
		want     string
	}{
		{foreign, "snapbuild: build: --platform " + foreign + ": snapbuild builds for the host platform only, " + host + ": it runs every step natively, without emulation; leave the platform out, or give " + host},
		{host + "," + foreign, "snapbuild: build: --platform " + host + "," + foreign + ": snapbuild builds for one platform, the host's (" + host + ")"},
		{"linux/amd64/v1/x", `snapbuild: build: --platform "linux/amd64/v1/x": `},
	} {
		argv := []string{"--root", root, "build", "--platform", c.platform, "-f", "Dockerfile.missing"}
		_, errOut, code := runCLI(t, argv...)
		if code != exitUsage || !strings.HasPrefix(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("snapbuild %s: exit %d, stderr %q; want exit %d and %q", strings.Join(argv, " "), code, errOut, exitUsage, c.want)
		}
	}
	// The host's platform passes: the build goes on to read the Dockerfile.
	for _, p := range []string{host, runtime.GOARCH} {
		argv := []string{"--root", root, "build", "--platform", p, "-f", "Dockerfile.missing"}
		_, errOut, code := runCLI(t, argv...)
		if code == 0 || strings.Contains(errOut, "platform") || !strings.Contains(errOut, "Dockerfile.missing") {
			t.Errorf("snapbuild %s: exit %d, stderr %q; want the missing Dockerfile's error", strings.Join(argv, " "), code, errOut)
		}
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a build with --platform made the store %s (%v)", root, err)
	}
}

// TestBuildCacheFlags checks build's cache flags: a reference with a digest
// is a usage error before anything is read or a store is made; a build
// that fails writes no cache and says so (stderr, or a "cache" object with
// an error in JSON); --print says once that it does not consult
// --cache-from.
func TestBuildCacheFlags(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "store")
	digestRef := "localhost:5000/c/app@sha256:" + strings.Repeat("a", 64)
	for _, flag := range []string{"--cache-to", "--cache-from"} {
		argv := []string{"--root", root, "build", flag, digestRef, "-f", "Dockerfile.missing"}
		_, errOut, code := runCLI(t, argv...)
		if code != exitUsage || !strings.Contains(errOut, "not by digest") {
			t.Errorf("snapbuild %s: exit %d, stderr %q; want exit %d and an error saying a cache is written by tag", strings.Join(argv, " "), code, errOut, exitUsage)
		}
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused cache reference made the store %s (%v)", root, err)
	}

	recipe := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(recipe, []byte("- from_id: \"no-such-image\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	_, errOut, code := runCLI(t, "--root", root, "build", recipe, "--cache-to", "oci:"+cache)
	if code == 0 || strings.Count(errOut, "cache: not written: the build failed\n") != 1 {
		t.Errorf("failed build with --cache-to: exit %d, stderr %q; want a failure and one line saying no cache was written", code, errOut)
	}
	out, _, code := runCLI(t, "--root", root, "build", recipe, "--progress", "json", "--cache-to", "oci:"+cache)
	if code == 0 || !strings.Contains(out, `"error":"not written: the build failed","kind":"cache"`) {
		t.Errorf("failed build with --cache-to, JSON: exit %d, stdout %q; want a cache object with an error", code, out)
	}
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed build wrote the cache %s (%v)", cache, err)
	}

	_, errOut, _ = runCLI(t, "--root", root, "build", recipe, "--print", "--cache-from", "oci:"+cache)
	if strings.Count(errOut, "--print does not consult the --cache-from caches") != 1 {
		t.Errorf("--print with --cache-from: stderr %q; want one note that the plan does not consult the caches", errOut)
	}
}
