package overlay

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// layers makes n lower dirs under root, top-most first: lower i holds
// "layer-i" and "shared" with content i; the bottom one also holds "bottom"
// and "deleted", which the lower above it whites out.
func layers(t *testing.T, root string, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		dir := fmt.Sprintf("%s/l%d", root, i)
		tr := tree{fmt.Sprintf("layer-%d", i): "x", "shared": fmt.Sprint(i)}
		if i == n-1 {
			tr["bottom"] = "b"
			tr["deleted"] = "d"
		}
		if i == n-2 {
			tr["wh:deleted"] = ""
		}
		build(t, dir, tr, false)
		out = append(out, dir)
	}
	return out
}

func checkMerged(t *testing.T, merged string, n int) {
	t.Helper()
	for i := range n {
		if _, err := os.Stat(fmt.Sprintf("%s/layer-%d", merged, i)); err != nil {
			t.Errorf("layer-%d not visible: %v", i, err)
		}
	}
	if b, err := os.ReadFile(merged + "/shared"); err != nil || string(b) != "0" {
		t.Errorf("shared = %q, %v; want the top-most layer's \"0\"", b, err)
	}
	if _, err := os.Stat(merged + "/bottom"); err != nil {
		t.Errorf("bottom not visible: %v", err)
	}
	if _, err := os.Stat(merged + "/deleted"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted: Stat = %v, want not exist (whited out)", err)
	}
}

func checkReadOnly(t *testing.T, merged string) {
	t.Helper()
	err := os.WriteFile(merged+"/new", []byte("x"), 0o644)
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("write to read-only mount: %v, want EROFS", err)
	}
}

func TestMountManyLowers(t *testing.T) {
	needOverlay(t)
	for _, n := range []int{2, 3, 5} {
		t.Run(fmt.Sprintf("ro-%d", n), func(t *testing.T) {
			d := newOverlayDirs(t)
			mountT(t, Mount{Lowers: layers(t, d.root, n), UserXattr: testUserXattr}, d.merged)
			checkMerged(t, d.merged, n)
			checkReadOnly(t, d.merged)
		})
		t.Run(fmt.Sprintf("rw-%d", n), func(t *testing.T) {
			d := newOverlayDirs(t)
			mountT(t, Mount{Lowers: layers(t, d.root, n), Upper: d.upper, Work: d.work, UserXattr: testUserXattr}, d.merged)
			checkMerged(t, d.merged, n)
			must(t, os.WriteFile(d.merged+"/new", []byte("x"), 0o644))
			if _, err := os.Stat(d.upper + "/new"); err != nil {
				t.Errorf("write did not land in the upper dir: %v", err)
			}
		})
	}
}

// TestMountManyLongLowers mounts more lowers than a mount(2) option string
// can carry, which needs fsconfig "lowerdir+".
func TestMountManyLongLowers(t *testing.T) {
	needOverlay(t)
	d := newOverlayDirs(t)
	long := d.root + "/" + strings.Repeat("a-rather-long-layer-directory-name-", 3)
	var lowers []string
	for i := range 120 {
		dir := fmt.Sprintf("%s%03d", long, i)
		build(t, dir, tree{fmt.Sprintf("f%03d", i): "x"}, testUserXattr)
		lowers = append(lowers, dir)
	}
	m := Mount{Lowers: lowers, Upper: d.upper, Work: d.work, UserXattr: testUserXattr}
	err := m.mountNew(d.merged)
	if errors.Is(err, errNoLowerdirPlus) {
		t.Skip("kernel lacks fsconfig lowerdir+ (Linux < 6.8)")
	}
	must(t, err)
	t.Cleanup(func() { must(t, Unmount(d.merged)) })
	for i := range 120 {
		if _, err := os.Stat(fmt.Sprintf("%s/f%03d", d.merged, i)); err != nil {
			t.Errorf("file of lower %d not visible: %v", i, err)
		}
	}
	// Through mount(2) the same mount cannot be expressed.
	err = m.mountLegacy(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "120 lower layers") {
		t.Errorf("mountLegacy with 120 long lowers = %v, want an error naming the layer count", err)
	}
}

func TestMountLegacy(t *testing.T) {
	needOverlay(t)
	t.Run("rw", func(t *testing.T) {
		d := newOverlayDirs(t)
		m := Mount{Lowers: layers(t, d.root, 3), Upper: d.upper, Work: d.work, UserXattr: testUserXattr}
		must(t, m.mountLegacy(d.merged))
		t.Cleanup(func() { must(t, Unmount(d.merged)) })
		checkMerged(t, d.merged, 3)
		must(t, os.RemoveAll(d.merged+"/bottom"))
		var st unix.Stat_t
		must(t, unix.Lstat(d.upper+"/bottom", &st))
		if !isWhiteout(&st) {
			t.Errorf("deleting through the mount left no whiteout in the upper dir")
		}
	})
	t.Run("ro", func(t *testing.T) {
		d := newOverlayDirs(t)
		m := Mount{Lowers: layers(t, d.root, 3), UserXattr: testUserXattr}
		must(t, m.mountLegacy(d.merged))
		t.Cleanup(func() { must(t, Unmount(d.merged)) })
		checkMerged(t, d.merged, 3)
		checkReadOnly(t, d.merged)
	})
}

