package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/source/util/pathutil"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/snapbuild/snapbuild/internal/atomicfile"
	"github.com/snapbuild/snapbuild/internal/build"
)

const (
	httpScheme  = "http://"
	httpsScheme = "https://"
)

// Secrets that authenticate downloads from a host when the source names no
// secret of its own (BuildKit's HTTP_AUTH_HEADER_<host> and
// HTTP_AUTH_TOKEN_<host>): the first is the whole Authorization header, the
// second a bearer token.
const (
	httpAuthHeaderSecretPrefix = "HTTP_AUTH_HEADER_"
	httpAuthTokenSecretPrefix  = "HTTP_AUTH_TOKEN_"
)

// WithHTTPClient makes c the client that downloads http:// and https://
// sources (ADD URL). It must follow redirects; its Timeout, if any, bounds
// a whole download.
// The default is http.DefaultClient (proxies from the environment, no
// timeout: a download ends with the build's context).
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("http client: the client is nil")
		}
		o.client = c
		return nil
	}
}

// httpSource is an http:// or https:// source op, as llb.HTTP writes it.
type httpSource struct {
	url      *url.URL
	checksum digest.Digest // http.checksum: the content's digest, or ""
	filename string        // http.filename: the file's name, or ""
	perm     int           // http.perm: the file's mode; 0 means 0600
	uid, gid int           // http.uid, http.gid: the file's owner
	auth     string        // http.authheadersecret: the Authorization header's secret ID
	header   http.Header   // http.header.accept, http.header.user-agent
	ident    string        // the identifier and attrs, naming the download in Worker.fetches
}

// userHeaders are the request headers a source may set (BuildKit's list).
var userHeaders = map[string]bool{"Accept": true, "User-Agent": true}

// parseHTTPSource reads the URL and the attrs of an http source op.
func parseHTTPSource(op *pb.SourceOp) (*httpSource, error) {
	u, err := url.Parse(op.Identifier)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", redactURL(op.Identifier), err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("source %q: not an http:// or https:// URL with a host", u.Redacted())
	}
	s := &httpSource{url: u, header: http.Header{}}
	num := func(k, v string) (int, error) {
		i, err := strconv.ParseInt(v, 0, 32)
		if err != nil || i < 0 {
			return 0, fmt.Errorf("source %s: attribute %s=%q: want a non-negative number", u.Redacted(), k, v)
		}
		return int(i), nil
	}
	for k, v := range op.Attrs {
		switch k {
		case pb.AttrHTTPChecksum:
			d, err := digest.Parse(v)
			if err != nil {
				return nil, fmt.Errorf("source %s: attribute %s=%q: %w (want ALGORITHM:HEX, e.g. sha256:…)", u.Redacted(), k, v, err)
			}
			s.checksum = d
		case pb.AttrHTTPFilename:
			s.filename = v
		case pb.AttrHTTPPerm:
			if s.perm, err = num(k, v); err != nil {
				return nil, err
			}
			if s.perm > 0o7777 {
				return nil, fmt.Errorf("source %s: attribute %s=%q: not a file mode", u.Redacted(), k, v)
			}
		case pb.AttrHTTPUID:
			if s.uid, err = num(k, v); err != nil {
				return nil, err
			}
		case pb.AttrHTTPGID:
			if s.gid, err = num(k, v); err != nil {
				return nil, err
			}
		case pb.AttrHTTPAuthHeaderSecret:
			s.auth = v
		case pb.AttrHTTPSignatureVerify, pb.AttrHTTPSignatureVerifyPubKey:
			return nil, fmt.Errorf("source %s: PGP signature verification of downloads (%s) is not supported by this worker: pin the content with a checksum (ADD --checksum) instead", u.Redacted(), k)
		default:
			if name, ok := strings.CutPrefix(k, pb.AttrHTTPHeaderPrefix); ok {
				if name = http.CanonicalHeaderKey(name); userHeaders[name] {
					s.header.Set(name, v)
				}
			}
		}
	}
	keys := make([]string, 0, len(op.Attrs))
	for k := range op.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ident := op.Identifier
	for _, k := range keys {
		ident += "\x00" + k + "=" + op.Attrs[k]
	}
	s.ident = ident
	return s, nil
}

// redactURL hides the password of a URL that may not parse.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}

// download is a file fetched for an http source, waiting under the
// Worker's tmp dir for Source to take it.
type download struct {
	path    string // the downloaded file
	name    string // its name in the source's filesystem
	digest  digest.Digest
	modTime *time.Time // from Last-Modified
}

// httpKey is the content key of an http source: the content's digest and
// what else makes the source's file (BuildKit's formatCacheKey: name,
// mode, owner, Last-Modified).
func (s *httpSource) key(d *download) (digest.Digest, error) {
	var mod string
	if d.modTime != nil {
		mod = d.modTime.UTC().Format(http.TimeFormat)
	}
	b, err := json.Marshal(struct {
		Filename       string
		Perm, UID, GID int
		Checksum       digest.Digest
		LastModTime    string `json:",omitempty"`
	}{d.name, s.perm, s.uid, s.gid, d.digest, mod})
	if err != nil {
		return "", err
	}
	return digest.FromBytes(b), nil
}

