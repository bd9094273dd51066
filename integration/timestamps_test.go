package integration

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// tsScript makes files whose mtimes tell clamping from keeping: ts/new is
// written now, ts/mid has a time after the default epoch (1980-01-01) and
// ts/old one before it, both with sub-second parts.
const tsScript = `mkdir /ts && echo new > /ts/new && echo mid > /ts/mid && echo old > /ts/old && ` +
	`touch -d @1000000000.25 /ts/mid && touch -d @170812800.5 /ts/old`

var (
	tsMid   = time.Unix(1000000000, 250000000)
	tsOld   = time.Unix(170812800, 500000000)
	tsEpoch = time.Unix(315532800, 0) // snapbuild.DefaultEpoch
)

// TestTimestamps builds one step through the Modal method path (a recipe's
// run_commands) and one through the Dockerfile path (snapbuild build -f),
// each with the default --timestamps clamp and with --timestamps keep, in
// one store, and reads the mtimes in the exported layers: clamped to the
// epoch (earlier ones kept) by default, as the step left them, to the
// nanosecond, with keep. The keep build must not reuse the clamped layer
// (the choice is in the cache key), and a second clamp build reuses the
// first's.
func TestTimestamps(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd")
	dir := t.TempDir()
	must(t, testimage.WriteLayout(filepath.Join(dir, "base"), testimage.Spec{
		Tag:   "ts-base",
		Tools: []string{"sh", "mkdir", "echo", "touch"},
		Dirs:  []string{"/etc", "/tmp", "/root"},
		Files: map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"},
	}))
	r := runner{t: t, root: filepath.Join(dir, "store")}
	r.ok("load", filepath.Join(dir, "base"))
	recipe := writeRecipe(t, dir, "ts.yaml", "- from_id: ts-base\n- run_commands: [\""+strings.ReplaceAll(tsScript, `"`, `\"`)+"\"]\n")
	ctx := filepath.Join(dir, "context")
	must(t, os.MkdirAll(ctx, 0o755))
	must(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM ts-base\nRUN "+tsScript+"\n"), 0o644))

	for _, b := range []struct {
		path  string
		pos   string   // the recipe, or the Dockerfile's context
		flags []string // beside -t and --timestamps
	}{
		{"recipe", recipe, nil},
		{"dockerfile", ctx, []string{"-f", filepath.Join(ctx, "Dockerfile")}},
	} {
		t.Run(b.path, func(t *testing.T) {
			r := r
			r.t = t
			var layers = map[string][]*tar.Header{}
			var digests = map[string]string{}
			for _, mode := range []string{"clamp", "keep", "clamp-again"} {
				name := "ts-" + b.path + "-" + mode
				flags := append([]string{"-t", name}, b.flags...)
				if mode == "keep" {
					flags = append(flags, "--timestamps", "keep")
				}
				start := time.Now()
				sum := r.build(b.pos, flags...)
				end := time.Now()
				if mode == "clamp-again" && sum.Stats.Cached == 0 {
					t.Errorf("%s: a second clamp build reused nothing: %+v", name, sum.Stats)
				}
				layout := filepath.Join(t.TempDir(), "layout")
				r.ok("export", name, "oci:"+layout+":"+name)
				last := lastLayer(t, layout)
				layers[mode] = last
				for _, h := range last {
					digests[mode] += h.Name + " " + h.ModTime.String() + "\n"
				}
				got := map[string]time.Time{}
				for _, h := range last {
					got[strings.TrimSuffix(h.Name, "/")] = h.ModTime
				}
				want := map[string]func(time.Time) bool{
					"ts/old": func(m time.Time) bool { return m.Equal(tsOld) },
				}
				switch mode {
				case "keep":
					inBuild := func(m time.Time) bool {
						return !m.Before(start.Truncate(time.Second)) && !m.After(end)
					}
					want["ts/new"], want["ts"] = inBuild, inBuild
					want["ts/mid"] = func(m time.Time) bool { return m.Equal(tsMid) }
				default:
					isEpoch := func(m time.Time) bool { return m.Equal(tsEpoch) }
					want["ts/new"], want["ts"], want["ts/mid"] = isEpoch, isEpoch, isEpoch
				}
				for p, ok := range want {
					m, found := got[p]
					switch {
					case !found:
						t.Errorf("%s: the layer has no %s (entries: %s)", name, p, digests[mode])
					case !ok(m):
						t.Errorf("%s: %s has mtime %s (%d ns), which --timestamps %s does not give (build ran %s to %s)",
							name, p, m.UTC().Format(time.RFC3339Nano), m.UnixNano(), strings.TrimSuffix(mode, "-again"),
							start.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano))
					}
				}
			}
			if digests["clamp"] != digests["clamp-again"] {
				t.Errorf("two clamp builds gave other layers:\n%s\nvs\n%s", digests["clamp"], digests["clamp-again"])
			}
		})
	}
}

// lastLayer returns the tar headers of the top layer of the one image in
// the OCI layout (zstd, as snapbuild writes its layers).
func lastLayer(t *testing.T, layout string) []*tar.Header {
	t.Helper()
	var index struct{ Manifests []struct{ Digest string } }
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	var manifest struct {
		Layers []struct{ MediaType, Digest string }
	}
	readJSON(t, blobPath(layout, index.Manifests[0].Digest), &manifest)
	top := manifest.Layers[len(manifest.Layers)-1]
	if !strings.HasSuffix(top.MediaType, "+zstd") {
		t.Fatalf("top layer %s has media type %s, want a zstd layer", top.Digest, top.MediaType)
	}
	f, err := os.Open(blobPath(layout, top.Digest))
	must(t, err)
	defer f.Close()
	zr, err := zstd.NewReader(f)
	must(t, err)
	defer zr.Close()
	var hs []*tar.Header
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		must(t, err)
		hs = append(hs, h)
	}
}
