package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingProxy is a reverse proxy on 127.0.0.1 in front of a registry
// that counts the blob uploads it forwards.
type countingProxy struct {
	host string
	mu   sync.Mutex
	// uploads counts started blob uploads (POST .../blobs/uploads/
	// without mount=); mounts the cross-repository mounts (with it);
	// manifests the manifest PUTs.
	uploads, mounts, manifests int
}

func startCountingProxy(t *testing.T, registryHost string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{host: ln.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: registryHost})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/"):
			if r.URL.Query().Get("mount") != "" {
				p.mounts++
			} else {
				p.uploads++
			}
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/"):
			p.manifests++
		}
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

func (p *countingProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.uploads, p.mounts, p.manifests = 0, 0, 0
}

func (p *countingProxy) counts() (uploads, mounts, manifests int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.uploads, p.mounts, p.manifests
}

// twentySteps is a recipe of 20 entries: a debian_slim base, an
// apt_install, env() and run_commands steps.
func twentySteps() string {
	var b strings.Builder
	b.WriteString("- debian_slim: {}\n- apt_install: [jq]\n")
	for i := 1; i <= 18; i++ {
		if i%6 == 0 {
			fmt.Fprintf(&b, "- env: {STEP_%d: \"v%d\"}\n", i, i)
			continue
		}
		fmt.Fprintf(&b, "- run_commands: [\"mkdir -p /steps && echo %d > /steps/%02d && seq 1 %d > /steps/seq%02d\"]\n", i, i, 200*i, i)
	}
	return b.String()
}

// cacheSummary is the image summary of build --progress json with the
// counters the cache tests compare.
type cacheSummary struct {
	ID    string `json:"id"`
	Stats struct {
		Steps             int `json:"steps"`
		Cached            int `json:"cached"`
		Config            int `json:"config"`
		ContainersStarted int `json:"containersStarted"`
		Entries           int `json:"entries"`
		EntriesCached     int `json:"entriesCached"`
	} `json:"stats"`
}

func parseCacheSummary(t *testing.T, stdout string) cacheSummary {
	t.Helper()
	var s cacheSummary
	found := false
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var probe struct {
			Kind string `json:"kind"`
		}
		if json.Unmarshal(sc.Bytes(), &probe) == nil && probe.Kind == "image" {
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("no image summary in:\n%s", tail(stdout, 20))
	}
	return s
}

