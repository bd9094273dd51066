package integration

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// TestCachedBuildOneProcess: a fully cached build (a recipe on from_id, a
// Dockerfile FROM a stored image) runs as one process, with no namespace,
// mount or container: strace counts a single execve (snapbuild's own), and
// in a network namespace with no network it prints the same image ID
// without a single AF_INET or AF_INET6 connect. A build with a step to run
// re-executes snapbuild exactly once, into the user namespace (rootless) or
// a private mount namespace (root), and shows its progress and build log
// once; so does one of two images, one of them cached; a Python file is
// evaluated once either way. As root and as the rootless test user.
func TestCachedBuildOneProcess(t *testing.T) {
	requireRoot(t)
	requireTools(t, "strace", "unshare", "ldd")
	t.Run("root", func(t *testing.T) {
		dir := t.TempDir()
		oneProcess(t, runner{t: t, root: filepath.Join(dir, "store")}, dir)
	})
	t.Run("rootless", func(t *testing.T) {
		u := ensureTestUser(t)
		dir := userDir(t, u)
		oneProcess(t, runner{t: t, user: u.Username, root: filepath.Join(dir, "store")}, dir)
	})
}

func oneProcess(t *testing.T, r runner, dir string) {
	layout := filepath.Join(dir, "base")
	must(t, testimage.WriteLayout(layout, testimage.Spec{
		Tag:   "oneproc-base",
		Tools: []string{"sh", "echo"},
		Dirs:  []string{"/etc", "/tmp"},
		Files: map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"},
	}))
	if out, err := exec.Command("chmod", "-R", "a+rX", dir).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v\n%s", err, out)
	}
	r.ok("load", layout)

	recipe := writeRecipe(t, dir, "oneproc.yaml", `- from_id: oneproc-base
- run_commands: ["echo one > /one"]
- run_commands: ["echo two > /two"]
- env: {GREETING: hi}
`)
	app := filepath.Join(dir, "oneproc_app.py")
	must(t, os.WriteFile(app, []byte("import modal\n\nimage = modal.Image.from_id(\"oneproc-base\").run_commands(\"echo py > /py\")\n"), 0o644))
	ctx := filepath.Join(dir, "ctx")
	must(t, os.MkdirAll(ctx, 0o755))
	must(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM oneproc-base\nRUN echo df > /df\nCMD [\"sh\"]\n"), 0o644))
	if out, err := exec.Command("chmod", "-R", "a+rX", dir).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v\n%s", err, out)
	}

	for _, c := range []struct {
		name string
		args []string
		py   bool // a Python file: evaluated once per command, by python3
	}{
		{"recipe", []string{"build", recipe, "-t", "oneproc", "--progress", "plain"}, false},
		{"dockerfile", []string{"build", "-t", "oneproc-df", "--progress", "plain", ctx}, false},
		{"python", []string{"build", app, "-t", "oneproc-py", "--progress", "plain"}, true},
	} {
		// The first build runs its steps: one re-execution, into the
		// namespace, and everything it shows shown once.
		first, execs := traced(t, r, dir, false, c.args...)
		if n := snapbuildExecs(execs); n != 2 {
			t.Errorf("%s: an uncached build executed snapbuild %d times, want 2 (itself and once in the namespace):\n%s", c.name, n, strings.Join(execs, "\n"))
		}
		if n := strings.Count(first.stderr, "build log: "); n != 1 {
			t.Errorf("%s: an uncached build printed %d build log lines, want 1:\n%s", c.name, n, first.stderr)
		}
		if lines := stepHeaders.FindAllString(first.stderr, -1); len(lines) == 0 || len(uniq(lines)) != len(lines) {
			t.Errorf("%s: an uncached build shows its steps' headers %q, each should be there once:\n%s", c.name, lines, first.stderr)
		}
		if n := frontendRuns(execs); c.py && n != 1 {
			t.Errorf("%s: an uncached build evaluated the Python file %d times, want 1 (handed to the namespace):\n%s", c.name, n, strings.Join(execs, "\n"))
		}
		id := imageID(t, first.stdout)

		// The same build again: cached, one process, no network asked.
		again, execs := traced(t, r, dir, true, c.args...)
		if got := imageID(t, again.stdout); got != id {
			t.Errorf("%s: the cached build in a network namespace made %s, the first build %s", c.name, got, id)
		}
		if c.py {
			// snapbuild once, and python3 (through whatever wrappers
			// PATH gives) to read the file.
			if snapbuildExecs(execs) != 1 || frontendRuns(execs) != 1 {
				t.Errorf("%s: a cached build executed snapbuild %d times and evaluated the file %d times, want 1 and 1:\n%s", c.name, snapbuildExecs(execs), frontendRuns(execs), strings.Join(execs, "\n"))
			}
		} else if len(execs) != 1 || snapbuildExecs(execs) != 1 {
			t.Errorf("%s: a cached build executed %d programs, want 1 (snapbuild):\n%s", c.name, len(execs), strings.Join(execs, "\n"))
		}
		if !strings.Contains(again.stdout, " cached, 0 containers)") {
			t.Errorf("%s: the second build was not fully cached: %q", c.name, again.stdout)
		}
		if n := strings.Count(again.stderr, "build log: "); n != 1 {
			t.Errorf("%s: a cached build printed %d build log lines, want 1:\n%s", c.name, n, again.stderr)
		}
		if !strings.Contains(again.stderr, "CACHED") {
			t.Errorf("%s: a cached build shows no progress:\n%s", c.name, again.stderr)
		}
	}

	// Two images of one recipe, one cached and one not: one
	// re-execution for both, each named and printed once.
	multi := writeRecipe(t, dir, "multi.yaml", `oneproc-a:
- from_id: oneproc-base
- run_commands: ["echo one > /one"]
oneproc-b:
- from_id: oneproc-base
- run_commands: ["echo multi > /multi"]
`)
	res, execs := traced(t, r, dir, false, "build", multi, "--progress", "plain")
	if n := snapbuildExecs(execs); n != 2 {
		t.Errorf("a two-image build executed snapbuild %d times, want 2:\n%s", n, strings.Join(execs, "\n"))
	}
	for _, name := range []string{"oneproc-a ", "oneproc-b "} {
		if n := strings.Count(res.stdout, name); n != 1 {
			t.Errorf("a two-image build printed %q %d times, want once:\n%s", name, n, res.stdout)
		}
	}

	// Commands that only read the store run as one process too. The
	// first inspect of an image probes it (python -VV, pip list) in a
	// container: once in the namespace; the second reads what it stored.
	_, execs = traced(t, r, dir, true, "inspect", "oneproc")
	if n := snapbuildExecs(execs); n != 2 {
		t.Errorf("the first inspect executed snapbuild %d times, want 2 (its probe runs in the namespace):\n%s", n, strings.Join(execs, "\n"))
	}
	for _, args := range [][]string{{"images"}, {"inspect", "oneproc"}} {
		res, execs := traced(t, r, dir, true, args...)
		if len(execs) != 1 {
			t.Errorf("snapbuild %v executed %d programs, want 1:\n%s", args, len(execs), strings.Join(execs, "\n"))
		}
		if args[0] == "images" && !strings.Contains(res.stdout, "oneproc-df") {
			t.Errorf("snapbuild images lists no oneproc-df:\n%s", res.stdout)
		}
	}
}

