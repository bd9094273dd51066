package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fetchCounter is a forward HTTP proxy on 127.0.0.1 (what http_proxy names)
// that passes every request on and counts the packages fetched through
// it: Debian packages (.deb) and wheels (.whl).
type fetchCounter struct {
	mu     sync.Mutex
	got    map[string]int // by suffix: ".deb", ".whl"
	served []string
}

func startFetchCounter(t *testing.T) (*fetchCounter, string) {
	t.Helper()
	c := &fetchCounter{got: map[string]int{}}
	tr := &http.Transport{Proxy: nil}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() || r.URL.Scheme != "http" {
			http.Error(w, "a forward proxy for http:// URLs", http.StatusBadRequest)
			return
		}
		out := r.Clone(r.Context())
		out.RequestURI = ""
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		c.mu.Lock()
		for _, suffix := range []string{".deb", ".whl"} {
			if strings.HasSuffix(r.URL.Path, suffix) && r.Method == http.MethodGet && resp.StatusCode/100 == 2 {
				c.got[suffix]++
				c.served = append(c.served, r.URL.String())
			}
		}
		c.mu.Unlock()
		for k, vs := range resp.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return c, "http://" + ln.Addr().String()
}

// take returns the counts since the last take, and the URLs.
func (c *fetchCounter) take() (map[string]int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	got, served := c.got, c.served
	c.got, c.served = map[string]int{}, nil
	return got, served
}

// TestPackageCaches: a forced rebuild of apt_install and pip_install on the
// same store downloads no .deb and no wheel again (counted at a forward
// proxy the steps reach through the site's http_proxy, in front of the
// Debian mirror and the local package index); with --no-package-cache it
// downloads them again; a build with the caches finds in the cache the steps
// a build without them made, and the other way round (the caches are in no
// key); no layer holds the caches' files, the mount target or a downloaded
// package.
func TestPackageCaches(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	counter, proxy := startFetchCounter(t)
	dir := t.TempDir()
	whl := t.TempDir()
	dep := wheel(t, whl, "cachedep", "1.0", "dep-ok")
	app := wheel(t, whl, "cacheapp", "1.0", "app-ok", "cachedep")
	index := packageIndex(t, map[string][]string{"cachedep": {filepath.Join(whl, dep)}, "cacheapp": {filepath.Join(whl, app)}})
	// pip caches what it downloads over https, and over http from trusted
	// hosts only (its own rule): an http mirror is a trusted host.
	site := writeRecipe(t, dir, "site.yaml", "pip_trusted_hosts: [127.0.0.1]\nenv:\n  http_proxy: "+proxy+"\n")

	r := runner{t: t, root: rootDir}
	r.build(writeRecipe(t, dir, "pkgbase.yaml", "- debian_slim: {}\n"))
	recipe := writeRecipe(t, dir, "pkgcache.yaml", fmt.Sprintf(`
- from_id: pkgbase
- apt_install: [tree]
- pip_install: {packages: [cacheapp], index_url: %q}
`, index))
	counter.take()
	r.build(recipe, "--site-config", site)
	got, served := counter.take()
	if got[".deb"] == 0 || got[".whl"] != 2 {
		t.Fatalf("the first build fetched %v through the proxy, want the .deb of tree and 2 wheels: %v", got, served)
	}
	if out := r.ok("run", "pkgcache", "sh", "-c", "tree --version >/dev/null && python -c 'import cacheapp, cachedep; print(cacheapp.VALUE, cachedep.VALUE)'"); out.stdout != "app-ok dep-ok\n" {
		t.Errorf("the image: %q", out.stdout)
	}

	forced := r.build(recipe, "--site-config", site, "--force-build")
	if got, served := counter.take(); got[".deb"] != 0 || got[".whl"] != 0 {
		t.Errorf("the forced rebuild fetched %v again: %v", got, served)
	}
	if forced.Stats.ContainersStarted != 3 {
		t.Errorf("forced rebuild: %d containers started, want 3 (apt-get update, apt-get install, pip install)", forced.Stats.ContainersStarted)
	}

	off := r.build(recipe, "--site-config", site, "--force-build", "--no-package-cache")
	if got, served := counter.take(); got[".deb"] == 0 || got[".whl"] != 2 {
		t.Errorf("with --no-package-cache the rebuild fetched %v, want the packages again: %v", got, served)
	}
	// apt's logs hold the time, so each run of apt_install makes another
	// image: the keys are compared through the cache. A build with the
	// caches on finds every step the build without them made, and the
	// other way round.
	if again := r.build(recipe, "--site-config", site); again.Stats.Cached != again.Stats.Steps || again.ID != off.ID {
		t.Errorf("rebuild with the caches on after one without: %d of %d steps cached, ID %s (want %s)", again.Stats.Cached, again.Stats.Steps, again.ID, off.ID)
	}
	r.build(recipe, "--site-config", site, "--force-build")
	counter.take()
	if again := r.build(recipe, "--site-config", site, "--no-package-cache"); again.Stats.Cached != again.Stats.Steps {
		t.Errorf("rebuild with the caches off after one with them: %d of %d steps cached", again.Stats.Cached, again.Stats.Steps)
	}

	// The caches hold the packages; the layers hold none of them.
	for _, p := range []string{"apt/archives/tree_*.deb", "pip/http*"} {
		if m, _ := filepath.Glob(filepath.Join(rootDir, "worker", "pkgcache", p)); len(m) == 0 {
			t.Errorf("the store's package caches hold nothing like %s", p)
		}
	}
	created, entries := layerEntries(t, strings.TrimSuffix(exportLayout(t, r, "pkgcache"), ":pkgcache"))
	steps := 0
	for i, hs := range entries {
		if !strings.Contains(created[i], "apt-get") && !strings.Contains(created[i], "pip install") {
			continue
		}
		steps++
		for _, h := range hs {
			name := strings.TrimPrefix(h.Name, "./")
			if strings.HasPrefix(name, ".snapbuild-cache") || strings.HasSuffix(name, ".deb") || strings.HasPrefix(name, "root/.cache") ||
				strings.HasPrefix(name, "var/cache/apt/archives/") && !strings.HasSuffix(name, "/") {
				t.Errorf("the layer of %q holds %s", created[i], h.Name)
			}
		}
	}
	if steps != 3 {
		t.Errorf("found %d installer layers, want 3 (apt-get update, apt-get install, pip install): %q", steps, created)
	}
	if _, err := os.Stat(filepath.Join(rootDir, "worker", "pkgcache", "apt.lock")); err != nil {
		t.Errorf("the apt cache's lock: %v", err)
	}
}
