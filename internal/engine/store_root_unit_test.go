package engine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWithExistingRootMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "3")
	b, err := New(WithExistingRoot(dir))
	var nse *StoreNotExistError
	if !errors.As(err, &nse) || nse.Root != dir {
		t.Fatalf("New(WithExistingRoot(%s)) = %v, %v; want a *StoreNotExistError for %s", dir, b, err, dir)
	}
	if want := "store " + dir + " does not exist"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewBuilder made %s: %v", dir, err)
	}
	// A relative directory is reported absolute.
	t.Chdir(filepath.Dir(dir))
	if _, err := New(WithExistingRoot("3")); !errors.As(err, &nse) || nse.Root != dir {
		t.Errorf("New(WithExistingRoot(\"3\")) = %v, want a *StoreNotExistError for %s", err, dir)
	}
}

func TestWithExistingRootPresent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("NewBuilder opens a store only as root or in a user namespace")
	}
	dir := t.TempDir()
	b, err := New(WithExistingRoot(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Root() != dir {
		t.Errorf("Root() = %s, want %s", b.Root(), dir)
	}
	// The last of WithRoot and WithExistingRoot counts.
	missing := filepath.Join(dir, "new")
	b2, err := New(WithExistingRoot(missing), WithRoot(missing))
	if err != nil {
		t.Fatalf("WithRoot after WithExistingRoot: %v", err)
	}
	b2.Close()
	if _, err := os.Stat(filepath.Join(missing, "images")); err != nil {
		t.Errorf("WithRoot did not create the store: %v", err)
	}
}
