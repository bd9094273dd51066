package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// capNetRawV2 is security.capability for cap_net_raw=ep in version 2 form.
var capNetRawV2 = func() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001) // revision 2, effective
	binary.LittleEndian.PutUint32(b[4:], 1<<13)      // permitted: CAP_NET_RAW
	return b
}()

// TestDiffMountedChanges makes changes through a real overlay mount and checks
// the exact layer Diff writes for them.
func TestDiffMountedChanges(t *testing.T) {
	needOverlay(t)
	d := newOverlayDirs(t)
	lower := d.root + "/lower"
	build(t, lower, tree{
		"chmod.txt":     "chmod",
		"chown.txt":     "chown",
		"del.txt":       "del",
		"deldir/a":      "a",
		"deldir/sub/b":  "b",
		"etc/passwd":    "root:x:0:0",
		"etc/del.conf":  "x",
		"lowerlink.txt": "shared",
		"modify.txt":    "old",
		"mvfile":        "mv",
		"recreate/old1": "1",
		"recreate/old2": "2",
		"same-mode.txt": "same",
		"xattr.txt":     "x",
	}, testUserXattr)
	mountT(t, Mount{Lowers: []string{lower}, Upper: d.upper, Work: d.work, UserXattr: testUserXattr}, d.merged)

	m := func(p string) string { return d.merged + "/" + p }
	var skipped []string
	// userns runs an operation that a user namespace with one mapped id
	// may refuse; then the entry it would produce is not expected.
	userns := func(name string, err error) {
		t.Helper()
		if err != nil && testUserXattr {
			t.Logf("in a user namespace: %s: %v (not checked)", name, err)
			skipped = append(skipped, name)
			return
		}
		must(t, err)
	}
	must(t, os.WriteFile(m("new.txt"), []byte("new"), 0o644))
	must(t, unix.Setxattr(m("new.txt"), "user.test", []byte("hello"), 0))
	must(t, os.WriteFile(m("naïve.txt"), []byte("utf8"), 0o644))
	must(t, os.WriteFile(m("cap.bin"), []byte("ping"), 0o755))
	must(t, unix.Setxattr(m("cap.bin"), capabilityXattr, capNetRawV2, 0))
	must(t, os.WriteFile(m("modify.txt"), []byte("new content"), 0o644))
	must(t, os.Chmod(m("chmod.txt"), 0o600))
	userns("chown.txt", os.Lchown(m("chown.txt"), 1000, 1001))
	must(t, os.Remove(m("del.txt")))
	must(t, os.RemoveAll(m("deldir")))
	must(t, os.Remove(m("etc/del.conf")))
	must(t, os.RemoveAll(m("recreate")))
	must(t, os.Mkdir(m("recreate"), 0o755))
	must(t, os.WriteFile(m("recreate/fresh"), []byte("fresh"), 0o644))
	must(t, os.Rename(m("mvfile"), m("mvfile2")))
	must(t, os.Rename(m("mvfile2"), m("mvfile")))
	must(t, os.Chmod(m("same-mode.txt"), 0o644))
	must(t, os.Mkdir(m("links"), 0o755))
	must(t, os.WriteFile(m("links/b"), []byte("hl"), 0o644))
	must(t, os.Link(m("links/b"), m("links/a")))
	must(t, os.Link(m("lowerlink.txt"), m("links/c")))
	must(t, os.Symlink("new.txt", m("sym")))
	must(t, unix.Mkfifo(m("fifo"), 0o644))
	userns("dev-null", unix.Mknod(m("dev-null"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))))
	must(t, os.WriteFile(m("suid"), []byte("#!/bin/sh\n"), 0o755))
	must(t, unix.Chmod(m("suid"), 0o4755))
	must(t, unix.Setxattr(m("xattr.txt"), "user.note", []byte("v"), 0))
	must(t, os.WriteFile(m("tmp.txt"), []byte("tmp"), 0o644))
	must(t, os.Remove(m("tmp.txt")))
	userns("sock", unix.Mknod(m("sock"), unix.S_IFSOCK|0o644, 0))
	must(t, Unmount(d.merged))

	// Overlay copied these up; Diff must filter them.
	for _, p := range []string{"mvfile", "same-mode.txt", "sock"} {
		if slices.Contains(skipped, p) {
			continue
		}
		if _, err := os.Lstat(d.upper + "/" + p); err != nil {
			t.Fatalf("expected %s in the upper dir: %v", p, err)
		}
	}

	var raw bytes.Buffer
	stats, err := Diff(context.Background(), &raw, d.upper, DiffOptions{Lowers: []string{lower}, UserXattr: testUserXattr})
	if err != nil {
		t.Fatal(err)
	}
	es := readTar(t, raw.Bytes())
	want := []string{
		"cap.bin",
		"chmod.txt",
		"chown.txt",
		".wh.del.txt",
		".wh.deldir",
		"dev-null",
		"etc/",
		"etc/.wh.del.conf",
		"fifo",
		"links/",
		"links/a",
		"links/b",
		"links/c",
		"lowerlink.txt",
		"modify.txt",
		"naïve.txt",
		"new.txt",
		"recreate/",
		"recreate/.wh..wh..opq",
		"recreate/fresh",
		"suid",
		"sym",
		"xattr.txt",
	}
	want = slices.DeleteFunc(want, func(n string) bool { return slices.Contains(skipped, n) })
	if got := names(es); !slices.Equal(got, want) {
		t.Fatalf("Diff entries:\n got %q\nwant %q", got, want)
	}

	var dataBytes int64
	for _, e := range es {
		h := e.hdr
		if h.Format != tar.FormatPAX && h.Format != tar.FormatUSTAR {
			t.Errorf("%s: format %v, want PAX", h.Name, h.Format)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: uname/gname %q/%q, want empty", h.Name, h.Uname, h.Gname)
		}
		if !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: has atime/ctime", h.Name)
		}
		for k := range xattrsOf(h) {
			if isOverlayXattr(k) {
				t.Errorf("%s: overlay xattr %s in layer", h.Name, k)
			}
		}
		base := h.Name[strings.LastIndex(strings.TrimSuffix(h.Name, "/"), "/")+1:]
		if strings.HasPrefix(base, ".wh.") {
			if h.Typeflag != tar.TypeReg || h.Size != 0 || h.Mode != 0 || h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
				t.Errorf("whiteout %s: got type %c size %d mode %o uid %d gid %d mtime %v", h.Name, h.Typeflag, h.Size, h.Mode, h.Uid, h.Gid, h.ModTime)
			}
		}
		dataBytes += int64(len(e.data))
	}

	check := func(name string, typ byte, mode int64, data string) entry {
		t.Helper()
		e := byName(t, es, name)
		if e.hdr.Typeflag != typ || e.hdr.Mode != mode || e.data != data {
			t.Errorf("%s: got type %c mode %#o data %q, want %c %#o %q", name, e.hdr.Typeflag, e.hdr.Mode, e.data, typ, mode, data)
		}
		return e
	}
	check("chmod.txt", tar.TypeReg, 0o600, "chmod")
	if !slices.Contains(skipped, "chown.txt") {
		if e := check("chown.txt", tar.TypeReg, 0o644, "chown"); e.hdr.Uid != 1000 || e.hdr.Gid != 1001 {
			t.Errorf("chown.txt: uid/gid %d/%d, want 1000/1001", e.hdr.Uid, e.hdr.Gid)
		}
	}
	if e := check("chmod.txt", tar.TypeReg, 0o600, "chmod"); !e.hdr.ModTime.Equal(lowerTime) {
		t.Errorf("chmod.txt: mtime %v, want the lower's %v (nanoseconds kept)", e.hdr.ModTime, lowerTime)
	}
	if !slices.Contains(skipped, "dev-null") {
		if e := check("dev-null", tar.TypeChar, 0o644, ""); e.hdr.Devmajor != 1 || e.hdr.Devminor != 3 {
			t.Errorf("dev-null: device %d/%d, want 1/3", e.hdr.Devmajor, e.hdr.Devminor)
		}
	}
	check("etc/", tar.TypeDir, 0o755, "")
	check("fifo", tar.TypeFifo, 0o644, "")
	check("links/", tar.TypeDir, 0o755, "")
	check("links/a", tar.TypeReg, 0o644, "hl")
	if e := check("links/b", tar.TypeLink, 0o644, ""); e.hdr.Linkname != "links/a" {
		t.Errorf("links/b: linkname %q, want links/a", e.hdr.Linkname)
	}
	check("links/c", tar.TypeReg, 0o644, "shared")
	if e := check("lowerlink.txt", tar.TypeLink, 0o644, ""); e.hdr.Linkname != "links/c" {
		t.Errorf("lowerlink.txt: linkname %q, want links/c", e.hdr.Linkname)
	}
	check("modify.txt", tar.TypeReg, 0o644, "new content")
	check("naïve.txt", tar.TypeReg, 0o644, "utf8")
	if e := check("new.txt", tar.TypeReg, 0o644, "new"); !mapsEqual(xattrsOf(e.hdr), map[string]string{"user.test": "hello"}) {
		t.Errorf("new.txt: xattrs %q, want user.test=hello", xattrsOf(e.hdr))
	}
	if e := check("cap.bin", tar.TypeReg, 0o755, "ping"); xattrsOf(e.hdr)[capabilityXattr] != string(capNetRawV2) {
		t.Errorf("cap.bin: security.capability %x, want %x", xattrsOf(e.hdr)[capabilityXattr], capNetRawV2)
	}
	check("recreate/", tar.TypeDir, 0o755, "")
	check("recreate/fresh", tar.TypeReg, 0o644, "fresh")
	check("suid", tar.TypeReg, 0o4755, "#!/bin/sh\n")
	if e := check("sym", tar.TypeSymlink, 0o777, ""); e.hdr.Linkname != "new.txt" {
		t.Errorf("sym: target %q, want new.txt", e.hdr.Linkname)
	}
	if e := check("xattr.txt", tar.TypeReg, 0o644, "x"); !mapsEqual(xattrsOf(e.hdr), map[string]string{"user.note": "v"}) {
		t.Errorf("xattr.txt: xattrs %q, want user.note=v", xattrsOf(e.hdr))
	}

	wantStats := Stats{Entries: len(want), Whiteouts: 4, Bytes: dataBytes}
	if stats != wantStats {
		t.Errorf("Stats = %+v, want %+v", stats, wantStats)
	}

	// Reproducible: a second run writes the same bytes.
	var again bytes.Buffer
	if _, err := Diff(context.Background(), &again, d.upper, DiffOptions{Lowers: []string{lower}, UserXattr: testUserXattr}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw.Bytes(), again.Bytes()) {
		t.Error("two Diff runs wrote different bytes")
	}

	// With an epoch, every mtime is clamped and whiteouts get the epoch.
	epoch := lowerTime.Add(time.Hour)
	clamped, _ := diffT(t, d.upper, DiffOptions{Lowers: []string{lower}, UserXattr: testUserXattr, Epoch: &epoch})
	if got := names(clamped); !slices.Equal(got, want) {
		t.Fatalf("Diff with Epoch entries:\n got %q\nwant %q", got, want)
	}
	for i, e := range clamped {
		want := es[i].hdr.ModTime // unclamped
		switch {
		case strings.Contains(e.hdr.Name, ".wh."):
			want = epoch
		case want.After(epoch):
			want = epoch
		}
		if !e.hdr.ModTime.Equal(want) {
			t.Errorf("%s: mtime with Epoch %v, want %v", e.hdr.Name, e.hdr.ModTime, want)
		}
		if e.hdr.ModTime.After(epoch) {
			t.Errorf("%s: mtime %v after the epoch", e.hdr.Name, e.hdr.ModTime)
		}
	}
	if n := byName(t, clamped, "new.txt"); !n.hdr.ModTime.Equal(epoch) {
		t.Errorf("new.txt: mtime %v, want the epoch", n.hdr.ModTime)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestDiffUserXattrMount checks an overlay mounted with userxattr, as inside a
// user namespace: opaque dirs carry user.overlay.opaque.
func TestDiffUserXattrMount(t *testing.T) {
	needOverlay(t)
	d := newOverlayDirs(t)
	lower := d.root + "/lower"
	build(t, lower, tree{"dir/old": "old", "gone": "gone", "keep": "keep"}, true)
	mountT(t, Mount{Lowers: []string{lower}, Upper: d.upper, Work: d.work, UserXattr: true}, d.merged)
	must(t, os.RemoveAll(d.merged+"/dir"))
	must(t, os.Mkdir(d.merged+"/dir", 0o755))
	must(t, os.WriteFile(d.merged+"/dir/new", []byte("new"), 0o644))
	must(t, os.Remove(d.merged+"/gone"))
	must(t, os.WriteFile(d.merged+"/x", []byte("x"), 0o644))
	must(t, Unmount(d.merged))

	if ok, err := isOpaque(d.upper+"/dir", opaqueXattr(true)); err != nil || !ok {
		t.Fatalf("upper dir/ not opaque with user.overlay.opaque: %v, %v", ok, err)
	}
	es, stats := diffT(t, d.upper, DiffOptions{Lowers: []string{lower}, UserXattr: true})
	want := []string{"dir/", "dir/.wh..wh..opq", "dir/new", ".wh.gone", "x"}
	if got := names(es); !slices.Equal(got, want) {
		t.Fatalf("Diff entries:\n got %q\nwant %q", got, want)
	}
	if stats.Whiteouts != 2 {
		t.Errorf("Stats.Whiteouts = %d, want 2", stats.Whiteouts)
	}
	for _, e := range es {
		for k := range xattrsOf(e.hdr) {
			if isOverlayXattr(k) {
				t.Errorf("%s: overlay xattr %s in layer", e.hdr.Name, k)
			}
		}
	}
}

// TestDiffLowerLookup checks whiteouts, opaque dirs and copy-up filtering
// against three hand-made lowers.
func TestDiffLowerLookup(t *testing.T) {
	needRoot(t) // mknod and trusted.* xattrs
	root := t.TempDir()
	l1, l2, l3, upper := root+"/l1", root+"/l2", root+"/l3", root+"/upper"
	build(t, l1, tree{"keep": "k"}, testUserXattr)
	build(t, l2, tree{
		"wh:a/x":    "", // hides l3's a/x
		"opaque:b/": "", // hides l3's b/z
		"b/w":       "w",
		"wh:d":      "",  // hides l3's d/
		"h":         "h", // a file hiding l3's dir h/
		"wh:c/gone": "",  // hides l3's c/gone: no whiteout for it below
		"c/more":    "m", // upper's opaque c/ lacks it: whited out
	}, testUserXattr)
	build(t, l3, tree{
		"a/x": "x", "a/y": "y",
		"b/z": "z", "b/w": "w3",
		"c/old":        "o",
		"c/gone":       "g",
		"r/o1":         "1",
		"r/o2":         "2",
		"r/o3":         "3",
		"d/q":          "q",
		"e":            "e",
		"h/i":          "i",
		"f":            "f",
		"same.txt":     "same",
		"samesize.txt": "aaaa",
	}, testUserXattr)
	build(t, upper, tree{
		"wh:a/x":           "", // dropped: l2 deleted it
		"wh:a/y":           "",
		"wh:b/z":           "", // dropped: l2's b is opaque
		"wh:b/w":           "",
		"opaque:c/":        "", // as after a rename away and back
		"c/new":            "n",
		"c/old":            "o", // same as l3's: left out, c/ is written entry by entry
		"opaque:r/":        "",  // as after rm -rf and mkdir
		"r/new":            "n",
		"opaque:brandnew/": "",
		"wh:d/q":           "", // dropped: l2 deleted d
		"wh:e":             "",
		"opaque:f/":        "", // replaces a file: no opaque marker
		"wh:h/i":           "", // dropped: l2's h is a file
		"wh:keep":          "",
		"wh:never":         "", // dropped: never existed
		"wh:nodir/x":       "", // dropped: never existed
		"same.txt":         "same",
		"samesize.txt":     "bbbb",
	}, testUserXattr)
	es, stats := diffT(t, upper, DiffOptions{Lowers: []string{l1, l2, l3}, UserXattr: testUserXattr})
	want := []string{
		"a/.wh.y",
		"b/.wh.w",
		"brandnew/",
		"c/.wh.more",
		"c/new",
		"d/",
		".wh.e",
		"f/",
		"h/",
		".wh.keep",
		"nodir/",
		"r/",
		"r/.wh..wh..opq",
		"r/new",
		"samesize.txt",
	}
	if got := names(es); !slices.Equal(got, want) {
		t.Fatalf("Diff entries:\n got %q\nwant %q", got, want)
	}
	if stats.Whiteouts != 6 || stats.Entries != len(want) {
		t.Errorf("Stats = %+v, want 6 whiteouts and %d entries", stats, len(want))
	}

	// lookupPath agrees with the merged view.
	for rel, exists := range map[string]bool{
		"a/x": false, "a/y": true, "b/z": false, "b/w": true, "d/q": false, "d": false,
		"h": true, "h/i": false, "keep": true, "c/old": true, "never": false,
	} {
		e, err := lookupPath([]string{l1, l2, l3}, rel, opaqueXattr(testUserXattr))
		if err != nil {
			t.Fatal(err)
		}
		if (e != nil) != exists {
			t.Errorf("lookupPath(%s) found = %v, want %v", rel, e != nil, exists)
		}
	}
}

func TestDiffWhiteoutForNeverExistingPath(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	build(t, root+"/upper", tree{"wh:ghost": "", "wh:dir/ghost": ""}, testUserXattr)
	build(t, root+"/lower", tree{"other": "o", "dir/": ""}, testUserXattr)
	es, stats := diffT(t, root+"/upper", DiffOptions{Lowers: []string{root + "/lower"}, UserXattr: testUserXattr})
	if len(es) != 0 || stats != (Stats{}) {
		t.Errorf("Diff = %q, %+v; want no entries", names(es), stats)
	}
}

func TestDiffWhiteoutPrefixIsAnError(t *testing.T) {
	for _, name := range []string{".wh.foo", ".wh..wh..opq"} {
		upper := t.TempDir()
		must(t, os.Mkdir(upper+"/etc", 0o755))
		must(t, os.WriteFile(upper+"/etc/"+name, nil, 0o644))
		_, err := Diff(context.Background(), io.Discard, upper, DiffOptions{})
		if !errors.Is(err, ErrNotRepresentable) {
			t.Fatalf("Diff with %s = %v, want ErrNotRepresentable", name, err)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "overlay diff: etc/"+name+": ") || !strings.Contains(msg, "cannot be represented") {
			t.Errorf("error %q does not name the path and the problem", msg)
		}
	}
}

func TestDiffContextCanceled(t *testing.T) {
	upper := t.TempDir()
	must(t, os.WriteFile(upper+"/a", []byte("a"), 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Diff(ctx, io.Discard, upper, DiffOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Diff with cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestDiffNoLowersWritesEverything(t *testing.T) {
	upper := t.TempDir()
	build(t, upper, tree{"b/c": "c", "a": "a", "b/sym": "-> c", "b.txt": "bt"}, testUserXattr)
	es, _ := diffT(t, upper, DiffOptions{})
	want := []string{"a", "b/", "b/c", "b/sym", "b.txt"}
	if got := names(es); !slices.Equal(got, want) {
		t.Fatalf("Diff entries:\n got %q\nwant %q", got, want)
	}
	if e := byName(t, es, "b/c"); !e.hdr.ModTime.Equal(lowerTime) {
		t.Errorf("b/c: mtime %v, want %v", e.hdr.ModTime, lowerTime)
	}
}

func TestDiffBadInput(t *testing.T) {
	if _, err := Diff(context.Background(), io.Discard, t.TempDir()+"/missing", DiffOptions{}); err == nil {
		t.Error("Diff of a missing upper dir succeeded")
	}
	if _, err := Diff(context.Background(), io.Discard, t.TempDir(), DiffOptions{Lowers: []string{"/nonexistent-lower"}}); err == nil {
		t.Error("Diff with a missing lower succeeded")
	}
}

func TestCapabilityV2(t *testing.T) {
	v3 := make([]byte, 24)
	binary.LittleEndian.PutUint32(v3[0:], 0x03000001) // revision 3, effective
	binary.LittleEndian.PutUint32(v3[4:], 1<<13)
	binary.LittleEndian.PutUint32(v3[20:], 1001) // rootid
	if got := capabilityV2(v3); !bytes.Equal(got, capNetRawV2) {
		t.Errorf("capabilityV2(v3) = %x, want %x", got, capNetRawV2)
	}
	if got := capabilityV2(capNetRawV2); !bytes.Equal(got, capNetRawV2) {
		t.Errorf("capabilityV2(v2) = %x, want it unchanged", got)
	}
}

// TestDiffCapabilityV3OnDisk stores a version 3 capability (as a file set up
// in a user namespace looks from outside) and expects version 2 in the layer.
func TestDiffCapabilityV3OnDisk(t *testing.T) {
	needRoot(t)
	upper := t.TempDir()
	must(t, os.WriteFile(upper+"/ping", []byte("ping"), 0o755))
	v3 := make([]byte, 24)
	binary.LittleEndian.PutUint32(v3[0:], 0x03000001)
	binary.LittleEndian.PutUint32(v3[4:], 1<<13)
	binary.LittleEndian.PutUint32(v3[20:], 1001)
	if err := unix.Setxattr(upper+"/ping", capabilityXattr, v3, 0); err != nil {
		t.Skipf("kernel refuses to store a v3 capability here: %v", err)
	}
	got, _, err := lgetxattr(upper+"/ping", capabilityXattr)
	must(t, err)
	if len(got) != 24 {
		t.Skipf("kernel stored the capability as %d bytes, not v3", len(got))
	}
	es, _ := diffT(t, upper, DiffOptions{})
	if v := xattrsOf(byName(t, es, "ping").hdr)[capabilityXattr]; v != string(capNetRawV2) {
		t.Errorf("security.capability in layer = %x, want v2 %x", v, capNetRawV2)
	}
}

// BenchmarkDiff measures Diff over an upper dir of 2000 small files.
func BenchmarkDiff(b *testing.B) {
	upper := b.TempDir()
	var size int64
	content := bytes.Repeat([]byte("x"), 512)
	for i := range 20 {
		dir := fmt.Sprintf("%s/dir%02d", upper, i)
		must(b, os.Mkdir(dir, 0o755))
		for j := range 100 {
			must(b, os.WriteFile(fmt.Sprintf("%s/file%03d", dir, j), content, 0o644))
			size += int64(len(content))
		}
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		st, err := Diff(context.Background(), io.Discard, upper, DiffOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if st.Entries != 2020 {
			b.Fatalf("Entries = %d, want 2020", st.Entries)
		}
	}
}