func TestMountLegacyOptionStringTooLong(t *testing.T) {
	var lowers []string
	for i := range 200 {
		lowers = append(lowers, fmt.Sprintf("/var/lib/snapbuild/snapshots/%06d/fs", i))
	}
	err := Mount{Lowers: lowers}.mountLegacy(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "200 lower layers") {
		t.Fatalf("mountLegacy with 200 lowers = %v, want an error naming the layer count", err)
	}
}

// TestMountSpecialCharacters uses paths with the characters that overlay
// option strings split at, through both mount APIs.
func TestMountSpecialCharacters(t *testing.T) {
	needOverlay(t)
	for _, api := range []string{"new", "legacy"} {
		t.Run(api, func(t *testing.T) {
			root := t.TempDir()
			l1, l2 := root+"/low:1,a", root+`/low\2`
			upper, work, merged := root+"/up:,per", root+"/wo,rk", root+"/merged"
			build(t, l1, tree{"one": "1"}, testUserXattr)
			build(t, l2, tree{"two": "2"}, testUserXattr)
			for _, p := range []string{upper, work, merged} {
				must(t, os.Mkdir(p, 0o755))
			}
			m := Mount{Lowers: []string{l1, l2}, Upper: upper, Work: work, UserXattr: testUserXattr}
			var err error
			if api == "new" {
				err = m.mountNew(merged)
				if errors.Is(err, errNoLowerdirPlus) {
					t.Skip("kernel lacks fsconfig lowerdir+")
				}
			} else {
				err = m.mountLegacy(merged)
			}
			must(t, err)
			t.Cleanup(func() { must(t, Unmount(merged)) })
			for _, f := range []string{"one", "two"} {
				if _, err := os.Stat(merged + "/" + f); err != nil {
					t.Error(err)
				}
			}
			must(t, os.WriteFile(merged+"/three", nil, 0o644))
			if _, err := os.Stat(upper + "/three"); err != nil {
				t.Errorf("write did not land in the upper dir: %v", err)
			}
		})
	}
}

func TestMountSingleLowerReadOnly(t *testing.T) {
	needOverlay(t)
	d := newOverlayDirs(t)
	lower := d.root + "/lower"
	build(t, lower, tree{"file": "content"}, testUserXattr)
	mountT(t, Mount{Lowers: []string{lower}, UserXattr: testUserXattr}, d.merged)
	if b, err := os.ReadFile(d.merged + "/file"); err != nil || string(b) != "content" {
		t.Errorf("read through the mount = %q, %v", b, err)
	}
	checkReadOnly(t, d.merged)
}

func TestMountUpperOnly(t *testing.T) {
	needOverlay(t)
	d := newOverlayDirs(t)
	mountT(t, Mount{Upper: d.upper, Work: d.work, UserXattr: testUserXattr}, d.merged)
	must(t, os.WriteFile(d.merged+"/file", []byte("x"), 0o644))
	if _, err := os.Stat(d.upper + "/file"); err != nil {
		t.Errorf("write did not land in the upper dir: %v", err)
	}
}

func TestMountValidation(t *testing.T) {
	for _, m := range []Mount{
		{},
		{Lowers: []string{"relative/path"}},
		{Lowers: []string{"/a", "/b"}, Upper: "/u"},
		{Lowers: []string{"/a"}, Upper: "u", Work: "/w"},
		{Lowers: []string{"/a"}, Upper: "/u", Work: "w"},
		{Upper: "/u"},
	} {
		if err := m.Mount(t.TempDir()); err == nil {
			t.Errorf("Mount(%+v) succeeded, want a validation error", m)
		}
	}
	if err := (Mount{Lowers: []string{"/a", "/b"}}).Mount(""); err == nil {
		t.Error("Mount with an empty target succeeded")
	}
}

func TestUnmountNotMounted(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	if err := Unmount(dir); err != nil {
		t.Errorf("Unmount of a plain dir = %v, want nil", err)
	}
	if err := Unmount(dir + "/missing"); err != nil {
		t.Errorf("Unmount of a missing path = %v, want nil", err)
	}
}

func TestMountErrorNamesCause(t *testing.T) {
	needOverlay(t)
	d := newOverlayDirs(t)
	err := Mount{Lowers: []string{d.root + "/missing", d.root}}.Mount(d.merged)
	if err == nil {
		Unmount(d.merged)
		t.Fatal("Mount with a missing lower succeeded")
	}
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), d.merged) {
		t.Errorf("Mount with a missing lower = %v, want ENOENT naming the target", err)
	}
}

// TestMountLongPaths uses layer paths longer than the 255 bytes fsconfig
// takes as a string.
func TestMountLongPaths(t *testing.T) {
	needOverlay(t)
	d := newOverlayDirs(t)
	long := d.root
	for len(long) < 300 {
		long += "/" + strings.Repeat("d", 60)
	}
	l1, l2, upper, work := long+"/l1", long+"/l2", long+"/upper", long+"/work"
	build(t, l1, tree{"one": "1"}, testUserXattr)
	build(t, l2, tree{"two": "2"}, testUserXattr)
	must(t, os.Mkdir(upper, 0o755))
	must(t, os.Mkdir(work, 0o755))
	mountT(t, Mount{Lowers: []string{l1, l2}, Upper: upper, Work: work, UserXattr: testUserXattr}, d.merged)
	for _, f := range []string{"one", "two"} {
		if _, err := os.Stat(d.merged + "/" + f); err != nil {
			t.Error(err)
		}
	}
	must(t, os.WriteFile(d.merged+"/three", nil, 0o644))
	if _, err := os.Stat(upper + "/three"); err != nil {
		t.Errorf("write did not land in the upper dir: %v", err)
	}
}