// httpContentKey is ContentKey for an http source: "" when the source pins
// its content with a checksum (nothing is fetched; the op names the
// content), else the download's httpKey. The download waits for Source
// (or the next ContentKey of the same source, or Close).
func (w *Worker) httpContentKey(ctx context.Context, op *pb.SourceOp) (digest.Digest, error) {
	s, err := parseHTTPSource(op)
	if err != nil {
		return "", err
	}
	if s.checksum != "" {
		return "", nil
	}
	// Asked anew for every solve: what the URL serves may have changed
	// since an earlier download. A server that answers 304 Not Modified
	// to the ETag of the last download sends nothing: the key is the
	// recorded one, and Source downloads only if it runs.
	mu := w.fetchLock(s.ident)
	mu.Lock()
	defer mu.Unlock()
	rec := w.readHTTPRecord(s)
	d, err := w.fetch(ctx, s, rec.ETag)
	if errors.Is(err, errNotModified) {
		d, err = &download{name: rec.Name, digest: rec.Digest, modTime: rec.modTime()}, nil
	}
	if err != nil {
		return "", err
	}
	w.mu.Lock()
	old := w.fetches[s.ident]
	w.fetches[s.ident] = d
	w.mu.Unlock()
	if old != nil && old.path != "" {
		os.RemoveAll(filepath.Dir(old.path))
	}
	return s.key(d)
}

// httpSourceRef is Source for an http source: a snapshot holding one file,
// the download (the one ContentKey made, else a new one), named by the
// source's filename, its Content-Disposition or its URL's last element,
// with the source's mode (default 0600) and owner, and Last-Modified as its
// mtime (1970-01-01 without one), as BuildKit's http source makes it. It is
// committed as one layer.
func (w *Worker) httpSourceRef(ctx context.Context, op *pb.SourceOp) (build.Ref, error) {
	s, err := parseHTTPSource(op)
	if err != nil {
		return nil, err
	}
	mu := w.fetchLock(s.ident)
	mu.Lock()
	defer mu.Unlock()
	w.mu.Lock()
	d := w.fetches[s.ident]
	delete(w.fetches, s.ident)
	w.mu.Unlock()
	if d == nil || d.path == "" {
		got, err := w.fetch(ctx, s, "")
		if err != nil {
			return nil, err
		}
		// The content key came from a 304 Not Modified: the bytes
		// must be those it names.
		if d != nil && got.digest != d.digest {
			os.RemoveAll(filepath.Dir(got.path))
			return nil, fmt.Errorf("downloading %s: the content changed during the build (digest %s, the server said it was still %s): build again", s.url.Redacted(), got.digest, d.digest)
		}
		d = got
	}
	defer os.RemoveAll(filepath.Dir(d.path))

	a, err := w.snaps.Prepare("")
	if err != nil {
		return nil, err
	}
	p := filepath.Join(a.Rootfs, d.name)
	if err := moveFile(d.path, p); err != nil {
		a.Remove()
		return nil, fmt.Errorf("source %s: %w", s.url.Redacted(), err)
	}
	perm := s.perm
	if perm == 0 {
		perm = 0o600
	}
	mtime := time.Unix(0, 0)
	if d.modTime != nil {
		mtime = *d.modTime
	}
	err = os.Lchown(p, s.uid, s.gid)
	if err == nil {
		err = unix.Chmod(p, uint32(perm)) // raw bits: setuid and the like too
	}
	if err == nil {
		err = os.Chtimes(p, mtime, mtime)
	}
	if err != nil {
		a.Remove()
		return nil, fmt.Errorf("source %s: %w", s.url.Redacted(), err)
	}
	return w.commit(ctx, a, nil)
}

// fetchLock returns the lock of the download named ident.
func (w *Worker) fetchLock(ident string) *sync.Mutex {
	return keyedLock(&w.mu, w.fetchMu, ident)
}

// errNotModified is fetch's answer to a 304 Not Modified.
var errNotModified = errors.New("not modified")

