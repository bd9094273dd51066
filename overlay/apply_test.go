package overlay

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// tarEntry is one entry of a test layer.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func layerTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: lowerTime}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		must(t, tw.WriteHeader(h))
		if h.Size > 0 {
			_, err := tw.Write([]byte(e.body))
			must(t, err)
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// listTree lists root's entries as "path type[ -> target]".
func listTree(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	must(t, filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		s := rel
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			s += " -> " + target
		case fi.IsDir():
			s += "/"
		}
		out = append(out, s)
		return nil
	}))
	sort.Strings(out)
	return out
}

// TestApply unpacks a layer with files, a hard link, a symlink, a whiteout
// and an opaque directory into an upper dir and checks the overlay view
// over a lower: what an image's filesystem is after the layer.
func TestApply(t *testing.T) {
	needOverlay(t)
	d := newOverlayDirs(t)
	lower := d.root + "/lower"
	build(t, lower, tree{
		"etc/passwd":    "root:x:0:0",
		"etc/group":     "root:x:0:",
		"opt/data/old":  "old",
		"opt/data/keep": "keep",
		"var/x":         "x",
	}, testUserXattr)
	data := layerTar(t,
		tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "etc/.wh.passwd"},
		tarEntry{name: "etc/new", body: "new file", mode: 0o640},
		tarEntry{name: "etc/newlink", typ: tar.TypeLink, link: "etc/new", mode: 0o640},
		tarEntry{name: "link", typ: tar.TypeSymlink, link: "/etc/group"},
		tarEntry{name: "opt/data/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "opt/data/.wh..wh..opq"},
		tarEntry{name: "opt/data/fresh", body: "fresh"},
		tarEntry{name: "srv/", typ: tar.TypeDir, mode: 0o700},
	)
	id, err := Apply(t.Context(), d.upper, bytes.NewReader(data), ApplyOptions{UserXattr: testUserXattr})
	if err != nil {
		t.Fatal(err)
	}
	if want := digest.FromBytes(data); id != want {
		t.Errorf("diffID %s, want %s (the sha256 of the whole tar)", id, want)
	}
	mountT(t, Mount{Lowers: []string{lower}, Upper: d.upper, Work: d.work, UserXattr: testUserXattr}, d.merged)
	got := strings.Join(listTree(t, d.merged), "\n")
	want := strings.Join([]string{"etc/", "etc/group", "etc/new", "etc/newlink", "link -> /etc/group", "opt/", "opt/data/", "opt/data/fresh", "srv/", "var/", "var/x"}, "\n")
	if got != want {
		t.Errorf("overlay view:\n%s\nwant:\n%s", got, want)
	}
	var a, b unix.Stat_t
	must(t, unix.Stat(d.merged+"/etc/new", &a))
	must(t, unix.Stat(d.merged+"/etc/newlink", &b))
	if a.Ino != b.Ino || a.Mode&0o777 != 0o640 {
		t.Errorf("etc/newlink is not a hard link of etc/new (inodes %d, %d), or the mode %o is not 0640", a.Ino, b.Ino, a.Mode&0o777)
	}
	// The layer, diffed back, is what was applied.
	must(t, Unmount(d.merged))
	entries, _ := diffT(t, d.upper, DiffOptions{Lowers: []string{lower}, UserXattr: testUserXattr})
	var names []string
	for _, e := range entries {
		names = append(names, e.hdr.Name)
	}
	for _, w := range []string{"etc/.wh.passwd", "opt/data/.wh..wh..opq", "opt/data/fresh", "etc/new"} {
		found := false
		for _, n := range names {
			found = found || strings.TrimPrefix(n, "./") == w
		}
		if !found {
			t.Errorf("the diff of the applied layer lacks %s: %q", w, names)
		}
	}
}

// TestApplyRefusesEscapes: a layer cannot write outside the upper dir,
// neither by "../" names nor through a symlink it plants.
func TestApplyRefusesEscapes(t *testing.T) {
	needOverlay(t)
	d := newOverlayDirs(t)
	_, err := Apply(t.Context(), d.upper, bytes.NewReader(layerTar(t, tarEntry{name: "../evil", body: "x"})), ApplyOptions{UserXattr: testUserXattr})
	if err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("../evil: %v, want an error saying it is outside", err)
	}
	if _, err := os.Stat(d.root + "/evil"); err == nil {
		t.Error("../evil was written next to the upper dir")
	}

	// An absolute symlink to a host directory, then a file through it.
	victim := t.TempDir()
	name := "pwned-" + randHex(t)
	d2 := newOverlayDirs(t)
	_, err = Apply(t.Context(), d2.upper, bytes.NewReader(layerTar(t,
		tarEntry{name: "esc", typ: tar.TypeSymlink, link: victim},
		tarEntry{name: "esc/" + name, body: "owned"},
		tarEntry{name: "up", typ: tar.TypeSymlink, link: "../../../../../../.."},
		tarEntry{name: "up" + victim + "/" + name + "2", body: "owned"},
	)), ApplyOptions{UserXattr: testUserXattr})
	if _, serr := os.Stat(filepath.Join(victim, name)); serr == nil {
		t.Fatalf("the layer wrote %s on the host through an absolute symlink", filepath.Join(victim, name))
	}
	if _, serr := os.Stat(filepath.Join(victim, name+"2")); serr == nil {
		t.Fatalf("the layer wrote %s on the host through a relative symlink", filepath.Join(victim, name+"2"))
	}
	if err == nil {
		// Contained: the files land inside the upper dir.
		if _, serr := os.Stat(filepath.Join(d2.upper, victim, name)); serr != nil {
			t.Errorf("the file through the symlink is neither refused nor inside upper: %v", serr)
		}
	}
}

