package overlay

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDiffRenamedDirectories renames lower directories through a real
// overlay mount with mv, which falls back to copy and delete because the
// mount keeps redirect_dir off, so a directory that comes back is an opaque
// copy of the one that left. Diff must write the minimal change: nothing
// for a directory renamed away and back (directly or through a chain of
// names), only what changed for one edited after coming back, and the
// directory with its opaque marker where a new directory took the old
// name. The layer, applied over the lower and mounted, must show what the
// step's mount showed.
func TestDiffRenamedDirectories(t *testing.T) {
	needOverlay(t)
	if _, err := exec.LookPath("mv"); err != nil {
		t.Fatalf("mv (coreutils) is needed: %v", err)
	}
	d := newOverlayDirs(t)
	lower := d.root + "/lower"
	content := func(dir string) tree {
		return tree{
			dir + "/a":         "a",
			dir + "/b":         "bb",
			dir + "/sub/c":     "c",
			dir + "/sub/deep/": "",
			dir + "/sym":       "-> a",
			dir + "/x":         "xattr",
		}
	}
	lt := tree{}
	for _, dir := range []string{"back", "chain", "edit", "away", "nested", "swap1"} {
		for k, v := range content(dir) {
			lt[k] = v
		}
	}
	lt["swap2/other"] = "other"
	lt["nested/sub/old1"] = "1"
	lt["nested/sub/old2"] = "2"
	build(t, lower, lt, testUserXattr)
	for _, dir := range []string{"back", "chain", "edit", "away", "nested", "swap1"} {
		must(t, unix.Lsetxattr(lower+"/"+dir+"/x", "user.note", []byte("kept"), 0))
	}
	setTimes(t, lower, lowerTime)
	mountT(t, Mount{Lowers: []string{lower}, Upper: d.upper, Work: d.work, UserXattr: testUserXattr}, d.merged)

	sh := func(script string) {
		t.Helper()
		cmd := exec.Command("sh", "-ec", script)
		cmd.Dir = d.merged
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	sh("mv back back.tmp && mv back.tmp back")
	sh("mv chain c1 && mv c1 c2 && mv c2 c3 && mv c3 chain")
	sh("mv edit e && mv e edit && echo changed > edit/sub/c && rm edit/b")
	sh("mv away away.old && mkdir away && echo new > away/n")
	sh("mv nested n && mv n nested && rm -rf nested/sub && mkdir nested/sub && echo n > nested/sub/n")
	sh("mv swap1 s && mv swap2 swap1 && mv s swap2")
	want := snapTree(t, d.merged)
	must(t, Unmount(d.merged))

	// The case this is about: the directories that came back are opaque
	// copies in the upper dir.
	for _, dir := range []string{"back", "chain", "edit", "away", "nested", "swap1", "swap2"} {
		if ok, err := isOpaque(d.upper+"/"+dir, opaqueXattr(testUserXattr)); err != nil || !ok {
			t.Fatalf("upper %s/ is not an opaque directory (%v, %v): the kernel renamed without copying?", dir, ok, err)
		}
	}

	var raw bytes.Buffer
	stats, err := Diff(t.Context(), &raw, d.upper, DiffOptions{Lowers: []string{lower}, UserXattr: testUserXattr})
	if err != nil {
		t.Fatal(err)
	}
	es := readTar(t, raw.Bytes())
	got := names(es)
	for _, prefix := range []string{"back/", "chain/"} {
		for _, n := range got {
			if strings.HasPrefix(n, prefix) {
				t.Errorf("layer holds %s: a directory renamed away and back changed nothing", n)
			}
		}
	}
	for _, n := range got {
		if strings.HasPrefix(n, "c1") || strings.HasPrefix(n, "c2") || strings.HasPrefix(n, "c3") ||
			strings.HasPrefix(n, "back.tmp") || strings.HasPrefix(n, "e/") || strings.HasPrefix(n, "n/") || strings.HasPrefix(n, "s/") {
			t.Errorf("layer holds %s, a name that existed only within the step", n)
		}
	}
	wantEntries := []string{
		"away/", // a new directory took the name: the opaque form
		"away/.wh..wh..opq",
		"away/n",
		"away.old/", // the renamed copy, whole
		"away.old/a",
		"away.old/b",
		"away.old/sub/",
		"away.old/sub/c",
		"away.old/sub/deep/",
		"away.old/sym",
		"away.old/x",
		"edit/", // rm changed its mtime
		"edit/.wh.b",
		"edit/sub/c",  // the content changed, the directory did not
		"nested/",     // rm -rf of its sub changed its mtime
		"nested/sub/", // deleted and made again inside a directory that came back
		"nested/sub/.wh..wh..opq",
		"nested/sub/n",
	}
	for _, w := range wantEntries {
		if !slices.Contains(got, w) {
			t.Errorf("layer lacks %s", w)
		}
	}
	for _, n := range got {
		if strings.HasPrefix(n, "swap") {
			continue // checked by the round trip below
		}
		if !slices.Contains(wantEntries, n) {
			t.Errorf("layer holds %s, which the step did not change", n)
		}
	}
	if t.Failed() {
		t.Logf("layer entries: %q", got)
	}
	if e := byName(t, es, "away.old/x"); xattrsOf(e.hdr)["user.note"] != "kept" {
		t.Errorf("away.old/x lost its xattr in the copy: %q", xattrsOf(e.hdr))
	}
	if stats.Entries != len(es) {
		t.Errorf("Stats.Entries = %d, the layer has %d", stats.Entries, len(es))
	}

	// Round trip: the layer applied over the lower shows the step's view.
	d2 := newOverlayDirs(t)
	if _, err := Apply(t.Context(), d2.upper, bytes.NewReader(raw.Bytes()), ApplyOptions{UserXattr: testUserXattr}); err != nil {
		t.Fatal(err)
	}
	mountT(t, Mount{Lowers: []string{d2.upper, lower}, UserXattr: testUserXattr}, d2.merged)
	if diff := compareTrees(want, snapTree(t, d2.merged)); diff != "" {
		t.Errorf("the layer applied over the lower differs from the step's view:\n%s\nlayer entries: %q", diff, got)
	}
}

// snapTree describes every entry below root (not root itself) by path:
// type, mode, owner, size, content digest or link target or device,
// xattrs, and mtime for all but directories (an unpacker makes the parents
// of a layer's entries itself, with its own times).
func snapTree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	must(t, filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fmt.Sprintf("type %o mode %o owner %d:%d", st.Mode&unix.S_IFMT, st.Mode&0o7777, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += fmt.Sprintf(" size %d sha256 %x", st.Size, sha256.Sum256(b))
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			s += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			s += fmt.Sprintf(" rdev %d", st.Rdev)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			s += fmt.Sprintf(" mtime %d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		}
		xs, _, err := readXattrs(p, opaqueXattr(testUserXattr))
		if err != nil {
			return err
		}
		for _, x := range xs {
			s += fmt.Sprintf(" %s=%q", x.name, x.value)
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = s
		return nil
	}))
	return out
}

// compareTrees lists the paths whose descriptions differ, or "".
func compareTrees(want, got map[string]string) string {
	var lines []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			lines = append(lines, fmt.Sprintf("  %s: missing (want %s)", p, w))
		} else if g != w {
			lines = append(lines, fmt.Sprintf("  %s: got %s, want %s", p, g, w))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			lines = append(lines, fmt.Sprintf("  %s: unexpected (%s)", p, g))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
