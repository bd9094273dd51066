package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/bcrypt"
)

// The integration tests run Debian's docker-registry (distribution 2.8) twice
// on 127.0.0.1: "secure" with TLS from a CA made here and htpasswd basic auth,
// "plain" with plain HTTP and no auth. skopeo seeds them from OCI layouts
// written with go-containerregistry (not with this package) and reads back
// what this package writes.

const (
	testUser     = "alice"
	testPassword = "Sesame-0pen-7f3b9c"
)

// need fails the test when CI=true and a tool is missing, and skips it
// otherwise.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required (CI=true): %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

// needRoot is need for root privileges.
func needRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("root is required (CI=true): %s", why)
		}
		t.Skipf("not root: %s", why)
	}
}

type testRegistry struct {
	host    string // 127.0.0.1:PORT
	root    string // storage root directory
	caFile  string // PEM of the CA that signed its certificate; "" for plain HTTP
	certDir string // a skopeo --cert-dir holding ca.crt
	log     *bytes.Buffer
	cmd     *exec.Cmd
}

// blobPath is where the registry stores blob d.
func (r *testRegistry) blobPath(d v1.Hash) string {
	return filepath.Join(r.root, "docker", "registry", "v2", "blobs", d.Algorithm, d.Hex[:2], d.Hex, "data")
}

type fixture struct {
	dir           string
	secure, plain *testRegistry
	images        map[string]v1.Image // seeded, by name ("gzip", "zstd", ...)
	amd64, arm64  v1.Image
	skopeoEnv     []string
	err           error
}

