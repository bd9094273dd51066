package worker

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/dockerfile"
)

// fileServer serves files from memory on 127.0.0.1, with a Last-Modified
// header and an ETag (the content's digest), answers 304 Not Modified to
// an If-None-Match with the current ETag, and counts the requests and the
// 304 answers per path. Other paths are 404.
type fileServer struct {
	*httptest.Server
	modTime time.Time

	mu          sync.Mutex
	files       map[string]string
	hits        map[string]int
	notModified map[string]int
}

func newFileServer(t *testing.T, files map[string]string) *fileServer {
	t.Helper()
	fsrv := &fileServer{files: files, hits: map[string]int{}, notModified: map[string]int{},
		modTime: time.Date(1975, 5, 5, 12, 0, 0, 0, time.UTC)}
	fsrv.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fsrv.mu.Lock()
		defer fsrv.mu.Unlock()
		fsrv.hits[r.URL.Path]++
		data, ok := fsrv.files[r.URL.Path]
		if !ok {
			http.NotFound(rw, r)
			return
		}
		etag := `"` + digest.FromString(data).Encoded() + `"`
		rw.Header().Set("ETag", etag)
		rw.Header().Set("Last-Modified", fsrv.modTime.Format(http.TimeFormat))
		if r.Header.Get("If-None-Match") == etag {
			fsrv.notModified[r.URL.Path]++
			rw.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(rw, data)
	}))
	t.Cleanup(fsrv.Close)
	if u, _ := url.Parse(fsrv.URL); u.Hostname() != "127.0.0.1" {
		t.Fatalf("the test server listens on %s, not 127.0.0.1", fsrv.URL)
	}
	return fsrv
}

func (f *fileServer) set(p, data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[p] = data
}

func (f *fileServer) count(p string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[p]
}

func (f *fileServer) count304(p string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.notModified[p]
}

