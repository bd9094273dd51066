package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Writers into one OCI layout at once keep every tag (each reads and
// rewrites index.json under the layout's lock), and what they write is
// readable by all even under a umask of 077: blobs, index.json and
// oci-layout 0644, directories 0755.
func TestWriteLayoutConcurrentAndReadable(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "layout")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		img, err := random.Image(512, 2)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Write(context.Background(), img, mustRef(t, fmt.Sprintf("oci:%s:tag%d", dir, i)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Write tag%d: %v", i, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	tags := map[string]bool{}
	for _, m := range idx.Manifests {
		tags[m.Annotations[ocispec.AnnotationRefName]] = true
	}
	for i := range n {
		if !tags[fmt.Sprintf("tag%d", i)] {
			t.Errorf("index.json lacks tag%d: %s", i, raw)
		}
	}
	if len(idx.Manifests) != n {
		t.Errorf("index.json holds %d manifests, want %d", len(idx.Manifests), n)
	}
	files := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o644)
		if d.IsDir() {
			want = 0o755
		} else {
			files++
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// index.json, oci-layout, and per image a manifest, a config and 2 layers.
	if want := 2 + n*4; files != want {
		t.Errorf("the layout holds %d files, want %d", files, want)
	}
}