// layersOf returns the layer digests of the image name in r's store.
func layersOf(t *testing.T, r runner, name string) []string {
	t.Helper()
	var info struct {
		Manifest struct {
			Digest string `json:"digest"`
		} `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(r.ok("inspect", name).stdout), &info); err != nil {
		t.Fatal(err)
	}
	var m struct {
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	b, err := os.ReadFile(filepath.Join(r.root, "blobs", "sha256", strings.TrimPrefix(info.Manifest.Digest, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// TestRemoteCacheRegistry: store A builds a 20-step recipe with --cache-to
// a registry (docker-registry on 127.0.0.1, behind a proxy that counts
// uploads); store B, empty, builds it with --cache-from: the same image ID
// and layers, every step cached, no container started, no Debian
// bootstrap; so does an empty rootless store. A second --cache-to of the same build uploads no blob. The
// time of B's build and of pulling the same layers into an empty store
// are logged (not asserted).
func TestRemoteCacheRegistry(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "runc")
	requireMirror(t)
	reg := startRegistry(t)
	proxy := startCountingProxy(t, reg)
	insecure := "--insecure-registry=" + proxy.host
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "twenty.yaml", twentySteps())
	cacheRef := "docker://" + proxy.host + "/ci/twenty-cache:main"

	a := runner{t: t, root: rootDir}
	resA := a.ok("build", recipe, "--progress", "json", "--cache-to", cacheRef, insecure)
	sa := parseCacheSummary(t, resA.stdout)
	if sa.Stats.Entries != 20 {
		t.Fatalf("store A: %d entries, want 20", sa.Stats.Entries)
	}
	up, _, man := proxy.counts()
	if up == 0 || man != 1 {
		t.Fatalf("first --cache-to: %d blob uploads, %d manifests: want some uploads and one manifest", up, man)
	}
	t.Logf("first --cache-to: %d blob uploads", up)
	if !strings.Contains(resA.stdout, `"kind":"cache"`) {
		t.Errorf("no cache line in the JSON output:\n%s", tail(resA.stdout, 5))
	}

	// A fresh store takes every step from the registry.
	b := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	start := time.Now()
	resB := b.ok("build", recipe, "--progress", "json", "--cache-from", cacheRef, insecure)
	fromCache := time.Since(start)
	sb := parseCacheSummary(t, resB.stdout)
	if sb.ID != sa.ID {
		t.Errorf("store B built %s, store A %s", sb.ID, sa.ID)
	}
	if sb.Stats.ContainersStarted != 0 {
		t.Errorf("store B started %d containers, want 0", sb.Stats.ContainersStarted)
	}
	if sb.Stats.Cached+sb.Stats.Config != sb.Stats.Steps {
		t.Errorf("store B: not every step cached: %+v", sb.Stats)
	}
	if strings.Contains(resB.stdout+resB.stderr, "mmdebstrap") {
		t.Errorf("store B bootstrapped Debian:\n%s", tail(resB.stderr, 20))
	}
	if la, lb := layersOf(t, a, "twenty"), layersOf(t, b, "twenty"); !slices.Equal(la, lb) {
		t.Errorf("layers differ:\nA %v\nB %v", la, lb)
	}
	if got := b.ok("run", "twenty", "--", "sh", "-c", "cat /steps/17; jq --version >/dev/null && echo jq").stdout; got != "17\njq\n" {
		t.Errorf("store B's image: %q", got)
	}

	// Rootless, from an empty store: the layers are unpacked in the build
	// namespace, which the miss outside it sends the build into.
	u := ensureTestUser(t)
	udir := userDir(t, u)
	recipeU := filepath.Join(udir, "twenty.yaml")
	if err := os.WriteFile(recipeU, []byte(twentySteps()), 0o644); err != nil {
		t.Fatal(err)
	}
	rl := runner{t: t, user: testUser, root: filepath.Join(udir, "store"), dir: udir}
	su := parseCacheSummary(t, rl.ok("build", recipeU, "--progress", "json", "--cache-from", cacheRef, insecure).stdout)
	if su.ID != sa.ID || su.Stats.ContainersStarted != 0 {
		t.Errorf("rootless store from the cache: %s with %d containers; want %s with 0", su.ID, su.Stats.ContainersStarted, sa.ID)
	}

	// Again from A: every blob is in the registry, none is uploaded.
	proxy.reset()
	a.ok("build", recipe, "--progress", "json", "--cache-to", cacheRef, insecure)
	// The artifact is the same too: go-containerregistry finds its
	// manifest there and does not send it again either.
	if up, mounts, man := proxy.counts(); up != 0 || mounts != 0 || man > 1 {
		t.Errorf("second --cache-to: %d blob uploads, %d mounts, %d manifests; want 0, 0 and at most 1", up, mounts, man)
	} else {
		t.Logf("second --cache-to: %d blob uploads, %d mounts, %d manifest PUTs", up, mounts, man)
	}

	// What pulling the same layers into an empty store takes.
	a.ok("push", "twenty", "docker://"+proxy.host+"/ci/twenty:1", insecure, "--compression", "zstd") // the store's blobs, as the cache holds them
	p := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	start = time.Now()
	p.ok("pull", "docker://"+proxy.host+"/ci/twenty:1", insecure)
	pulled := time.Since(start)
	t.Logf("fresh store: build --cache-from %v, pull of the same layers %v (ratio %.2f)", fromCache.Round(time.Millisecond), pulled.Round(time.Millisecond), fromCache.Seconds()/pulled.Seconds())
}

// TestRemoteCacheLayout: --cache-to an OCI layout (buildx's type=local
// form, mode=max), then --cache-from it for a fresh store in a network
// namespace with no network: the same image, no container. A layer blob
// of the layout tampered with is refused with a warning naming it, and
// only its step runs again; the image is still right.
func TestRemoteCacheLayout(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "runc", "unshare")
	requireMirror(t)
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "layout.yaml", `
- debian_slim: {}
- run_commands: ["echo first > /first"]
- env: {LAYOUT: "yes"}
- run_commands: ["echo last > /last"]
`)
	layout := filepath.Join(t.TempDir(), "cache")
	a := runner{t: t, root: rootDir}
	sa := parseCacheSummary(t, a.ok("build", recipe, "--progress", "json", "--cache-to", "type=local,dest="+layout+",tag=c,mode=max").stdout)

	fresh := filepath.Join(t.TempDir(), "store")
	cmd := exec.Command("unshare", "-n", bin, "build", recipe, "--progress", "json", "--cache-from", "oci:"+layout+":c", "--root", fresh)
	cmd.Env = os.Environ()
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("build --cache-from in a network namespace: %v\n%s", err, tail(string(stderr), 30))
	}
	sc := parseCacheSummary(t, string(out))
	if sc.ID != sa.ID || sc.Stats.ContainersStarted != 0 {
		t.Errorf("offline build from the layout: %s with %d containers; want %s with 0", sc.ID, sc.Stats.ContainersStarted, sa.ID)
	}

	// Single-ID mode: a rootless store with SNAPBUILD_USERNS=single takes
	// root's cache (another user can read the layout: its files are
	// readable by all) and writes its own, untagged (so "latest"), marked
	// single; a root store refuses that one with a warning and takes the
	// next --cache-from instead.
	for _, d := range []string{filepath.Dir(layout), filepath.Dir(filepath.Dir(layout))} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u := ensureTestUser(t)
	udir := userDir(t, u)
	recipeU := writeRecipe(t, udir, "layout.yaml", mustRead(t, recipe))
	single := filepath.Join(udir, "single")
	rl := runner{t: t, user: testUser, root: filepath.Join(udir, "store"), dir: udir, env: []string{"SNAPBUILD_USERNS=single"}}
	su := parseCacheSummary(t, rl.ok("build", recipeU, "--progress", "json", "--cache-from", "oci:"+layout+":c", "--cache-to", "oci:"+single).stdout)
	if su.Stats.ContainersStarted != 0 {
		t.Errorf("single-ID store from root's cache: %d containers, want 0", su.Stats.ContainersStarted)
	}
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(mustRead(t, filepath.Join(single, "index.json"))), &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "latest" {
		t.Errorf("the single-ID cache's index: %+v, want one manifest tagged latest", idx.Manifests)
	}
	e := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	res := e.ok("build", recipe, "--progress", "json", "--cache-from", "oci:"+single, "--cache-from", "oci:"+layout+":c")
	if n := strings.Count(res.stdout+res.stderr, "was written in single-ID mode"); n != 1 {
		t.Errorf("root store given a single-ID cache: %d warnings saying so, want 1:\n%s", n, tail(res.stdout, 20))
	}
	if se := parseCacheSummary(t, res.stdout); se.ID != sa.ID || se.Stats.ContainersStarted != 0 {
		t.Errorf("root store past the single-ID cache: %s with %d containers; want %s with 0 (from root's cache)", se.ID, se.Stats.ContainersStarted, sa.ID)
	}

	// Tamper with the last step's layer, keeping its size.
	last := layersOf(t, a, "layout")
	blob := filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(last[len(last)-1], "sha256:"))
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	os.Chmod(blob, 0o644)
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	d := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	res = d.ok("build", recipe, "--progress", "json", "--cache-from", "oci:"+layout+":c")
	sd := parseCacheSummary(t, res.stdout)
	if !strings.Contains(res.stdout+res.stderr, "layer "+last[len(last)-1]+" refused") {
		t.Errorf("no warning naming the tampered layer %s:\n%s", last[len(last)-1], tail(res.stdout, 20))
	}
	if sd.Stats.ContainersStarted != 1 {
		t.Errorf("with a tampered layer: %d containers started, want 1 (the step whose layer it is)", sd.Stats.ContainersStarted)
	}
	if got := d.ok("run", "layout", "--", "cat", "/first", "/last").stdout; got != "first\nlast\n" {
		t.Errorf("image built past the tampered layer: %q", got)
	}
}
