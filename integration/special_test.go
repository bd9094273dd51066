package integration

import (
	"archive/tar"
	"path/filepath"
	"strings"
	"testing"
)

// specialCases covers what the matrix cannot: a file an OCI layer cannot
// express (a user file named .wh.*), which must fail the build with a clear
// error and leave the store usable, and device nodes, which are written as
// root and fail cleanly rootless (no mknod in a user namespace).
func specialCases(t *testing.T, r runner, work string, rootless bool) {
	wh := writeRecipe(t, work, "wh.yaml", `
- debian_slim: {}
- run_commands: ["mkdir -p /t && touch /t/.wh.something"]
`)
	res := r.run("", "build", wh)
	if res.code == 0 {
		t.Errorf("a .wh. file was accepted")
	}
	if !strings.Contains(res.stderr, "t/.wh.something: name starts with \".wh.\": cannot be represented in an OCI layer") {
		t.Errorf(".wh. file: stderr:\n%s", tail(res.stderr, 8))
	}
	if l := leftovers(t, r.root); len(l) > 0 {
		t.Errorf("temporary files left after the refused layer: %v", l)
	}

	dev := writeRecipe(t, work, "dev.yaml", `
- debian_slim: {}
- run_commands: ["mkdir -p /t && mknod /t/null c 1 3 && mknod /t/blk b 7 200"]
`)
	res = r.run("", "build", dev)
	if rootless {
		if res.code == 0 {
			t.Fatalf("mknod succeeded rootless")
		}
		if !strings.Contains(res.stderr, "exit code 1") || !strings.Contains(res.stderr, "Operation not permitted") {
			t.Errorf("rootless mknod: stderr:\n%s", tail(res.stderr, 8))
		}
	} else {
		if res.code != 0 {
			t.Fatalf("mknod as root: exit %d\n%s", res.code, tail(res.stderr, 8))
		}
		layout := filepath.Join(work, "dev-layout")
		r.ok("export", "dev", "oci:"+layout+":dev")
		_, entries := layerEntries(t, layout)
		last := map[string]*tar.Header{}
		for _, h := range entries[len(entries)-1] {
			last[h.Name] = h
		}
		if h := last["t/null"]; h == nil || h.Typeflag != tar.TypeChar || h.Devmajor != 1 || h.Devminor != 3 {
			t.Errorf("t/null = %+v, want char device 1,3", h)
		}
		if h := last["t/blk"]; h == nil || h.Typeflag != tar.TypeBlock || h.Devmajor != 7 || h.Devminor != 200 {
			t.Errorf("t/blk = %+v, want block device 7,200", h)
		}
	}
	// The store still builds.
	ok := writeRecipe(t, work, "after-special.yaml", "- debian_slim: {}\n- run_commands: [\"echo ok > /ok\"]\n")
	r.build(ok)
	if out := r.ok("run", "after-special", "cat", "/ok"); out.stdout != "ok\n" {
		t.Errorf("run after the refused builds: %q", out.stdout)
	}
}

func TestDifferSpecialRoot(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	specialCases(t, runner{t: t, root: rootDir}, t.TempDir(), false)
}

func TestDifferSpecialRootless(t *testing.T) {
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	u := ensureTestUser(t)
	home := userDir(t, u)
	specialCases(t, runner{t: t, user: u.Username, root: filepath.Join(home, "store")}, home, true)
}
