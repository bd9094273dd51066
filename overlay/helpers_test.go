package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lowerTime is the mtime given to every entry of the test lowers.
var lowerTime = time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC)

// testUserXattr is set when the tests run inside a user namespace, as
// rootless builds do: there overlay needs the userxattr option, marks opaque
// dirs with user.overlay.opaque, and trusted.* xattrs are out of reach.
var testUserXattr = inUserNamespace()

func inUserNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) != 3 || f[0] != "0" || f[1] != "0" || f[2] != "4294967295"
}

// needRoot skips the test when not running as root (in the initial or in a
// user namespace), unless CI=true, where a missing capability fails it.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("test needs root (CI=true: not skipping)")
	}
	t.Skip("test needs root")
}

var (
	overlayProbeOnce sync.Once
	overlayProbeErr  error
)

// needOverlay is needRoot plus a check that overlayfs can be mounted here.
func needOverlay(t testing.TB) {
	t.Helper()
	needRoot(t)
	overlayProbeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "overlay-probe")
		if err != nil {
			overlayProbeErr = err
			return
		}
		defer os.RemoveAll(dir)
		for _, d := range []string{"l", "u", "w", "m"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				overlayProbeErr = err
				return
			}
		}
		m := Mount{Lowers: []string{dir + "/l"}, Upper: dir + "/u", Work: dir + "/w", UserXattr: testUserXattr}
		if overlayProbeErr = m.Mount(dir + "/m"); overlayProbeErr == nil {
			overlayProbeErr = Unmount(dir + "/m")
		}
	})
	if overlayProbeErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("overlayfs unavailable (CI=true: not skipping): %v", overlayProbeErr)
		}
		t.Skipf("overlayfs unavailable: %v", overlayProbeErr)
	}
}

// mountT mounts m at target and unmounts it when the test ends.
func mountT(t testing.TB, m Mount, target string) {
	t.Helper()
	if err := m.Mount(target); err != nil {
		t.Fatalf("Mount(%s) = %v", target, err)
	}
	t.Cleanup(func() {
		if err := Unmount(target); err != nil {
			t.Errorf("Unmount(%s) = %v", target, err)
		}
	})
}

// overlayDirs makes lower, upper, work and merged dirs for one test.
type overlayDirs struct{ root, upper, work, merged string }

func newOverlayDirs(t testing.TB) overlayDirs {
	t.Helper()
	root := t.TempDir()
	d := overlayDirs{root: root, upper: root + "/upper", work: root + "/work", merged: root + "/merged"}
	for _, p := range []string{d.upper, d.work, d.merged} {
		must(t, os.Mkdir(p, 0o755))
	}
	return d
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tree maps slash paths to what build creates there.
type tree map[string]string

// build creates t under root. Keys are slash paths; "dir/" makes a
// directory, "link" with value "-> target" a symlink, "wh:name" a whiteout
// called name, "opaque:dir/" an opaque directory (trusted.overlay.opaque, or
// user.overlay.opaque when user is set). Other keys are files with the value
// as content. Parents are created as needed. Then every entry gets mtime
// lowerTime.
func build(tb testing.TB, root string, t tree, user bool) {
	tb.Helper()
	must(tb, os.MkdirAll(root, 0o755))
	for key, val := range t {
		kind := ""
		if i := strings.Index(key, ":"); i >= 0 {
			kind, key = key[:i], key[i+1:]
		}
		p := filepath.Join(root, key)
		must(tb, os.MkdirAll(filepath.Dir(p), 0o755))
		switch {
		case kind == "wh":
			must(tb, unix.Mknod(p, unix.S_IFCHR, 0))
		case kind == "opaque":
			must(tb, os.MkdirAll(p, 0o755))
			must(tb, unix.Setxattr(p, opaqueXattr(user), []byte("y"), 0))
		case strings.HasSuffix(key, "/"):
			must(tb, os.MkdirAll(p, 0o755))
		case strings.HasPrefix(val, "-> "):
			must(tb, os.Symlink(strings.TrimPrefix(val, "-> "), p))
		default:
			must(tb, os.WriteFile(p, []byte(val), 0o644))
		}
	}
	setTimes(tb, root, lowerTime)
}

// setTimes sets the atime and mtime of everything below root (not root) to tm.
func setTimes(tb testing.TB, root string, tm time.Time) {
	tb.Helper()
	ts := unix.NsecToTimespec(tm.UnixNano())
	var paths []string
	must(tb, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	}))
	// Children before parents, so setting a child does not move a parent's mtime.
	for i := len(paths) - 1; i >= 0; i-- {
		must(tb, unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// entry is one tar entry read back.
type entry struct {
	hdr  *tar.Header
	data string
}

// diffT runs Diff and reads the result back.
func diffT(t testing.TB, upper string, opts DiffOptions) ([]entry, Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := Diff(context.Background(), &buf, upper, opts)
	if err != nil {
		t.Fatalf("Diff(%s) = %v", upper, err)
	}
	return readTar(t, buf.Bytes()), st
}

func readTar(t testing.TB, b []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading tar entry %s: %v", hdr.Name, err)
		}
		out = append(out, entry{hdr, string(data)})
	}
}

func names(es []entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.hdr.Name)
	}
	return out
}

func byName(t testing.TB, es []entry, name string) entry {
	t.Helper()
	for _, e := range es {
		if e.hdr.Name == name {
			return e
		}
	}
	t.Fatalf("no tar entry %q in %q", name, names(es))
	return entry{}
}

// xattrsOf returns the SCHILY.xattr records of h, without the prefix.
func xattrsOf(h *tar.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			out[name] = v
		}
	}
	return out
}
