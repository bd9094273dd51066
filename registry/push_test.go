package registry

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// uploadCounter is a reverse proxy in front of a registry that counts blob
// upload requests carrying data (PATCH, or PUT with a body, to
// /v2/…/blobs/uploads/…) and the bytes they carry.
type uploadCounter struct {
	mu      sync.Mutex
	uploads int
	bytes   int64
	heads   int
}

func (u *uploadCounter) reset() (uploads int, bytes int64, heads int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	uploads, bytes, heads = u.uploads, u.bytes, u.heads
	u.uploads, u.bytes, u.heads = 0, 0, 0
	return
}

func startCountingProxy(t *testing.T, target string) (*uploadCounter, string) {
	t.Helper()
	u := &uploadCounter{}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		isUpload := strings.Contains(r.URL.Path, "/blobs/uploads/")
		u.mu.Lock()
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/") {
			u.heads++
		}
		u.mu.Unlock()
		if isUpload && (r.Method == http.MethodPatch || (r.Method == http.MethodPut && r.ContentLength != 0)) {
			cr := &countingBody{ReadCloser: r.Body}
			r.Body = cr
			defer func() {
				u.mu.Lock()
				if cr.n > 0 {
					u.uploads++
					u.bytes += cr.n
				}
				u.mu.Unlock()
			}()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return u, strings.TrimPrefix(srv.URL, "http://")
}

type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

func TestPushSkipsBlobsAlreadyThere(t *testing.T) {
	f := registries(t)
	isolateCredentials(t)
	ctx := context.Background()
	counter, proxyHost := startCountingProxy(t, f.plain.host)
	insecure := WithInsecureRegistries(f.plain.host, proxyHost)

	img, err := Pull(ctx, mustRef(t, "docker://"+f.plain.host+"/test/zstd:1"), insecure)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	wantBlobs := len(layers) + 1 // and the config

	dest := mustRef(t, "docker://"+proxyHost+"/pushed/counted:first")
	if err := Push(ctx, img, dest, insecure); err != nil {
		t.Fatalf("Push(%s) = %v", dest, err)
	}
	n, b, _ := counter.reset()
	t.Logf("first push: %d blob uploads, %d bytes", n, b)
	if n != wantBlobs {
		t.Errorf("first push uploaded %d blobs, want %d (%d layers + config)", n, wantBlobs, len(layers))
	}

	dest = mustRef(t, "docker://"+proxyHost+"/pushed/counted:second")
	if err := Push(ctx, img, dest, insecure); err != nil {
		t.Fatalf("Push(%s) = %v", dest, err)
	}
	n, b, heads := counter.reset()
	t.Logf("second push: %d blob uploads, %d bytes, %d HEAD checks", n, b, heads)
	if n != 0 || b != 0 {
		t.Errorf("second push of the same image uploaded %d blobs (%d bytes), want 0", n, b)
	}
	if heads < wantBlobs {
		t.Errorf("second push made %d blob HEAD checks, want at least %d", heads, wantBlobs)
	}
	// The second tag names the same manifest.
	back, err := Pull(ctx, mustRef(t, "docker://"+f.plain.host+"/pushed/counted:second"), insecure)
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, back) != digestOf(t, img) {
		t.Errorf("pushed manifest %s, want %s", digestOf(t, back), digestOf(t, img))
	}
}

// skopeoInspect is `skopeo inspect --raw` and `skopeo inspect --config` of
// ref: its manifest and config.
func (f *fixture) skopeoInspect(t *testing.T, ref string, args ...string) (manifest map[string]any, diffIDs []string) {
	t.Helper()
	raw, err := f.skopeo(append(append([]string{"inspect", "--raw"}, args...), ref)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatalf("skopeo inspect --raw %s: %v", ref, err)
	}
	cfg, err := f.skopeo(append(append([]string{"inspect", "--config"}, args...), ref)...)
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(cfg, &cf); err != nil {
		t.Fatalf("skopeo inspect --config %s: %v", ref, err)
	}
	return manifest, cf.RootFS.DiffIDs
}

func layerTypes(m map[string]any) []string {
	var out []string
	ls, _ := m["layers"].([]any)
	for _, l := range ls {
		out = append(out, l.(map[string]any)["mediaType"].(string))
	}
	return out
}

func TestPushReadBackWithSkopeo(t *testing.T) {
	f := registries(t)
	isolateCredentials(t)
	ctx := context.Background()
	secure := []Option{WithCAFile(f.secure.caFile), WithCredentials(testUser, testPassword)}
	skopeoSecure := []string{"--cert-dir=" + f.secure.certDir, "--creds=" + testUser + ":" + testPassword}

	for _, tc := range []struct {
		name, src string
		comp      Compression
		wantTypes string // media type of every layer
	}{
		{"as is (zstd)", "zstd", "", string(types.OCILayerZStd)},
		{"zstd to gzip", "zstd", Gzip, string(types.OCILayer)},
		{"gzip to zstd", "gzip", Zstd, string(types.OCILayerZStd)},
		{"docker image to zstd", "user", Zstd, string(types.OCILayerZStd)},
		{"docker image as is", "user", "", string(types.DockerLayer)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Pull(ctx, mustRef(t, "docker://"+f.secure.host+"/seed/"+tc.src+":1"), secure...)
			if err != nil {
				t.Fatal(err)
			}
			dest := "docker://" + f.secure.host + "/pushed/" + tc.src + ":" + strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(tc.name)
			opts := secure
			if tc.comp != "" {
				opts = append(slices.Clone(secure), WithCompression(tc.comp))
			}
			if err := Push(ctx, img, mustRef(t, dest), opts...); err != nil {
				t.Fatalf("Push(%s) = %v", dest, err)
			}
			m, got := f.skopeoInspect(t, dest, skopeoSecure...)
			if want := diffIDs(t, img); !slices.Equal(got, want) {
				t.Errorf("skopeo inspect %s: diff IDs %v, want %v", dest, got, want)
			}
			for _, mt := range layerTypes(m) {
				if mt != tc.wantTypes {
					t.Errorf("skopeo inspect %s: layer media type %s, want %s", dest, mt, tc.wantTypes)
				}
			}
			// skopeo copies it out, checking every blob; its diff IDs match.
			out := filepath.Join(t.TempDir(), "out")
			if _, err := f.skopeo(append([]string{"copy", "--src-cert-dir=" + f.secure.certDir, "--src-creds=" + testUser + ":" + testPassword}, dest, "oci:"+out+":x")...); err != nil {
				t.Fatal(err)
			}
			if got, want := ociDiffIDs(t, out), diffIDs(t, img); !slices.Equal(got, want) {
				t.Errorf("skopeo copy %s: diff IDs %v, want %v", dest, got, want)
			}
		})
	}
}