// TestSolveADDURL solves ADD of URLs, without and with --checksum and with
// --chmod and --chown, then checks the files (content, mode 0600 by
// default as in Docker, owner, Last-Modified as mtime) in the result and in
// its layers; that a second solve with unchanged content runs nothing (the
// unpinned file is fetched again to learn its digest, the pinned one not
// at all); and that a changed file makes the source and what depends on it
// run again.
func TestSolveADDURL(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	srv := newFileServer(t, map[string]string{
		"/files/hello.txt":  "hello over http\n",
		"/files/pinned.txt": "pinned content\n",
	})
	w := newWorker(t, WithHTTPClient(srv.Client()))
	resolver := toolsBase(t, w)
	pinned := digest.FromString("pinned content\n")
	df := fmt.Sprintf(`FROM base
ADD %[1]s/files/hello.txt /dl/
ADD --checksum=%[2]s %[1]s/files/pinned.txt /dl/pinned.txt
ADD --chmod=0755 --chown=app:app %[1]s/files/hello.txt /dl/tool
RUN cat /dl/hello.txt /dl/pinned.txt > /dl/both.txt
`, srv.URL, pinned)
	conv, err := dockerfile.Convert(ctx, []byte(df), dockerfile.Options{MetaResolver: resolver})
	must(t, err)
	var mu sync.Mutex
	var ran []string
	s, err := build.NewSolver(w, build.WithCache(w.Cache()), build.WithKeySalt(w.KeySalt()), build.WithProgress(func(e build.Event) {
		if e.Kind == build.VertexStarted {
			mu.Lock()
			ran = append(ran, e.Vertex.Name)
			mu.Unlock()
		}
	}))
	must(t, err)
	res, err := s.Solve(ctx, conv.Definition)
	if err != nil {
		t.Fatalf("solve: %v", err)
	}
	r := res.Ref.(*Ref)
	root, release, err := w.view(ctx, r)
	must(t, err)
	for _, c := range []struct {
		rel, data string
		mode      uint32
		uid       uint32
	}{
		{"dl/hello.txt", "hello over http\n", 0o600, 0},
		{"dl/pinned.txt", "pinned content\n", 0o600, 0},
		{"dl/tool", "hello over http\n", 0o755, 1000},
		{"dl/both.txt", "hello over http\npinned content\n", 0o644, 0},
	} {
		b, err := os.ReadFile(filepath.Join(root, c.rel))
		if err != nil || string(b) != c.data {
			t.Errorf("/%s = %q, %v; want %q", c.rel, b, err, c.data)
			continue
		}
		st := lstat(t, filepath.Join(root, c.rel))
		if st.Mode&0o7777 != c.mode || st.Uid != c.uid || st.Gid != c.uid {
			t.Errorf("/%s: mode %o owner %d:%d, want %o %d:%d", c.rel, st.Mode&0o7777, st.Uid, st.Gid, c.mode, c.uid, c.uid)
		}
		if c.rel != "dl/both.txt" && st.Mtim.Sec != srv.modTime.Unix() {
			t.Errorf("/%s: mtime %s, want Last-Modified %s", c.rel, time.Unix(st.Mtim.Sec, 0).UTC(), srv.modTime)
		}
	}
	release()
	// The layer of the first ADD holds the file with its mode and mtime
	// (before the 1980 clamp, so kept).
	found := false
	for _, l := range r.Layers[1:] {
		rc, err := w.blobs.OpenLayer(l)
		must(t, err)
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			must(t, err)
			if h.Name == "dl/hello.txt" {
				found = true
				if h.Mode&0o7777 != 0o600 || !h.ModTime.Equal(srv.modTime) {
					t.Errorf("layer entry dl/hello.txt: mode %o mtime %s, want 600 %s", h.Mode, h.ModTime, srv.modTime)
				}
			}
		}
		rc.Close()
	}
	if !found {
		t.Error("no layer holds dl/hello.txt")
	}
	if n := srv.count("/files/hello.txt"); n != 1 {
		t.Errorf("hello.txt fetched %d times in the first solve, want 1 (the content key's download reused by the source)", n)
	}
	if n := srv.count("/files/pinned.txt"); n != 1 {
		t.Errorf("pinned.txt fetched %d times in the first solve, want 1", n)
	}

	// Unchanged: all from the cache.
	ran = nil
	res2, err := s.Solve(ctx, conv.Definition)
	must(t, err)
	if len(ran) > 0 {
		t.Errorf("second solve ran %q, want nothing", ran)
	}
	if res2.Key != res.Key {
		t.Errorf("second solve: key %s, want %s", res2.Key, res.Key)
	}
	if n := srv.count("/files/pinned.txt"); n != 1 {
		t.Errorf("pinned.txt fetched %d times after two solves, want 1: a checksum names the content", n)
	}
	// The unpinned file was asked for again, with the ETag of the first
	// download, and not sent (its two ADDs share one source vertex).
	if n, n304 := srv.count("/files/hello.txt"), srv.count304("/files/hello.txt"); n != 2 || n304 != 1 {
		t.Errorf("hello.txt: %d requests, %d answered 304 after two solves; want 2 and 1", n, n304)
	}

	// Changed: the source and everything above it run again.
	srv.set("/files/hello.txt", "changed\n")
	ran = nil
	res3, err := s.Solve(ctx, conv.Definition)
	must(t, err)
	if res3.Key == res.Key {
		t.Error("third solve (changed content): same key")
	}
	reran := strings.Join(ran, "\n")
	for _, want := range []string{"hello.txt", "RUN cat"} {
		if !strings.Contains(reran, want) {
			t.Errorf("third solve ran %q, want a vertex with %q", ran, want)
		}
	}
	root, release, err = w.view(ctx, res3.Ref.(*Ref))
	must(t, err)
	defer release()
	if b, err := os.ReadFile(filepath.Join(root, "dl/both.txt")); err != nil || string(b) != "changed\npinned content\n" {
		t.Errorf("/dl/both.txt after the change = %q, %v", b, err)
	}
}