var (
	fixOnce sync.Once
	fix     *fixture
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		for _, r := range []*testRegistry{fix.secure, fix.plain} {
			if r != nil && r.cmd != nil {
				r.cmd.Process.Kill()
				r.cmd.Wait()
			}
		}
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

// registries starts both registries and seeds them, once per test binary.
func registries(t *testing.T) *fixture {
	t.Helper()
	need(t, "docker-registry", "skopeo")
	fixOnce.Do(func() {
		fix = &fixture{images: map[string]v1.Image{}}
		fix.err = fix.start()
	})
	if fix.err != nil {
		t.Fatalf("test registries: %v", fix.err)
	}
	return fix
}

func (f *fixture) start() error {
	var err error
	if f.dir, err = os.MkdirTemp("", "snapbuild-registry-test-"); err != nil {
		return err
	}
	empty := filepath.Join(f.dir, "registries.conf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return err
	}
	f.skopeoEnv = append(os.Environ(),
		"CONTAINERS_REGISTRIES_CONF="+empty,
		"REGISTRY_AUTH_FILE="+filepath.Join(f.dir, "no-auth.json"),
		"TMPDIR="+f.dir,
	)
	if f.secure, err = startRegistry(f.dir, "secure", true); err != nil {
		return err
	}
	if f.plain, err = startRegistry(f.dir, "plain", false); err != nil {
		return err
	}
	return f.seed()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startRegistry(dir, label string, secure bool) (*testRegistry, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &testRegistry{host: fmt.Sprintf("127.0.0.1:%d", port), root: filepath.Join(dir, label, "storage"), log: &bytes.Buffer{}}
	if err := os.MkdirAll(r.root, 0o755); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n  secret: snapbuild-test-secret\n", r.root, r.host)
	if secure {
		if err := r.makeTLS(filepath.Join(dir, label)); err != nil {
			return nil, err
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		htpasswd := filepath.Join(dir, label, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(testUser+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\nauth:\n  htpasswd:\n    realm: snapbuild-test\n    path: %s\n",
			filepath.Join(dir, label, "server.crt"), filepath.Join(dir, label, "server.key"), htpasswd)
	}
	cfgFile := filepath.Join(dir, label, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	r.cmd = exec.Command("docker-registry", "serve", cfgFile)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if the test binary dies
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	// Wait for /v2/ to answer.
	client := &http.Client{Timeout: time.Second}
	scheme := "http"
	if secure {
		pool := x509.NewCertPool()
		b, _ := os.ReadFile(r.caFile)
		pool.AppendCertsFromPEM(b)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		scheme = "https"
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(scheme + "://" + r.host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			r.cmd.Process.Kill()
			return nil, fmt.Errorf("docker-registry %s did not start: %v\n%s", label, err, r.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// makeTLS writes a CA and a server certificate for 127.0.0.1 signed by it.
func (r *testRegistry) makeTLS(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "snapbuild test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	r.caFile = filepath.Join(dir, "ca.pem")
	r.certDir = filepath.Join(dir, "certs.d")
	if err := os.MkdirAll(r.certDir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		r.caFile:                           caPEM,
		filepath.Join(r.certDir, "ca.crt"): caPEM,
		filepath.Join(dir, "server.crt"):   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		filepath.Join(dir, "server.key"):   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// skopeo runs skopeo with --insecure-policy and the fixture's isolated
// environment, and returns its stdout.
func (f *fixture) skopeo(args ...string) ([]byte, error) {
	cmd := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...)
	cmd.Env = f.skopeoEnv
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("skopeo %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// Seeded images, by name: in the plain registry at test/NAME:1 and in the
// secure one at seed/NAME:1.
//
//	multi  index: linux/amd64 and linux/arm64, gzip layers (OCI)
//	gzip   two gzip layers (OCI)
//	zstd   two zstd layers (OCI)
//	raw    one uncompressed layer (OCI)
//	user   Docker schema 2, USER 1000:1000, ENTRYPOINT, CMD, ENV, WORKDIR
func (f *fixture) seed() error {
	src := filepath.Join(f.dir, "seed-layout")
	p, err := layout.Write(src, empty.Index)
	if err != nil {
		return err
	}
	mk := func(arch, comp string, docker bool, cfg v1.Config, files ...map[string]string) v1.Image {
		var adds []mutate.Addendum
		for _, fs := range files {
			l := newTestLayer(fs, comp, docker)
			adds = append(adds, mutate.Addendum{Layer: l, MediaType: l.mt, History: v1.History{CreatedBy: "test layer", Created: v1.Time{Time: time.Unix(0, 0).UTC()}}})
		}
		base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
		if docker {
			base = mutate.MediaType(empty.Image, types.DockerManifestSchema2)
		}
		base, err = mutate.ConfigFile(base, &v1.ConfigFile{OS: "linux", Architecture: arch, Config: cfg, RootFS: v1.RootFS{Type: "layers"}})
		if err != nil {
			panic(err)
		}
		img, err := mutate.Append(base, adds...)
		if err != nil {
			panic(err)
		}
		return img
	}
	f.amd64 = mk("amd64", "gzip", false, v1.Config{}, map[string]string{"arch": "amd64"}, map[string]string{"etc/hostname": "multi\n"})
	f.arm64 = mk("arm64", "gzip", false, v1.Config{}, map[string]string{"arch": "arm64"}, map[string]string{"etc/hostname": "multi\n"})
	f.images["gzip"] = mk("amd64", "gzip", false, v1.Config{Env: []string{"PATH=/usr/bin"}}, map[string]string{"hello.txt": "hello gzip\n", "dir/a": "a"}, map[string]string{"dir/b": "b gzip"})
	f.images["zstd"] = mk("amd64", "zstd", false, v1.Config{}, map[string]string{"hello.txt": "hello zstd\n"}, map[string]string{"dir/z": strings.Repeat("zstd ", 1000)})
	f.images["raw"] = mk("amd64", "", false, v1.Config{}, map[string]string{"hello.txt": "hello uncompressed\n"})
	f.images["user"] = mk("amd64", "gzip", true, v1.Config{
		User: "1000:1000", Entrypoint: []string{"/bin/app", "--serve"}, Cmd: []string{"--port", "8080"},
		Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "APP_MODE=test"}, WorkingDir: "/srv/app",
	}, map[string]string{"bin/app": "#!/bin/sh\necho app\n", "srv/app/README": "app\n"})
	multi := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: f.amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: f.arm64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	multi = mutate.IndexMediaType(multi, types.OCIImageIndex)
	if err := p.AppendIndex(multi, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "multi"})); err != nil {
		return err
	}
	names := []string{"multi"}
	for n, img := range f.images {
		if n == "user" {
			continue // skopeo 1.9 reads only OCI manifests from an OCI layout
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": n})); err != nil {
			return err
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// --preserve-digests keeps every blob as written here (no
		// recompression); skopeo 1.9 refuses it for an index, whose instances
		// it copies unchanged anyway.
		keep := "--preserve-digests"
		if n == "multi" {
			keep = "--all"
		}
		if _, err := f.skopeo("copy", "--all", keep, "--dest-tls-verify=false", "oci:"+src+":"+n, "docker://"+f.plain.host+"/test/"+n+":1"); err != nil {
			return err
		}
		if _, err := f.skopeo("copy", "--all", keep, "--dest-cert-dir="+f.secure.certDir, "--dest-creds="+testUser+":"+testPassword, "oci:"+src+":"+n, "docker://"+f.secure.host+"/seed/"+n+":1"); err != nil {
			return err
		}
	}
	// The Docker schema 2 image goes in with go-containerregistry's own push.
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(f.secure.caFile)
	if err != nil {
		return err
	}
	pool.AppendCertsFromPEM(caPEM)
	tlsTransport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	for _, dst := range []struct {
		ref  string
		opts []remote.Option
	}{
		{f.plain.host + "/test/user:1", nil},
		{f.secure.host + "/seed/user:1", []remote.Option{remote.WithTransport(tlsTransport), remote.WithAuth(&authn.Basic{Username: testUser, Password: testPassword})}},
	} {
		ref, err := name.ParseReference(dst.ref)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, f.images["user"], dst.opts...); err != nil {
			return fmt.Errorf("seeding %s: %w", dst.ref, err)
		}
	}
	return nil
}

// testLayer is a layer made here, independently of the package under test.
type testLayer struct {
	compressed, uncompressed []byte
	mt                       types.MediaType
}

func newTestLayer(files map[string]string, comp string, docker bool) *testLayer {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	l := &testLayer{uncompressed: tb.Bytes()}
	var cb bytes.Buffer
	switch comp {
	case "gzip":
		zw := gzip.NewWriter(&cb)
		zw.Write(tb.Bytes())
		zw.Close()
		l.compressed, l.mt = cb.Bytes(), types.OCILayer
		if docker {
			l.mt = types.DockerLayer
		}
	case "zstd":
		zw, _ := zstd.NewWriter(&cb)
		zw.Write(tb.Bytes())
		zw.Close()
		l.compressed, l.mt = cb.Bytes(), types.OCILayerZStd
	default:
		l.compressed, l.mt = tb.Bytes(), types.OCIUncompressedLayer
		if docker {
			l.mt = types.DockerUncompressedLayer
		}
	}
	return l
}

func (l *testLayer) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.compressed))
	return h, err
}
func (l *testLayer) DiffID() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.uncompressed))
	return h, err
}
func (l *testLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}
func (l *testLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.uncompressed)), nil
}
func (l *testLayer) Size() (int64, error)                { return int64(len(l.compressed)), nil }
func (l *testLayer) MediaType() (types.MediaType, error) { return l.mt, nil }

// --- helpers used by the tests ---

func mustRef(t testing.TB, s string) Reference {
	t.Helper()
	r, err := ParseReference(s)
	if err != nil {
		t.Fatalf("ParseReference(%q): %v", s, err)
	}
	return r
}

// diffIDs lists an image's config diff IDs.
func diffIDs(t testing.TB, img v1.Image) []string {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range cf.RootFS.DiffIDs {
		out = append(out, d.String())
	}
	return out
}

// layerFiles reads every layer's tar (through Uncompressed, so digests are
// checked) and returns file name -> content, later layers winning.
func layerFiles(t testing.TB, img v1.Image) map[string]string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = string(b)
		}
		// Read to the end: the verification happens at EOF.
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	return files
}

