package worker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/dockerfile"
	"github.com/snapbuild/snapbuild/internal/testimage"
)

// toolsBase loads into w an image like baseLayout's with tr too, and
// returns a resolver that answers every reference with it.
func toolsBase(t *testing.T, w *Worker) dockerfile.MetaResolver {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	must(t, testimage.WriteLayout(dir, testimage.Spec{
		Tag:   "base",
		Tools: []string{"sh", "cat", "id", "ls", "mkdir", "touch", "stat", "tr"},
		Dirs:  []string{"/etc", "/tmp", "/root", "/home/app", "/usr/local/bin"},
		Files: map[string]string{
			"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
			"/etc/group":  "root:x:0:\napp:x:1000:\n",
		},
	}))
	d, cfg := loadLayout(t, w, dir)
	return dockerfile.MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
		return d, cfg, nil
	})
}

// secretFreeLayers returns the names of the entries of every layer of r above
// the base, and fails if a layer's content holds secret.
func secretFreeLayers(t *testing.T, w *Worker, r *Ref, secret []byte) []string {
	t.Helper()
	var names []string
	for i, l := range r.Layers[1:] {
		rc, err := w.blobs.OpenLayer(l)
		must(t, err)
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			must(t, err)
			names = append(names, h.Name)
			b, err := io.ReadAll(tr)
			must(t, err)
			if bytes.Contains(b, secret) || strings.Contains(h.Name, string(secret)) {
				t.Errorf("layer %d: %s holds the secret", i+1, h.Name)
			}
			for k, v := range h.PAXRecords {
				if strings.Contains(v, string(secret)) {
					t.Errorf("layer %d: %s: PAX record %s holds the secret", i+1, h.Name, k)
				}
			}
		}
		rc.Close()
	}
	return names
}

// noFileHolds fails if a regular file under root holds secret.
func noFileHolds(t *testing.T, root string, secret []byte) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		n++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, secret) {
			t.Errorf("%s holds the secret", p)
		}
		return nil
	})
	must(t, err)
	if n == 0 {
		t.Fatalf("no files under %s: the walk checked nothing", root)
	}
}

// TestSolveSecrets solves RUN --mount=type=secret in its forms: the
// default target /run/secrets/ID; a target of one's own with uid, gid and
// mode, read-only; env=NAME; optional secrets the store lacks (no file, no
// variable). The steps write the secret upper-cased, so that the result
// proves it was read while the secret itself (lower case) must be found in
// no layer, in no file of the stores or the worker's dir after the solve,
// and no mount target may be left in a layer.
func TestSolveSecrets(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	secret := []byte("s3cr3t-value-lower")
	w := newWorker(t, WithSecrets(SecretMap{"tok": secret}))
	resolver := toolsBase(t, w)
	df := `FROM base
RUN --mount=type=secret,id=tok tr a-z A-Z < /run/secrets/tok > /default.txt
RUN --mount=type=secret,id=tok,target=/etc/tok,uid=1000,gid=1000,mode=0440 stat -c '%u:%g %a' /etc/tok > /etc-tok.txt && (echo x > /etc/tok) 2>/dev/null || echo read-only > /etc-tok-ro.txt
RUN --mount=type=secret,id=tok,env=TOKEN echo "$TOKEN" | tr a-z A-Z > /env.txt && (test -e /run/secrets/tok && echo file || echo no-file) > /env-file.txt
RUN --mount=type=secret,id=missing (test -e /run/secrets/missing && echo present || echo absent) > /optional.txt
RUN --mount=type=secret,id=missing,env=MISSING echo "${MISSING-unset}" > /optional-env.txt
USER app
RUN --mount=type=secret,id=tok,target=/home/app/tok,uid=1000,mode=0400 tr a-z A-Z < /home/app/tok > /tmp/user.txt
`
	conv, err := dockerfile.Convert(ctx, []byte(df), dockerfile.Options{MetaResolver: resolver})
	must(t, err)
	s, err := build.NewSolver(w, build.WithCache(w.Cache()), build.WithKeySalt(w.KeySalt()))
	must(t, err)
	res, err := s.Solve(ctx, conv.Definition)
	if err != nil {
		t.Fatalf("solve: %v", err)
	}
	r := res.Ref.(*Ref)
	root, release, err := w.view(ctx, r)
	must(t, err)
	defer release()
	upper := "S3CR3T-VALUE-LOWER"
	for rel, want := range map[string]string{
		"default.txt":      upper,
		"etc-tok.txt":      "1000:1000 440\n",
		"etc-tok-ro.txt":   "read-only\n",
		"env.txt":          upper + "\n",
		"env-file.txt":     "no-file\n",
		"optional.txt":     "absent\n",
		"optional-env.txt": "unset\n",
		"tmp/user.txt":     upper,
	} {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil || string(b) != want {
			t.Errorf("/%s = %q, %v; want %q", rel, b, err, want)
		}
	}
	for _, rel := range []string{"run", "etc/tok", "home/app/tok"} {
		if _, err := os.Lstat(filepath.Join(root, rel)); err == nil {
			t.Errorf("/%s (a secret's mount target) is in the image", rel)
		}
	}
	for _, name := range secretFreeLayers(t, w, r, secret) {
		if strings.HasPrefix(name, "run") || strings.HasSuffix(name, "tok") {
			t.Errorf("a layer holds %s, a secret's mount target", name)
		}
	}
	// Nothing the worker, the snapshots or the blob store keep holds it,
	// and no secret's tmpfs is left.
	noFileHolds(t, filepath.Dir(w.dir), secret)
	left, err := filepath.Glob(filepath.Join(w.dir, "run", "secret-*"))
	must(t, err)
	if len(left) > 0 {
		t.Errorf("secret directories left behind: %q", left)
	}
}

