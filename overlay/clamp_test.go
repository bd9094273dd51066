package overlay

import (
	"context"
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