// execveLine is a successful execve in strace's output: the program's
// path, argv[0] and argv[1].
var execveLine = regexp.MustCompile(`execve\("([^"]*)", \[("[^"]*")(?:, "([^"]*)")?[^\n]*\) = 0`)

// stepHeaders are the lines plain progress starts each step with:
// "#2 [2/4] run_commands([...])".
var stepHeaders = regexp.MustCompile(`(?m)^#\d+ \[\d+/\d+\] .*$`)

// wrappers are the programs the tests run snapbuild with.
var wrappers = map[string]bool{"runuser": true, "env": true, "strace": true, "unshare": true}

func uniq(s []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

// traced runs snapbuild as r runs it under strace -ff, in a new network
// namespace with no network when offline, and returns its result and the
// programs executed in the process tree below the test's own wrappers
// (runuser, env), as "PATH ARGV..." lines. It fails the test when snapbuild
// fails, or when any of them tried an AF_INET or AF_INET6 connect or
// sendto.
func traced(t *testing.T, r runner, dir string, offline bool, args ...string) (result, []string) {
	t.Helper()
	logs := filepath.Join(dir, "strace")
	os.RemoveAll(logs)
	must(t, os.Mkdir(logs, 0o700))
	cmd := r.cmd(t.Context(), args...)
	// -ff: a file per process, so that no call is split across lines.
	argv := append([]string{"strace", "-ff", "-qq", "-s", "256", "-e", "trace=execve,connect,sendto,sendmsg", "-o", filepath.Join(logs, "trace")}, cmd.Args...)
	if offline {
		argv = append([]string{"unshare", "-n", "--"}, argv...)
	}
	full := exec.CommandContext(t.Context(), argv[0], argv[1:]...)
	full.Env, full.Dir = cmd.Env, cmd.Dir
	var out, errb strings.Builder
	full.Stdout, full.Stderr = &out, &errb
	err := full.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		t.Fatalf("snapbuild %v under strace (offline %v): %v\nstdout:\n%s\nstderr:\n%s", args, offline, err, res.stdout, tail(res.stderr, 40))
	}
	files, err := filepath.Glob(filepath.Join(logs, "trace.*"))
	must(t, err)
	var all []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		must(t, err)
		all = append(all, strings.Split(string(data), "\n")...)
	}
	var execs []string
	for _, l := range all {
		if strings.Contains(l, "AF_INET") && !strings.Contains(l, "AF_UNIX") {
			t.Errorf("snapbuild %v made a network connection attempt: %s", args, l)
		}
		m := execveLine.FindStringSubmatch(l)
		if m == nil || wrappers[filepath.Base(m[1])] {
			continue
		}
		execs = append(execs, m[1]+" "+m[2]+" "+m[3])
	}
	return res, execs
}

