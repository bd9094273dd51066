package overlay

import (
	"errors"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRemoveStubs creates mount-target stubs through a real overlay mount, as
// a container runtime does, and checks that they and the directories copied
// up only for them leave no trace in the layer.
func TestRemoveStubs(t *testing.T) {
	needOverlay(t)
	d := newOverlayDirs(t)
	lower := d.root + "/lower"
	build(t, lower, tree{
		"etc/passwd":        "root:x:0:0",
		"usr/lib/x/libc":    "c",
		"opt/data/old":      "old",
		"var/lib/":          "",
		"srv/":              "",
		"dev/":              "",
		"home/user/.bashrc": "rc",
	}, testUserXattr)
	must(t, unix.Setxattr(lower+"/etc", "user.keep", []byte("1"), 0))
	setTimes(t, lower, lowerTime)
	mountT(t, Mount{Lowers: []string{lower}, Upper: d.upper, Work: d.work, UserXattr: testUserXattr}, d.merged)

	m := func(p string) string { return d.merged + "/" + p }
	touch := func(p string) { t.Helper(); must(t, os.WriteFile(m(p), nil, 0o644)) }
	touch("etc/resolv.conf")
	touch("etc/hosts")
	touch("usr/lib/x/libcuda.so.1")
	must(t, os.MkdirAll(m("run/nvidia/driver"), 0o755)) // parents not in the lowers stay
	touch("opt/data/stub")
	must(t, os.WriteFile(m("opt/data/keep"), []byte("real change"), 0o644))
	must(t, os.Chmod(m("var/lib"), 0o700)) // a real change to the parent
	touch("var/lib/stub")
	must(t, os.Mkdir(m("srv/www"), 0o755)) // a dir stub that is not empty
	touch("srv/www/content")
	must(t, os.Remove(m("home/user/.bashrc"))) // a whiteout at a stub path stays
	must(t, Unmount(d.merged))

	// A symlink in the upper dir must not lead RemoveStubs outside it.
	outside := d.root + "/outside"
	build(t, outside, tree{"victim": "v"}, testUserXattr)
	must(t, os.Symlink(outside, d.upper+"/evil"))

	stubs := []string{
		"/etc/resolv.conf",
		"etc/hosts",
		"usr/lib/x/libcuda.so.1",
		"run/nvidia/driver",
		"opt/data/stub",
		"var/lib/stub",
		"srv/www",
		"home/user/.bashrc",
		"evil/victim",
		"missing/stub",
		"etc/hosts", // duplicates are fine
	}
	must(t, RemoveStubs(d.upper, []string{lower}, stubs, testUserXattr))

	if _, err := os.Stat(outside + "/victim"); err != nil {
		t.Errorf("RemoveStubs followed a symlink out of the upper dir: %v", err)
	}
	for _, p := range []string{"etc", "usr", "run/nvidia/driver", "opt/data/stub", "var/lib/stub"} {
		if _, err := os.Lstat(d.upper + "/" + p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("upper %s: Lstat = %v, want removed", p, err)
		}
	}
	must(t, os.Remove(d.upper+"/evil"))

	es, _ := diffT(t, d.upper, DiffOptions{Lowers: []string{lower}, UserXattr: testUserXattr})
	want := []string{
		"home/user/",
		"home/user/.wh..bashrc",
		"opt/data/",
		"opt/data/keep",
		"run/",
		"run/nvidia/",
		"srv/",
		"srv/www/",
		"srv/www/content",
		"var/lib/",
	}
	if got := names(es); !slices.Equal(got, want) {
		t.Fatalf("Diff after RemoveStubs:\n got %q\nwant %q", got, want)
	}
}

func TestRemoveStubsNoParentOutsideLowers(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	lower, upper := root+"/lower", root+"/upper"
	build(t, lower, tree{"etc/": "", "opaque:odir/": ""}, testUserXattr)
	// Upper etc is opaque (deleted and recreated): it must stay even when empty.
	build(t, upper, tree{"opaque:etc/": "", "etc/resolv.conf": "", "odir/stub": ""}, testUserXattr)
	must(t, RemoveStubs(upper, []string{lower}, []string{"etc/resolv.conf", "odir/stub"}, testUserXattr))
	if _, err := os.Stat(upper + "/etc"); err != nil {
		t.Errorf("opaque etc removed: %v", err)
	}
	if _, err := os.Stat(upper + "/etc/resolv.conf"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stub not removed: %v", err)
	}
	// odir: same as its lower, which is opaque (overlay xattrs do not count).
	if _, err := os.Stat(upper + "/odir"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("copied-up parent odir not removed: %v", err)
	}
}

func TestRemoveStubsBadPath(t *testing.T) {
	upper := t.TempDir()
	for _, s := range []string{"../etc/hosts", "/", ""} {
		if err := RemoveStubs(upper, nil, []string{s}, testUserXattr); err == nil {
			t.Errorf("RemoveStubs(%q) succeeded, want an error", s)
		}
	}
}
