package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReproducible builds one recipe in two empty stores, some time apart,
// and expects the same image: layer diffIDs and blob digests, config and
// manifest digests, image ID.
func TestReproducible(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "data.txt"), []byte("some data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recipe := writeRecipe(t, dir, "repro.yaml", `
- debian_slim: {python_version: "3.11"}
- run_commands:
  - "echo hello > /hello && mkdir -p /opt/app && ln -s /hello /opt/app/link && ln /hello /hello.hard"
  - "python -c 'import json; json.dump({\"a\": 1}, open(\"/opt/app/data.json\", \"w\"))'"
  - "rm -rf /usr/share/doc/apt && touch /etc/debian_version"
- env: {APP: demo}
- workdir: /opt/app
- add_local_file: {local_path: data.txt, remote_path: /opt/app/data.txt, copy: true}
`)
	var infos []imageInfo
	for i := 0; i < 2; i++ {
		if i == 1 {
			time.Sleep(2 * time.Second) // any wall-clock leak would show
		}
		r := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
		r.build(recipe)
		infos = append(infos, inspect(t, r, "repro"))
	}
	a, b := infos[0], infos[1]
	if a.ID != b.ID || a.Manifest.Digest != b.Manifest.Digest {
		t.Errorf("image ID / manifest differ: %s %s vs %s %s", a.ID, a.Manifest.Digest, b.ID, b.Manifest.Digest)
	}
	if len(a.Config.RootFS.DiffIDs) != len(b.Config.RootFS.DiffIDs) {
		t.Fatalf("layer counts differ: %d vs %d", len(a.Config.RootFS.DiffIDs), len(b.Config.RootFS.DiffIDs))
	}
	for i := range a.Config.RootFS.DiffIDs {
		if a.Config.RootFS.DiffIDs[i] != b.Config.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: diffID %s vs %s", i, a.Config.RootFS.DiffIDs[i], b.Config.RootFS.DiffIDs[i])
		}
	}
	if len(a.Config.RootFS.DiffIDs) != 5 {
		// base, three RUNs, COPY; WORKDIR /opt/app exists already: no layer.
		t.Errorf("%d layers, want 5", len(a.Config.RootFS.DiffIDs))
	}
}