// TestADDURLErrors checks the errors of http sources: a checksum that does
// not match (naming the URL, the expected and the actual digest), a 404
// (naming the URL and the status), a server that is not there.
func TestADDURLErrors(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	srv := newFileServer(t, map[string]string{"/f": "content\n"})
	w := newWorker(t, WithHTTPClient(srv.Client()))
	resolver := toolsBase(t, w)
	s, err := build.NewSolver(w)
	must(t, err)
	wrong := digest.FromString("other")
	// A port nothing listens on: a server closed right away.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, c := range []struct {
		df   string
		want []string
	}{
		{fmt.Sprintf("FROM base\nADD --checksum=%s %s/f /f\n", wrong, srv.URL),
			[]string{srv.URL + "/f", "checksum mismatch", "expected " + wrong.String(), "got " + digest.FromString("content\n").String()}},
		{fmt.Sprintf("FROM base\nADD %s/missing /m\n", srv.URL),
			[]string{"downloading " + srv.URL + "/missing", "404 Not Found"}},
		{fmt.Sprintf("FROM base\nADD %s/f /f\n", gone.URL),
			[]string{"downloading " + gone.URL + "/f", "connection refused"}},
	} {
		conv, err := dockerfile.Convert(ctx, []byte(c.df), dockerfile.Options{MetaResolver: resolver})
		must(t, err)
		_, err = s.Solve(ctx, conv.Definition)
		if err == nil {
			t.Errorf("%q: solved, want an error", c.df)
			continue
		}
		for _, want := range c.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q: %v; want an error with %q", c.df, err, want)
			}
		}
	}
}

// TestHTTPSource checks an http source op directly: the file name from
// Content-Disposition when the op names none, the mode, owner and
// Authorization header from the attrs and the secret store, and a checksum
// in another algorithm than sha256.
func TestHTTPSource(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		rw.Header().Set("Content-Disposition", `attachment; filename="../named.bin"`)
		io.WriteString(rw, "payload")
	}))
	defer srv.Close()
	w := newWorker(t, WithHTTPClient(srv.Client()), WithSecrets(SecretMap{"HTTP_AUTH_TOKEN_127.0.0.1": []byte("tkn")}))
	op := &pb.SourceOp{Identifier: srv.URL + "/get?x=1", Attrs: map[string]string{
		pb.AttrHTTPPerm: "0640", pb.AttrHTTPUID: "1000", pb.AttrHTTPGID: "1001",
	}}
	k1, err := w.ContentKey(ctx, op)
	must(t, err)
	if err := k1.Validate(); err != nil {
		t.Fatalf("ContentKey = %q: %v", k1, err)
	}
	ref, err := w.Source(ctx, op)
	must(t, err)
	r := ref.(*Ref)
	if len(r.Layers) != 1 {
		t.Fatalf("http source has %d layers, want 1", len(r.Layers))
	}
	root, release, err := w.view(ctx, r)
	must(t, err)
	defer release()
	b, err := os.ReadFile(filepath.Join(root, "named.bin"))
	if err != nil || string(b) != "payload" {
		t.Errorf("named.bin = %q, %v", b, err)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(root, "named.bin"), &st))
	if st.Mode&0o7777 != 0o640 || st.Uid != 1000 || st.Gid != 1001 {
		t.Errorf("named.bin: mode %o owner %d:%d, want 640 1000:1001", st.Mode&0o7777, st.Uid, st.Gid)
	}
	if gotAuth != "Bearer tkn" {
		t.Errorf("Authorization = %q, want the HTTP_AUTH_TOKEN_<host> secret as a bearer token", gotAuth)
	}

	// Another mode: another content key for the same content.
	op2 := &pb.SourceOp{Identifier: op.Identifier, Attrs: map[string]string{pb.AttrHTTPPerm: "0600"}}
	k2, err := w.ContentKey(ctx, op2)
	must(t, err)
	if k2 == k1 {
		t.Error("ContentKey ignores http.perm")
	}
	// A pinned source: no content key, nothing fetched; sha512 checks.
	sum := digest.SHA512.FromString("payload")
	op3 := &pb.SourceOp{Identifier: op.Identifier, Attrs: map[string]string{pb.AttrHTTPChecksum: sum.String()}}
	if k, err := w.ContentKey(ctx, op3); err != nil || k != "" {
		t.Errorf("ContentKey(pinned) = %q, %v; want \"\"", k, err)
	}
	if _, err := w.Source(ctx, op3); err != nil {
		t.Errorf("Source(pinned by sha512) = %v", err)
	}
	for _, c := range []struct {
		attrs map[string]string
		want  string
	}{
		{map[string]string{pb.AttrHTTPChecksum: "md5:abc"}, "attribute http.checksum"},
		{map[string]string{pb.AttrHTTPPerm: "rw"}, "attribute http.perm"},
		{map[string]string{pb.AttrHTTPUID: "-1"}, "attribute http.uid"},
		{map[string]string{pb.AttrHTTPSignatureVerify: "sig", pb.AttrHTTPSignatureVerifyPubKey: "key"}, "PGP signature verification"},
		{map[string]string{pb.AttrHTTPAuthHeaderSecret: "nosuch"}, `secret "nosuch", required for the Authorization header`},
	} {
		_, err := w.ContentKey(ctx, &pb.SourceOp{Identifier: op.Identifier, Attrs: c.attrs})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ContentKey(%v) = %v, want an error with %q", c.attrs, err, c.want)
		}
	}
}