func randHex(t testing.TB) string {
	b := make([]byte, 6)
	_, err := rand.Read(b)
	must(t, err)
	return hex.EncodeToString(b)
}

// TestApplyNamesRefusedEntry: a layer the unpacker refuses fails with an
// error that names the entry and says why it cannot be applied, and wraps
// the unpacker's error.
func TestApplyNamesRefusedEntry(t *testing.T) {
	needOverlay(t)
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		want    string
		errno   error // the unpacker's error, when it is an errno
	}{{
		name: "hard link into a lower layer",
		entries: []tarEntry{
			{name: "usr/", typ: tar.TypeDir, mode: 0o755},
			{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
			{name: "usr/bin/python3", typ: tar.TypeLink, link: "usr/bin/python3.11"},
		},
		want:  `overlay apply: entry "usr/bin/python3": refused: hard link to "usr/bin/python3.11", which no earlier entry of this layer wrote (a hard link may point only to a file of its own layer: overlayfs keeps each layer apart, so a file of a lower layer cannot be linked to): no such file or directory`,
		errno: unix.ENOENT,
	}, {
		// A failure the checks do not foresee still names the entry.
		name: "whiteout of an entry of its own layer",
		entries: []tarEntry{
			{name: "etc/", typ: tar.TypeDir, mode: 0o755},
			{name: "etc/sub/", typ: tar.TypeDir, mode: 0o755},
			{name: "etc/sub/a", body: "a"},
			{name: "etc/.wh.sub"},
		},
		want:  `overlay apply: entry "etc/.wh.sub": mknod `,
		errno: unix.EEXIST,
	}, {
		name:    "hard link outside the root",
		entries: []tarEntry{{name: "a", body: "a"}, {name: "passwd", typ: tar.TypeLink, link: "../../../etc/passwd"}},
		want:    `overlay apply: entry "passwd": refused: hard link to "../../../etc/passwd", outside the image's root filesystem: invalid hardlink "../../../etc/passwd"`,
	}, {
		name:    "path outside the root",
		entries: []tarEntry{{name: "a", body: "a"}, {name: "../../evil", body: "x"}},
		want:    `overlay apply: entry "../../evil": refused: its path is outside the image's root filesystem: `,
	}, {
		name:    "hard link to a directory",
		entries: []tarEntry{{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "l", typ: tar.TypeLink, link: "d"}},
		want:    `overlay apply: entry "l": refused: hard link to "d", a directory: operation not permitted`,
		errno:   unix.EPERM,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newOverlayDirs(t)
			_, err := Apply(t.Context(), d.upper, bytes.NewReader(layerTar(t, tc.entries...)), ApplyOptions{UserXattr: testUserXattr})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Apply = %v\nwant an error starting %s", err, tc.want)
			}
			if tc.errno != nil && !errors.Is(err, tc.errno) {
				t.Errorf("Apply = %v, which does not wrap %v", err, tc.errno)
			}
		})
	}

	// The same links, with their targets earlier in the layer, apply.
	d := newOverlayDirs(t)
	_, err := Apply(t.Context(), d.upper, bytes.NewReader(layerTar(t,
		tarEntry{name: "usr/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "usr/bin/python3.11", body: "elf"},
		tarEntry{name: "usr/bin/python3", typ: tar.TypeLink, link: "/usr/bin/python3.11"},
		tarEntry{name: "usr/bin/py", typ: tar.TypeLink, link: "./usr/bin/../bin/python3"},
	)), ApplyOptions{UserXattr: testUserXattr})
	must(t, err)
	var a, b, c unix.Stat_t
	must(t, unix.Lstat(d.upper+"/usr/bin/python3.11", &a))
	must(t, unix.Lstat(d.upper+"/usr/bin/python3", &b))
	must(t, unix.Lstat(d.upper+"/usr/bin/py", &c))
	if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 {
		t.Errorf("inodes %d %d %d (nlink %d), want one inode linked 3 times", a.Ino, b.Ino, c.Ino, a.Nlink)
	}
}

// TestApplySquashOwners: with SquashOwners every entry is 0:0, modes
// (setuid included) kept; without it the layer's owners are applied.
func TestApplySquashOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to apply owners other than the running user's")
	}
	data := func() []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range []*tar.Header{
			{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 0, Gid: 42},
			{Name: "etc/shadow", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 0, Gid: 42},
			{Name: "usr/bin/chage", Typeflag: tar.TypeReg, Mode: 0o2755, Uid: 0, Gid: 42},
			{Name: "var/cache/partial/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 42, Gid: 0},
		} {
			h.ModTime = lowerTime
			must(t, tw.WriteHeader(h))
		}
		must(t, tw.Close())
		return buf.Bytes()
	}()
	for _, squash := range []bool{false, true} {
		upper := t.TempDir()
		if _, err := Apply(t.Context(), upper, bytes.NewReader(data), ApplyOptions{UserXattr: testUserXattr, SquashOwners: squash}); err != nil {
			t.Fatalf("SquashOwners %v: %v", squash, err)
		}
		for _, c := range []struct {
			name     string
			uid, gid uint32
			mode     os.FileMode
		}{
			{"etc/shadow", 0, 42, 0o640},
			{"usr/bin/chage", 0, 42, 0o755 | os.ModeSetgid},
			{"var/cache/partial", 42, 0, 0o700 | os.ModeDir},
		} {
			if squash {
				c.uid, c.gid = 0, 0
			}
			fi, err := os.Lstat(filepath.Join(upper, c.name))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != c.uid || st.Gid != c.gid || fi.Mode() != c.mode {
				t.Errorf("SquashOwners %v: %s is %d:%d %v, want %d:%d %v", squash, c.name, st.Uid, st.Gid, fi.Mode(), c.uid, c.gid, c.mode)
			}
		}
	}
}
