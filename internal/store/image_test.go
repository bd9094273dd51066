package store

import (
	"context"
	"reflect"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func TestImageIDFormat(t *testing.T) {
	re := regexp.MustCompile(`^im-[0-9A-Za-z]{22}$`)
	seen := map[string]bool{}
	for i := 0; i < 500; i++ {
		def := []byte(strings.Repeat("x", i))
		id := ImageID(def)
		if !re.MatchString(id) {
			t.Fatalf("ImageID = %q, want im- + 22 base62 characters", id)
		}
		if !ValidImageID(id) {
			t.Errorf("ValidImageID(%q) = false", id)
		}
		if ImageID(def) != id {
			t.Fatalf("ImageID not deterministic for %q", def)
		}
		if seen[id] {
			t.Fatalf("ImageID collision at %d: %s", i, id)
		}
		seen[id] = true
	}
	// Known values (computed independently: sha256 as a big-endian number in
	// base 62, digits 0-9a-zA-Z, first 22 digits), so that a change of the
	// derivation, which would orphan every stored image ID, is noticed.
	for def, want := range map[string]string{"snapbuild": "im-8FQEXqb5vvm6hhH9GdZ0v3", "": "im-RZwTDmWjELXeEmMEb0eIIe"} {
		if got := ImageID([]byte(def)); got != want {
			t.Errorf("ImageID(%q) = %s, want %s", def, got, want)
		}
	}
}

// An imported image is stored as it came (layer digests, diffIDs, config),
// unpacked into snapshots, and reads back through V1Image unchanged; a
// foreign platform is refused.
func TestImportV1Image(t *testing.T) {
	s := open(t, t.TempDir())
	img, err := random.Image(512, 3)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "arm64"
	arm, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(context.Background(), arm, ImportOptions{}); err == nil || !strings.Contains(err.Error(), "linux/arm64") {
		t.Errorf("importing a linux/arm64 image: %v, want an error naming the platform", err)
	}
	cf.Architecture = "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}

	var lines []string
	rec, err := s.Import(context.Background(), img, ImportOptions{Progress: func(l string) { lines = append(lines, l) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 6 {
		t.Errorf("progress: %q, want a fetch and an unpack line per layer", lines)
	}
	if !s.Snapshots().Exists(rec.ChainID) {
		t.Errorf("the chain %s was not unpacked", rec.ChainID)
	}
	if got, ok, err := s.Image(rec.ID); err != nil || !ok || got.Manifest.Digest != rec.Manifest.Digest {
		t.Errorf("image record %s: %+v, %v, %v", rec.ID, got, ok, err)
	}
	back, err := s.V1Image(rec.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, get := range []func(v1.Image) (any, error){
		func(i v1.Image) (any, error) { return i.ConfigName() },
		func(i v1.Image) (any, error) {
			ls, err := i.Layers()
			var ds []v1.Hash
			for _, l := range ls {
				d, _ := l.Digest()
				ds = append(ds, d)
			}
			return ds, err
		},
		func(i v1.Image) (any, error) {
			cf, err := i.ConfigFile()
			return cf.RootFS.DiffIDs, err
		},
	} {
		want, err1 := get(img)
		got, err2 := get(back)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("through V1Image: %v (%v), want %v (%v)", got, err2, want, err1)
		}
	}

	// Imported again: nothing to fetch or unpack, the same record.
	lines = nil
	again, err := s.Import(context.Background(), img, ImportOptions{Progress: func(l string) { lines = append(lines, l) }})
	if err != nil || again.ID != rec.ID || len(lines) != 0 {
		t.Errorf("second import: %s, %v, progress %q; want %s and no work", again.ID, err, lines, rec.ID)
	}
}
