package overlay

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func lmtime(t *testing.T, p string) time.Time {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return time.Unix(st.Mtim.Unix())
}

// ClampTimes sets later mtimes to the epoch, keeps earlier ones, sets a
// symlink's own time without touching its target, and leaves the top
// directory alone.
func TestClampTimes(t *testing.T) {
	dir := t.TempDir()
	epoch := time.Unix(315532800, 0)
	old := time.Unix(200000000, 123)
	mk := func(rel string) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newFile, oldFile := mk("a/new"), mk("a/old")
	if err := os.Chtimes(oldFile, old, old); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(outside, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "a", "link")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	top := lmtime(t, dir)

	if err := ClampTimes(context.Background(), dir, epoch); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{newFile, link, filepath.Join(dir, "a")} {
		if got := lmtime(t, p); !got.Equal(epoch) {
			t.Errorf("%s: mtime %v, want the epoch %v", p, got, epoch)
		}
	}
	if got := lmtime(t, oldFile); !got.Equal(old) {
		t.Errorf("an mtime before the epoch changed: %v, want %v", got, old)
	}
	if got := lmtime(t, outside); got.Equal(epoch) {
		t.Errorf("the symlink's target was clamped")
	}
	if got := lmtime(t, dir); !got.Equal(top) {
		t.Errorf("the top directory changed: %v, want %v", got, top)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ClampTimes(ctx, dir, epoch); err == nil {
		t.Error("a cancelled context did not stop the walk")
	}
}

// pycHeader is a PEP 552 header: magic, flags, source mtime and size.
func pycHeader(flags, mtime, size uint32) []byte {
	h := []byte{0xa7, 0x0d, '\r', '\n', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(h[4:], flags)
	binary.LittleEndian.PutUint32(h[8:], mtime)
	binary.LittleEndian.PutUint32(h[12:], size)
	return append(h, "code"...)
}

// A timestamp .pyc that records its clamped source stays valid: ClampPyc
// clamps its record. Hash-based ones, stale ones and ones whose source is not
// in the tree keep their bytes.
func TestClampTimesPyc(t *testing.T) {
	dir := t.TempDir()
	epoch := time.Unix(315532800, 0)
	src := time.Unix(1700000000, 0)
	write := func(rel string, data []byte, mt time.Time) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		return p
	}
	body := []byte("X = 1\n")
	n := uint32(len(body))
	write("pkg/__init__.py", body, src)
	write("pkg/mod.py", body, src)
	fresh := write("pkg/__pycache__/__init__.cpython-311.pyc", pycHeader(0, uint32(src.Unix()), n), src)
	opt := write("pkg/__pycache__/mod.cpython-311.opt-1.pyc", pycHeader(0, uint32(src.Unix()), n), src)
	stale := write("pkg/__pycache__/mod.cpython-311.pyc", pycHeader(0, uint32(src.Unix())-5, n), src)
	hashed := write("pkg/__pycache__/mod.cpython-312.pyc", pycHeader(3, 0xdeadbeef, 0x12345678), src)
	orphan := write("lone/__pycache__/gone.cpython-311.pyc", pycHeader(0, uint32(src.Unix()), n), src)

	if err := ClampPyc(context.Background(), dir, epoch); err != nil {
		t.Fatal(err)
	}
	if err := ClampTimes(context.Background(), dir, epoch); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string][]byte{
		fresh:  pycHeader(0, uint32(epoch.Unix()), n),
		opt:    pycHeader(0, uint32(epoch.Unix()), n),
		stale:  pycHeader(0, uint32(src.Unix())-5, n),
		hashed: pycHeader(3, 0xdeadbeef, 0x12345678),
		orphan: pycHeader(0, uint32(src.Unix()), n),
	} {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: header % x, want % x", filepath.Base(p), got[:16], want[:16])
		}
		if mt := lmtime(t, p); !mt.Equal(epoch) {
			t.Errorf("%s: mtime %v, want the epoch", filepath.Base(p), mt)
		}
	}
}
