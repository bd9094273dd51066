package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// securityProbe is a shell script that prints what a step may do, one
// "name=value" line each: its seccomp mode and no_new_privs flag, and
// whether it can open a packet socket (python3), join a new session
// keyring (keyctl, from keyutils) and make a user namespace (unshare -U).
const securityProbe = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d ' \\t' | tr : =; " +
	`try() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "$name=ok"; else echo "$name=fail"; fi; }; ` +
	"try packet python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)'; " +
	"try keyctl keyctl new_session; " +
	"try unshare unshare -U true"

// checkProbe fails the test unless out, the probe's output, has every
// "name=value" line of want.
func checkProbe(t *testing.T, what, out string, want ...string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for _, w := range want {
		if !contains(lines, w) {
			t.Errorf("%s: no %q in the probe's output:\n%s", what, w, out)
		}
	}
}

// testSecurity builds an image whose steps install keyutils with apt-get
// (the Debian mirror, over the host network) and a wheel with pip from a
// package index on the host's 127.0.0.1, then probe the sandbox: by
// default a step has a seccomp filter and no_new_privs, and can open no
// packet socket, use no keyring and make no user namespace; so can a
// `snapbuild run` of the image. With --security insecure the probe step is
// run again (the mode is in its key) without the filter, and a sandboxed
// build after it is taken from the cache.
func testSecurity(t *testing.T, r runner, dir string, rootless bool) {
	t.Helper()
	whl := t.TempDir()
	dep := wheel(t, whl, "snapdep", "1.0", "dep-ok")
	index := packageIndex(t, map[string][]string{"snapdep": {filepath.Join(whl, dep)}})
	recipe := writeRecipe(t, dir, "secure.yaml", fmt.Sprintf(`
- debian_slim: {}
- apt_install: [keyutils]
- pip_install: {packages: [snapdep], index_url: %q}
- run_commands: [%q]
`, index, "("+securityProbe+") > /probe.txt"))
	sandboxed := []string{"Seccomp=2", "NoNewPrivs=1", "packet=fail", "keyctl=fail", "unshare=fail"}

	first := r.build(recipe)
	checkProbe(t, "sandboxed step", r.ok("run", "secure", "cat", "/probe.txt").stdout, sandboxed...)
	if out := r.ok("run", "secure", "python3", "-c", "import snapdep; print(snapdep.VALUE)").stdout; out != "dep-ok\n" {
		t.Errorf("snapdep from the loopback index: %q, want dep-ok", out)
	}
	checkProbe(t, "snapbuild run", r.ok("run", "secure", "sh", "-c", securityProbe).stdout, sandboxed...)

	insecure := r.build(recipe, "--security", "insecure")
	if insecure.Stats.ContainersStarted < 3 || insecure.ID == first.ID {
		t.Errorf("--security insecure reused sandboxed steps: %d containers started, image %s (sandboxed: %s)", insecure.Stats.ContainersStarted, insecure.ID, first.ID)
	}
	unconfined := []string{"Seccomp=0", "NoNewPrivs=0", "keyctl=ok"}
	if !rootless {
		// As real root with every capability, on the host's network.
		unconfined = append(unconfined, "packet=ok")
	}
	checkProbe(t, "insecure step", r.ok("run", "secure", "cat", "/probe.txt").stdout, unconfined...)
	checkProbe(t, "snapbuild run --security insecure", r.ok("run", "--security", "insecure", "secure", "sh", "-c", securityProbe).stdout, unconfined...)

	again := r.build(recipe)
	if again.Stats.ContainersStarted != 0 || again.ID != first.ID {
		t.Errorf("sandboxed rebuild: %d containers started, image %s; want 0 and %s", again.Stats.ContainersStarted, again.ID, first.ID)
	}
}

func TestSecurityRoot(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	testSecurity(t, runner{t: t, root: rootDir}, t.TempDir(), false)
}

func TestSecurityRootless(t *testing.T) {
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	u := ensureTestUser(t)
	home := userDir(t, u)
	testSecurity(t, runner{t: t, user: u.Username, root: filepath.Join(home, "store")}, home, true)
}