// TestSecretErrors checks that a required secret the store lacks fails the
// op with an error naming the secret and wrapping ErrSecretNotFound, for a
// mount and for an environment variable, that a store's other errors fail
// the op even for an optional secret, and that a value with a NUL byte is
// refused as an environment variable.
func TestSecretErrors(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	w := newWorker(t, WithSecrets(failingStore{"nul": []byte("a\x00b")}))
	resolver := toolsBase(t, w)
	s, err := build.NewSolver(w)
	must(t, err)
	for _, c := range []struct {
		df       string
		want     []string
		notFound bool
	}{
		{"FROM base\nRUN --mount=type=secret,id=nope,required true\n",
			[]string{`secret "nope"`, "/run/secrets/nope", "was not given to the build"}, true},
		{"FROM base\nRUN --mount=type=secret,id=nope,env=NOPE,required true\n",
			[]string{`secret "nope"`, "environment variable NOPE", "was not given to the build"}, true},
		{"FROM base\nRUN --mount=type=secret,id=broken true\n",
			[]string{`secret "broken"`, "keyring locked"}, false},
		{"FROM base\nRUN --mount=type=secret,id=nul,env=NUL true\n",
			[]string{`secret "nul" holds a NUL byte`, "environment variable NUL"}, false},
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
		if got := errors.Is(err, ErrSecretNotFound); got != c.notFound {
			t.Errorf("%q: errors.Is(err, ErrSecretNotFound) = %v, want %v", c.df, got, c.notFound)
		}
	}
}

// failingStore holds its map's secrets and "broken", which it cannot read.
type failingStore SecretMap

func (f failingStore) GetSecret(ctx context.Context, id string) ([]byte, error) {
	if id == "broken" {
		return nil, errors.New("keyring locked")
	}
	return SecretMap(f).GetSecret(ctx, id)
}

func TestSecretMap(t *testing.T) {
	m := SecretMap{"a": []byte("1")}
	v, err := m.GetSecret(context.Background(), "a")
	if err != nil || string(v) != "1" {
		t.Fatalf("GetSecret(a) = %q, %v", v, err)
	}
	v[0] = 'x'
	if string(m["a"]) != "1" {
		t.Error("GetSecret returned the map's own slice")
	}
	if _, err := m.GetSecret(context.Background(), "b"); !errors.Is(err, ErrSecretNotFound) {
		t.Errorf("GetSecret(b) = %v, want ErrSecretNotFound", err)
	}
	if err := WithSecrets(nil)(&options{}); err == nil {
		t.Error("WithSecrets(nil): no error")
	}
}
