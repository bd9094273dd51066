package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFreeSubIDs: the range the rootless error suggests overlaps none that
// /etc/subuid or /etc/subgid give, and starts where useradd starts.
func TestFreeSubIDs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := write("empty", "")
	uid := write("subuid", "snapbuild-it:100000:65536\nother:165536:65536\n# comment\n")
	gid := write("subgid", "snapbuild-it:100000:65536\nthird:300000:1000\n")
	for _, c := range []struct {
		files []string
		want  int
	}{
		{[]string{empty}, 100000},
		{[]string{filepath.Join(dir, "missing")}, 100000},
		{[]string{uid}, 231072},
		{[]string{uid, gid}, 362144},
	} {
		if got := freeSubIDs(c.files...); got != c.want {
			t.Errorf("freeSubIDs(%v) = %d, want %d", c.files, got, c.want)
		}
	}
}