// readAll streams every layer's blob and returns the first error.
func readAllLayers(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// ociDiffIDs reads the diff IDs of the only image in an OCI layout written by
// skopeo.
func ociDiffIDs(t testing.TB, dir string) []string {
	t.Helper()
	var idx v1.IndexManifest
	readJSON(t, filepath.Join(dir, "index.json"), &idx)
	if len(idx.Manifests) != 1 {
		t.Fatalf("%s: index.json lists %d manifests", dir, len(idx.Manifests))
	}
	var m v1.Manifest
	readJSON(t, filepath.Join(dir, "blobs", "sha256", idx.Manifests[0].Digest.Hex), &m)
	var cf v1.ConfigFile
	readJSON(t, filepath.Join(dir, "blobs", "sha256", m.Config.Digest.Hex), &cf)
	var out []string
	for _, d := range cf.RootFS.DiffIDs {
		out = append(out, d.String())
	}
	return out
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// guardTransport records every request's host and refuses any that is not
// on 127.0.0.1, so that no test traffic leaves the machine.
type guardTransport struct {
	mu    sync.Mutex
	hosts []string
	base  http.RoundTripper
}

func newGuard() *guardTransport {
	return &guardTransport{base: http.DefaultTransport.(*http.Transport).Clone()}
}

func (g *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	g.mu.Lock()
	g.hosts = append(g.hosts, req.URL.Host)
	g.mu.Unlock()
	if h, _, _ := net.SplitHostPort(req.URL.Host); h != "127.0.0.1" {
		return nil, fmt.Errorf("test guard: request to %s refused", req.URL.Host)
	}
	return g.base.RoundTrip(req)
}

func (g *guardTransport) seen() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.hosts...)
}

var _ = context.Background