// TestHTTPNotModified checks the revalidation of an http source: a second
// ContentKey sends the ETag of the first download and gets the same key
// from a 304 without the content; Source then downloads it, and fails if
// the bytes are no longer those the key names.
func TestHTTPNotModified(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	srv := newFileServer(t, map[string]string{"/f": "one\n"})
	w := newWorker(t, WithHTTPClient(srv.Client()))
	op := &pb.SourceOp{Identifier: srv.URL + "/f", Attrs: map[string]string{pb.AttrHTTPFilename: "f"}}
	k1, err := w.ContentKey(ctx, op)
	must(t, err)
	k2, err := w.ContentKey(ctx, op)
	must(t, err)
	if k1 != k2 || srv.count304("/f") != 1 {
		t.Fatalf("second ContentKey: key %s (first %s), %d answers 304; want the same key from one 304", k2, k1, srv.count304("/f"))
	}
	ref, err := w.Source(ctx, op)
	must(t, err)
	root, release, err := w.view(ctx, ref.(*Ref))
	must(t, err)
	b, err := os.ReadFile(filepath.Join(root, "f"))
	release()
	if err != nil || string(b) != "one\n" {
		t.Errorf("f = %q, %v; want \"one\\n\"", b, err)
	}
	if n := srv.count("/f"); n != 3 {
		t.Errorf("%d requests, want 3 (download, 304, download for Source)", n)
	}

	_, err = w.ContentKey(ctx, op)
	must(t, err)
	srv.set("/f", "two\n")
	_, err = w.Source(ctx, op)
	if err == nil || !strings.Contains(err.Error(), "the content changed during the build") || !strings.Contains(err.Error(), srv.URL+"/f") {
		t.Errorf("Source after a change since the 304 = %v, want an error naming the URL and the change", err)
	}
	// And a new ContentKey sees the change.
	k3, err := w.ContentKey(ctx, op)
	must(t, err)
	if k3 == k1 {
		t.Error("ContentKey after the change: the old key")
	}
}

// TestHTTPFileName checks the name of a download against BuildKit's rules.
func TestHTTPFileName(t *testing.T) {
	resp := func(cd string) *http.Response {
		h := http.Header{}
		if cd != "" {
			h.Set("Content-Disposition", cd)
		}
		return &http.Response{Header: h}
	}
	for _, c := range []struct {
		url, filename, cd, want string
	}{
		{"https://example.invalid/a/b.tar.gz", "", "", "b.tar.gz"},
		{"https://example.invalid/a/b.tar.gz", "given", `attachment; filename="cd.txt"`, "given"},
		{"https://example.invalid/a/b", "", `attachment; filename="cd.txt"`, "cd.txt"},
		{"https://example.invalid/a/b", "", `attachment; filename="../../etc/passwd"`, "passwd"},
		{"https://example.invalid/a/b", "", `attachment; filename="dir/"`, "b"},
		{"https://example.invalid/", "", "", "download"},
		{"https://example.invalid", "", "", "download"},
		{"https://example.invalid/x", "..", "", "download"},
	} {
		u, err := url.Parse(c.url)
		must(t, err)
		if got := httpFileName(u, c.filename, resp(c.cd)); got != c.want {
			t.Errorf("httpFileName(%s, %q, %q) = %q, want %q", c.url, c.filename, c.cd, got, c.want)
		}
	}
}
