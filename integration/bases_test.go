package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDebianBasePinned checks that a store pins its Debian base: a cached
// debian_slim build with the mirror unreachable makes no network
// connection, prints the same image ID and no word of the mirror; --pull
// with the archive unchanged rebuilds nothing; with the pin's archive
// state edited (an archive that moved) a build without --pull still
// rebuilds nothing, and --pull bootstraps the base again, runs every step
// after it and says what changed. Two bootstraps in all, in a store of the
// test's own (it edits the pin).
func TestDebianBasePinned(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "strace")
	requireMirror(t)
	dir := t.TempDir()
	r := runner{t: t, root: filepath.Join(dir, "store")}
	recipe := writeRecipe(t, dir, "pinned.yaml", "- debian_slim: {python_version: \"3.11\"}\n- run_commands: [\"echo one > /one\", \"echo two > /two\"]\n")
	first := r.build(recipe)

	// A mirror that refuses every connection: a closed loopback port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/debian"
	ln.Close()

	offline := func(what string) {
		t.Helper()
		s, stdout, stderr, inet, execs := tracedBuild(t, r, recipe, "--mirror", closed)
		if s.ID != first.ID || s.Stats.ContainersStarted != 0 || strings.Contains(stdout+stderr, "debian: updating package lists") {
			t.Errorf("%s: cached build = %s, %d containers started, %d of %d steps cached; want %s, nothing run", what, s.ID, s.Stats.ContainersStarted, s.Stats.Cached, s.Stats.Steps, first.ID)
		}
		if len(inet) > 0 {
			t.Errorf("%s: a cached build made network connections:\n%s", what, strings.Join(inet, "\n"))
		}
		if len(execs) != 1 {
			t.Errorf("%s: a cached build executed %d programs, want 1 (snapbuild itself, no re-exec):\n%s", what, len(execs), strings.Join(execs, "\n"))
		}
		if out := stdout + stderr; strings.Contains(strings.ToLower(out), "mirror") {
			t.Errorf("%s: a cached build speaks of the mirror:\n%s", what, tail(out, 20))
		}
	}
	offline("pinned base")

	// --pull, archive unchanged: the pin stays, nothing runs.
	res := r.ok("build", recipe, "--progress", "json", "--pull")
	if s := lastSummary(t, res.stdout); s.ID != first.ID || s.Stats.ContainersStarted != 0 {
		t.Errorf("--pull with the archive unchanged: %s, %d containers started; want %s, nothing run", s.ID, s.Stats.ContainersStarted, first.ID)
	}
	out := res.stdout + res.stderr
	if !strings.Contains(out, "debian: the pinned bookworm base is current: Debian 12.") {
		t.Errorf("--pull with the archive unchanged does not say the base is current:\n%s", tail(out, 30))
	}
	if strings.Contains(out, "debian: updating package lists") {
		t.Errorf("--pull with the archive unchanged bootstrapped the base:\n%s", tail(out, 30))
	}
	up := r.ok("base", "update", "bookworm", "--progress", "plain")
	if !regexp.MustCompile(`(?m)^bookworm \([0-9a-f]{12}\): current: Debian 12\.\d+ of \d{4}-\d\d-\d\d$`).MatchString(up.stdout) {
		t.Errorf("base update with the archive unchanged:\n%s%s", up.stdout, tail(up.stderr, 10))
	}

	// The archive moves: the pin's recorded state is not the mirror's.
	pinFile := debianPin(t, r.root)
	var pin map[string]any
	readJSON(t, pinFile, &pin)
	arch, _ := pin["archive"].(map[string]any)
	if arch == nil || len(arch["inRelease"].(string)) != 64 {
		t.Fatalf("pin %s records no archive state: %v", pinFile, pin)
	}
	arch["inRelease"] = strings.Repeat("0", 64)
	arch["release"] = "Debian 12.0"
	data, _ := json.Marshal(pin)
	if err := os.WriteFile(pinFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	offline("moved archive, no --pull")

	res = r.ok("build", recipe, "--progress", "json", "--pull")
	s := lastSummary(t, res.stdout)
	if s.Stats.Cached != 0 || s.Stats.ContainersStarted < 2 {
		t.Errorf("--pull after the archive moved: %d of %d steps cached, %d containers; want none cached, both RUN steps run",
			s.Stats.Cached, s.Stats.Steps, s.Stats.ContainersStarted)
	}
	out = res.stdout + res.stderr
	for _, want := range []string{"debian: the archive moved: Debian 12.0 of ", "bootstrapping bookworm again", "debian: release Debian 12.0 → Debian 12.",
		"no package changed", "debian: unpacking the essential packages"} {
		if !strings.Contains(out, want) {
			t.Errorf("--pull after the archive moved does not say %q:\n%s", want, tail(out, 40))
		}
	}
	readJSON(t, pinFile, &pin)
	if arch := pin["archive"].(map[string]any); arch["inRelease"] == strings.Repeat("0", 64) {
		t.Errorf("--pull left the pin on the old archive state: %v", arch)
	}
	// The new pin serves offline builds.
	first = s
	offline("re-pinned base")

	var bases []struct {
		Suite, Release, Python string
		Images                 []string
		Present                bool
		Size                   int64
	}
	if err := json.Unmarshal([]byte(r.ok("base", "ls", "--json").stdout), &bases); err != nil {
		t.Fatal(err)
	}
	if len(bases) != 1 || bases[0].Suite != "bookworm" || !strings.HasPrefix(bases[0].Release, "Debian 12.") || !strings.HasPrefix(bases[0].Python, "3.11.") ||
		!bases[0].Present || bases[0].Size < 10<<20 || strings.Join(bases[0].Images, ",") != "pinned" {
		t.Errorf("base ls --json = %+v, want one bookworm base of Debian 12.x, Python 3.11, over 10 MiB, image pinned", bases)
	}
	if ls := r.ok("base", "ls").stdout; !strings.Contains(ls, "SUITE") || !strings.Contains(ls, "bookworm") || !strings.Contains(ls, "pinned") {
		t.Errorf("base ls:\n%s", ls)
	}
}

// tracedBuild builds recipe with JSON progress under strace and returns the
// summary, the output, the connect(2) calls to IPv4 or IPv6 addresses that
// the build's processes made, and their execve(2) calls.
func tracedBuild(t *testing.T, r runner, recipe string, extra ...string) (buildSummary, string, string, []string, []string) {
	t.Helper()
	trace := filepath.Join(t.TempDir(), "connect.trace")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := append([]string{"-f", "-qq", "-e", "trace=connect,execve", "-o", trace, bin, "build", recipe, "--progress", "json", "--root", r.root}, extra...)
	cmd := exec.CommandContext(ctx, "strace", args...)
	cmd.Env = append(os.Environ(), r.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("strace snapbuild build: %v\n%s", err, tail(stderr.String(), 30))
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var inet, execs []string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(line, "AF_INET"):
			inet = append(inet, line)
		case strings.Contains(line, "execve("):
			execs = append(execs, line)
		}
	}
	return lastSummary(t, stdout.String()), stdout.String(), stderr.String(), inet, execs
}

// debianPin is the path of the store's one Debian base pin.
func debianPin(t *testing.T, root string) string {
	t.Helper()
	var pins []string
	ents, _ := os.ReadDir(filepath.Join(root, "bases"))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), "registry-") {
			pins = append(pins, filepath.Join(root, "bases", e.Name()))
		}
	}
	if len(pins) != 1 {
		t.Fatalf("the store has %d Debian base pins, want 1: %v", len(pins), pins)
	}
	return pins[0]
}