// snapbuildExecs counts the executions of the snapbuild under test as a
// command (not as libcontainer's container init, whose argv[1] is "init"):
// by its path, or by /proc/self/exe, which the user namespace re-execution
// runs.
func snapbuildExecs(execs []string) int {
	n := 0
	for _, e := range execs {
		if strings.HasSuffix(e, " init") {
			continue
		}
		if strings.HasPrefix(e, bin+" ") || strings.HasPrefix(e, "/proc/self/exe ") {
			n++
		}
	}
	return n
}

// frontendRuns counts the evaluations of Python files among execs: the
// front end's loader directories (snapbuild-frontend-PID-N) their
// arguments name.
func frontendRuns(execs []string) int {
	dirs := map[string]bool{}
	for _, e := range execs {
		for _, d := range frontendDir.FindAllString(e, -1) {
			dirs[d] = true
		}
	}
	return len(dirs)
}

var frontendDir = regexp.MustCompile(`snapbuild-frontend-\d+-\d+`)

// imageID is the image ID on the summary line of a build's plain output
// ("NAME ID MANIFEST (...)").
func imageID(t *testing.T, stdout string) string {
	t.Helper()
	for _, l := range strings.Split(stdout, "\n") {
		if f := strings.Fields(l); len(f) > 2 && strings.HasPrefix(f[1], "im-") {
			return f[1]
		}
	}
	t.Fatalf("no image summary in:\n%s", stdout)
	return ""
}

// TestRootlessWithoutSubIDs: a user with no subordinate ID range can use
// what needs no user namespace (images, a build whose steps change only
// the config); with SNAPBUILD_USERNS=subids the "cannot run rootless"
// error, with what to do, comes only when a step must run; by default the
// step runs in single-ID mode, with a warning.
func TestRootlessWithoutSubIDs(t *testing.T) {
	requireRoot(t)
	requireTools(t, "useradd", "runuser")
	const name = "snapbuild-it-nosub"
	if _, err := user.Lookup(name); err != nil {
		// A system user: useradd gives it no subordinate IDs.
		if out, err := exec.Command("useradd", "-r", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v\n%s", err, out)
		}
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, _ := os.ReadFile(f)
		if strings.Contains("\n"+string(b), "\n"+name+":") {
			t.Fatalf("%s gives %s subordinate IDs; the test needs a user without", f, name)
		}
	}
	u, err := user.Lookup(name)
	must(t, err)
	dir := userDir(t, u)
	r := runner{t: t, user: name, root: filepath.Join(dir, "store")}

	r.ok("images")
	res := r.ok("build", writeRecipe(t, dir, "config.yaml", "- from_scratch: {}\n- env: {GREETING: hi}\n"), "-t", "nosub-config")
	if !strings.Contains(res.stdout, "nosub-config im-") {
		t.Errorf("a config-only build printed %q", res.stdout)
	}
	runRecipe := writeRecipe(t, dir, "run.yaml", "- from_scratch: {}\n- run_commands: [\"true\"]\n")
	subids := r
	subids.env = []string{"SNAPBUILD_USERNS=subids"}
	fail := subids.run("", "build", runRecipe, "-t", "nosub-run")
	if fail.code != 125 || !strings.Contains(fail.stderr, "cannot run rootless") || !strings.Contains(fail.stderr, "usermod --add-subuids") || strings.Contains(fail.stderr, "UserNSSingle") {
		t.Errorf("a build with a step to run, without subordinate IDs, SNAPBUILD_USERNS=subids: exit %d, stderr:\n%s\nwant 125 and the rootless error saying what to do", fail.code, fail.stderr)
	}
	if strings.Contains(fail.stderr, "[1/") {
		t.Errorf("the stopped build showed its progress:\n%s", fail.stderr)
	}
	// By default (auto) the step runs in single-ID mode, with a warning
	// that says why; from_scratch has no shell to run "true" with.
	auto := r.run("", "build", runRecipe, "-t", "nosub-run", "--progress", "plain")
	for _, want := range []string{
		"snapbuild: warning: single-ID mode",
		"subordinate IDs unusable: /etc/subuid gives user " + name + " 0 subordinate IDs",
		`command not found: /bin/sh`,
	} {
		if !strings.Contains(auto.stderr, want) {
			t.Errorf("a build with a step to run, without subordinate IDs: stderr lacks %q:\n%s", want, auto.stderr)
		}
	}
}