// fetch downloads s into a new directory under the Worker's tmp dir,
// checking the source's checksum when it has one, and records the
// download's ETag (see httpRecord). With etag set it asks for the content
// only if it no longer has that ETag (If-None-Match), and returns
// errNotModified when the server says so.
func (w *Worker) fetch(ctx context.Context, s *httpSource, etag string) (*download, error) {
	where := s.url.Redacted()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", where, err)
	}
	req.Header.Set("User-Agent", "snapbuild")
	for k, v := range s.header {
		req.Header[k] = v
	}
	if err := w.authorize(ctx, req, s); err != nil {
		return nil, err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	client := w.opts.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("downloading %s: %w", where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && etag != "" {
		return nil, errNotModified
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("downloading %s: the server answered %s", where, resp.Status)
	}

	dir, err := w.tempDir("http-")
	if err != nil {
		return nil, err
	}
	d := &download{path: filepath.Join(dir, "content"), name: httpFileName(s.url, s.filename, resp)}
	algo := digest.SHA256
	if s.checksum != "" {
		algo = s.checksum.Algorithm()
		if !algo.Available() {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("source %s: checksum %s: the algorithm %s is not available (use sha256, sha384 or sha512)", where, s.checksum, algo)
		}
	}
	f, err := os.OpenFile(d.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	dg := algo.Digester()
	_, err = io.Copy(io.MultiWriter(f, dg.Hash()), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("downloading %s: %w", where, err)
	}
	d.digest = dg.Digest()
	if s.checksum != "" && d.digest != s.checksum {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("downloading %s: checksum mismatch: expected %s (ADD --checksum), got %s", where, s.checksum, d.digest)
	}
	lm := resp.Header.Get("Last-Modified")
	if lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			d.modTime = &t
		}
	}
	if tag := resp.Header.Get("ETag"); tag != "" && s.checksum == "" {
		w.writeHTTPRecord(s, httpRecord{ETag: tag, Digest: d.digest, Name: d.name, LastModified: lm})
	}
	return d, nil
}

// httpRecord is what the Worker keeps of the last download of an http
// source that had an ETag, under its dir (http/<sha256 of the source>.json),
// so that a later build can ask the server whether the content changed
// (If-None-Match) instead of downloading it again, as BuildKit does.
type httpRecord struct {
	ETag         string        `json:"etag"`
	Digest       digest.Digest `json:"digest"`
	Name         string        `json:"name"`
	LastModified string        `json:"lastModified,omitempty"`
}

func (r httpRecord) modTime() *time.Time {
	if r.LastModified == "" {
		return nil
	}
	t, err := http.ParseTime(r.LastModified)
	if err != nil {
		return nil
	}
	return &t
}

func (w *Worker) httpRecordPath(s *httpSource) string {
	return filepath.Join(w.dir, "http", digest.FromString(s.ident).Encoded()+".json")
}

// readHTTPRecord returns the record of s; one that is missing or unusable
// is empty (the next download replaces it).
func (w *Worker) readHTTPRecord(s *httpSource) httpRecord {
	var r httpRecord
	b, err := os.ReadFile(w.httpRecordPath(s))
	if err != nil || json.Unmarshal(b, &r) != nil || r.Digest.Validate() != nil || r.Name == "" {
		return httpRecord{}
	}
	return r
}

// writeHTTPRecord records r for s. A record that cannot be written only
// costs a download next time: the error is dropped.
func (w *Worker) writeHTTPRecord(s *httpSource, r httpRecord) {
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	p := w.httpRecordPath(s)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	atomicfile.Write(p, append(b, '\n'), 0o600)
}

// authorize sets the Authorization header of a download from the secret
// the source names (http.authheadersecret, which must exist), else from the
// secrets HTTP_AUTH_HEADER_<host> or HTTP_AUTH_TOKEN_<host> when the
// Worker's store has them, as BuildKit does.
func (w *Worker) authorize(ctx context.Context, req *http.Request, s *httpSource) error {
	if s.auth != "" {
		v, _, err := w.secret(ctx, s.auth, false, "the Authorization header of "+s.url.Redacted())
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", string(v))
		return nil
	}
	if w.opts.secrets == nil {
		return nil
	}
	host := s.url.Hostname()
	if v, ok, err := w.secret(ctx, httpAuthHeaderSecretPrefix+host, true, "the Authorization header of "+s.url.Redacted()); err != nil {
		return err
	} else if ok {
		req.Header.Set("Authorization", string(v))
		return nil
	}
	if v, ok, err := w.secret(ctx, httpAuthTokenSecretPrefix+host, true, "the Authorization header of "+s.url.Redacted()); err != nil {
		return err
	} else if ok {
		req.Header.Set("Authorization", "Bearer "+string(v))
	}
	return nil
}

// httpFileName is the name of a downloaded file, as BuildKit's http source
// chooses it: the source's filename, else the response's
// Content-Disposition filename, else the URL path's last element, else
// "download"; never a path, a control character or "..".
func httpFileName(u *url.URL, filename string, resp *http.Response) string {
	if filename != "" {
		return pathutil.SafeFileName(filename)
	}
	if resp != nil {
		if cd := resp.Header.Get("Content-Disposition"); cd != "" {
			if _, params, err := mime.ParseMediaType(cd); err == nil {
				if fn := params["filename"]; fn != "" && !strings.HasSuffix(fn, "/") {
					if base := filepath.Base(filepath.FromSlash(fn)); base != "" {
						return pathutil.SafeFileName(base)
					}
				}
			}
		}
	}
	if base := path.Base(u.Path); base != "." && base != "/" {
		return pathutil.SafeFileName(base)
	}
	return pathutil.SafeFileName("")
}

// moveFile renames src to dst, or copies it across filesystems.
func moveFile(src, dst string) error {
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, unix.EXDEV) {
		return err
	}
	return copyFileData(src, dst)
}
