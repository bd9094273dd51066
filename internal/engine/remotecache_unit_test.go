package engine

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/remotecache"
	"github.com/snapbuild/snapbuild/registry"
)

// TestExportCacheAfterBuilds: ExportCache writes nothing before a Build
// returned, and nothing after a failed one (as build --cache-to); after
// builds that succeeded it writes every destination given, in order, a
// failing one with ignore-error=true a warning; a single-ID store marks
// its cache so.
func TestExportCacheAfterBuilds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first"), filepath.Join(dir, "second")
	// 127.0.0.1:1 answers nothing: that export fails, as a warning.
	refs := []string{"oci:" + first + ":c", "type=registry,ref=127.0.0.1:1/x/y:z,ignore-error=true", "type=local,dest=" + second + ",mode=max"}
	newBuilder := func() (*Engine, *[]string) {
		b := uBuilder(t)
		if err := WithCacheTo(refs...)(b); err != nil {
			t.Fatal(err)
		}
		if err := b.share(); err != nil {
			t.Fatal(err)
		}
		var warnings []string
		b.progress = ProgressFunc(func(e Event) {
			if e.Kind == EventWarn {
				warnings = append(warnings, e.Line)
			}
		})
		return b, &warnings
	}
	b, warnings := newBuilder()
	if _, err := b.ExportCache(ctx); err == nil || !strings.Contains(err.Error(), "nothing was built") {
		t.Errorf("ExportCache before any Build = %v, want an error saying nothing was built", err)
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ExportCache before any Build wrote %s (%v)", first, err)
	}
	if _, err := b.Build(ctx, FromScratch().Env(map[string]string{"A": "1"}).layers); err != nil {
		t.Fatal(err)
	}
	// The store's marker of single-ID mode, as the build namespace writes it.
	if err := os.WriteFile(filepath.Join(b.Root(), "idmap"), []byte("single\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ces, err := b.ExportCache(ctx)
	if err != nil {
		t.Fatalf("ExportCache = %v", err)
	}
	if len(ces) != 2 || ces[0].Ref != "oci:"+first+":c" || ces[1].Ref != "oci:"+second+":latest" || ces[1].Mode != "max" {
		t.Errorf("ExportCache = %+v, want %s and %s:latest (max)", ces, first, second)
	}
	if len(*warnings) != 1 || !strings.Contains((*warnings)[0], "127.0.0.1:1") || !strings.Contains((*warnings)[0], "ignore-error=true") {
		t.Errorf("warnings = %q, want one for the ignore-error destination", *warnings)
	}
	for _, ref := range []string{"oci:" + first + ":c", "oci:" + second + ":latest"} {
		r, err := registry.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		art, err := registry.OpenArtifact(ctx, r)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		var cfg remotecache.Config
		if err := json.Unmarshal(art.Config, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.IDMap != remotecache.IDMapSingle {
			t.Errorf("%s: idMap %q, want %q: the store is in single-ID mode", ref, cfg.IDMap, remotecache.IDMapSingle)
		}
	}

	// A store not in single-ID mode (this process: root, no namespace)
	// refuses that cache at open, with one warning, and builds without it.
	c := uBuilder(t)
	if err := WithCacheFrom("oci:" + first + ":c")(c); err != nil {
		t.Fatal(err)
	}
	var got []string
	c.progress = ProgressFunc(func(e Event) {
		if e.Kind == EventWarn {
			got = append(got, e.Line)
		}
	})
	if im := c.remoteImporter(ctx); im == nil {
		t.Fatal("no importer for --cache-from")
	}
	if len(got) != 1 || !strings.Contains(got[0], "written in single-ID mode") || !strings.Contains(got[0], "not used outside single-ID mode") {
		t.Errorf("warnings opening a single-ID cache = %q, want one saying it is not used", got)
	}

	// A failed Build: nothing is written, by any later ExportCache.
	b, _ = newBuilder()
	if _, err := b.Build(ctx, FromScratch().Env(map[string]string{"A": "1"}).layers); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(ctx, FromID("no-such-image").layers); err == nil {
		t.Fatal("Build(from_id of nothing) succeeded")
	}
	if err := os.RemoveAll(first); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ExportCache(ctx); err == nil || !strings.Contains(err.Error(), "1 of the 2 builds failed") {
		t.Errorf("ExportCache after a failed Build = %v, want an error saying a build failed", err)
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ExportCache after a failed Build wrote %s (%v)", first, err)
	}
}
