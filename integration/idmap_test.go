package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChownOutsideRangeRootless: rootless, snapbuild's user namespace maps
// 0 and the test user's 65536 subordinate IDs (0-65536 inside). A COPY
// --chown to an ID in that range is written with it; one outside fails
// naming the ID and the range, not with a bare "invalid argument".
func TestChownOutsideRangeRootless(t *testing.T) {
	u := ensureTestUser(t)
	home := userDir(t, u)
	if err := os.WriteFile(filepath.Join(home, "f.txt"), []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runner{t: t, user: u.Username, root: filepath.Join(home, "store")}
	recipe := func(name, chown string) string {
		return writeRecipe(t, home, name+".yaml", name+`:
  - from_scratch: {}
  - dockerfile_commands: {commands: ["COPY --chown=`+chown+` f.txt /f.txt"], context_dir: `+home+`}
`)
	}

	r.ok("build", recipe("inrange", "65536:1000"))
	layout := filepath.Join(home, "layout")
	r.ok("export", "inrange", "oci:"+layout+":inrange")
	_, entries := layerEntries(t, layout)
	var found bool
	for _, h := range entries[len(entries)-1] {
		if h.Name == "f.txt" {
			found = true
			if h.Uid != 65536 || h.Gid != 1000 {
				t.Errorf("f.txt is owned by %d:%d, want 65536:1000", h.Uid, h.Gid)
			}
		}
	}
	if !found {
		t.Errorf("no f.txt in the last layer")
	}

	for _, c := range []struct{ chown, want string }{
		{"70000:1000", "uid 70000 is outside the user namespace's mapped uids (0-65536)"},
		{"1000:65537", "gid 65537 is outside the user namespace's mapped gids (0-65536)"},
	} {
		res := r.run("", "build", recipe("outside", c.chown))
		if res.code == 0 {
			t.Errorf("COPY --chown=%s outside the mapped range was built", c.chown)
			continue
		}
		if !strings.Contains(res.stderr, c.want) || !strings.Contains(res.stderr, "invalid argument") {
			t.Errorf("COPY --chown=%s: stderr does not say %q:\n%s", c.chown, c.want, tail(res.stderr, 8))
		}
	}
}
