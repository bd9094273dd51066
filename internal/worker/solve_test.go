package worker

// End-to-end: a Dockerfile converted by internal/dockerfile (BuildKit's
// dockerfile2llb), solved by internal/build on this worker, with real
// overlay snapshots and libcontainer sandboxes. The base image is made by
// the test from host binaries, written as an OCI layout and loaded into the
// store. These tests need root, or a user with a /etc/subuid range who
// sets SNAPBUILD_TEST_ROOTLESS=1 (they then run in the builder's user
// namespace, as rootless snapbuild); with CI=true a missing capability
// fails them.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/dockerfile"
	"github.com/snapbuild/snapbuild/internal/testimage"
	"github.com/snapbuild/snapbuild/sandbox"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		sandbox.Init() // libcontainer's container init: never returns
	}
	if os.Geteuid() == 0 || os.Getenv("SNAPBUILD_TEST_ROOTLESS") == "1" {
		// As root: re-executes the tests in a private mount namespace, so
		// that no overlay mount outlives them. As another user who asks
		// for it: in a user namespace mapped from /etc/subuid, as the
		// rootless builder runs.
		sandbox.Init()
		sandbox.EnterNamespace()
	}
	os.Exit(m.Run())
}

// baseLayout writes an OCI layout in dir holding one image, tagged "base",
// made of the host's sh, cat, id, ls, mkdir, touch and stat with their
// libraries, an /etc/passwd and /etc/group with root and app (1000:1000),
// and a config that sets PATH.
func baseLayout(t *testing.T, dir string) {
	t.Helper()
	must(t, testimage.WriteLayout(dir, testimage.Spec{
		Tag:   "base",
		Tools: []string{"sh", "cat", "id", "ls", "mkdir", "touch", "stat"},
		Dirs:  []string{"/etc", "/tmp", "/root", "/home/app", "/usr/local/bin"},
		Files: map[string]string{
			"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
			"/etc/group":  "root:x:0:\napp:x:1000:\n",
		},
	}))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// loadLayout copies the image of the OCI layout dir into w's blob store, as
// they are (manifest, config, layers), and returns the manifest digest and
// the config JSON.
func loadLayout(t *testing.T, w *Worker, dir string) (digest.Digest, []byte) {
	t.Helper()
	var index ocispec.Index
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	must(t, err)
	must(t, json.Unmarshal(b, &index))
	if len(index.Manifests) != 1 {
		t.Fatalf("layout has %d manifests", len(index.Manifests))
	}
	blob := func(d ocispec.Descriptor) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded()))
		must(t, err)
		_, err = w.blobs.WriteBlobFrom(d.MediaType, bytes.NewReader(b), d.Digest, d.Size)
		must(t, err)
		return b
	}
	md := index.Manifests[0]
	var m ocispec.Manifest
	must(t, json.Unmarshal(blob(md), &m))
	cfg := blob(m.Config)
	for _, l := range m.Layers {
		blob(l)
	}
	return md.Digest, cfg
}

const testDockerfile = `FROM base
ENV GREETING=hello
WORKDIR /work
RUN echo "$GREETING built" > /work/built.txt && id -u > /work/uid-root.txt
COPY --chown=app:app sub /home/app/sub
COPY tool /usr/local/bin/tool
COPY <<EOF /etc/motd
motd from a heredoc
EOF
USER app
WORKDIR /home/app/w
RUN id -u > uid.txt && cat /etc/motd > motd.txt && touch /tmp/scratch && mkdir /home/app/w/made
COPY . /ctx/
`

// TestSolveDockerfile converts testDockerfile and solves it on the worker:
// RUN with ENV and WORKDIR, COPY --chown of a directory, COPY of a binary
// with file capabilities, COPY <<EOF, WORKDIR under USER, COPY of the
// context with .dockerignore patterns. It checks the files of the result
// through a read-only overlay view of its snapshot, the layers' blobs and
// diffIDs, and that a second solve is all cache hits.
func TestSolveDockerfile(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"ldd", "setcap", "getcap"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found (CI=true: not skipped)", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
	ctx := context.Background()
	w := newWorker(t)
	lay := filepath.Join(t.TempDir(), "layout")
	baseLayout(t, lay)
	baseDigest, baseConfig := loadLayout(t, w, lay)

	// The build context.
	cdir := t.TempDir()
	write(t, cdir, "sub/dir/x.txt", "x", 0o644)
	write(t, cdir, "app.txt", "app", 0o644)
	write(t, cdir, "ignored.log", "noise", 0o644)
	sh, err := exec.LookPath("sh")
	must(t, err)
	shData, err := os.ReadFile(sh)
	must(t, err)
	tool := write(t, cdir, "tool", string(shData), 0o755)
	if out, err := exec.Command("setcap", "cap_net_raw=ep", tool).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v\n%s", err, out)
	}
	must(t, w.AddLocal("context", cdir))

	var resolved []string
	var mu sync.Mutex
	conv, err := dockerfile.Convert(ctx, []byte(testDockerfile), dockerfile.Options{
		Excludes: []string{"*.log"},
		MetaResolver: dockerfile.MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
			mu.Lock()
			resolved = append(resolved, ref)
			mu.Unlock()
			if ref != "docker.io/library/base:latest" {
				return "", nil, fmt.Errorf("no image %s", ref)
			}
			return baseDigest, baseConfig, nil
		}),
	})
	must(t, err)

	var events []build.Event
	var emu sync.Mutex
	record := build.WithProgress(func(e build.Event) {
		emu.Lock()
		events = append(events, e)
		emu.Unlock()
	})
	s, err := build.NewSolver(w, build.WithCache(w.Cache()), build.WithKeySalt(w.KeySalt()), record)
	must(t, err)
	res, err := s.Solve(ctx, conv.Definition)
	if err != nil {
		t.Fatalf("solve: %v", err)
	}
	r := res.Ref.(*Ref)

	// Layers: the base's gzip layer as it was, then one zstd layer per op
	// that changed something, each blob's content matching its diffID.
	if len(r.Layers) < 6 || r.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("layers = %+v", r.Layers)
	}
	for i, l := range r.Layers {
		if i > 0 && l.MediaType != ocispec.MediaTypeImageLayerZstd {
			t.Errorf("layer %d media type %s, want zstd", i, l.MediaType)
		}
		rc, err := w.blobs.OpenLayer(l)
		must(t, err)
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		must(t, err)
		if got := digest.NewDigest(digest.SHA256, h); got != r.DiffIDs[i] {
			t.Errorf("layer %d: content %s, diffID %s", i, got, r.DiffIDs[i])
		}
	}
	// The layer of COPY tool carries the capability in a PAX record.
	capLayer := false
	for i := range r.Layers[1:] {
		for _, e := range paxXattrs(t, w, r, i+1) {
			if e == "usr/local/bin/tool security.capability" {
				capLayer = true
			}
		}
	}
	if !capLayer {
		t.Error("no layer has usr/local/bin/tool with SCHILY.xattr.security.capability")
	}

	// The files, through a read-only view of the result.
	root, release, err := w.view(ctx, r)
	must(t, err)
	defer release()
	file := func(rel, want string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil || string(b) != want {
			t.Errorf("/%s = %q, %v; want %q", rel, b, err, want)
		}
	}
	owner := func(rel string, uid, gid uint32) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, rel), &st); err != nil {
			t.Errorf("/%s: %v", rel, err)
			return
		}
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("/%s owned by %d:%d, want %d:%d", rel, st.Uid, st.Gid, uid, gid)
		}
	}
	file("work/built.txt", "hello built\n")
	file("work/uid-root.txt", "0\n")
	file("etc/motd", "motd from a heredoc\n")
	file("home/app/w/uid.txt", "1000\n")
	file("home/app/w/motd.txt", "motd from a heredoc\n")
	file("home/app/sub/dir/x.txt", "x")
	file("ctx/app.txt", "app")
	for _, rel := range []string{"home/app/sub", "home/app/sub/dir", "home/app/sub/dir/x.txt", "home/app/w", "home/app/w/made", "home/app/w/uid.txt", "tmp/scratch"} {
		owner(rel, 1000, 1000)
	}
	owner("ctx/app.txt", 0, 0)
	if _, err := os.Lstat(filepath.Join(root, "ctx/ignored.log")); err == nil {
		t.Error("/ctx/ignored.log copied despite .dockerignore")
	}
	if out, err := exec.Command("getcap", filepath.Join(root, "usr/local/bin/tool")).Output(); err != nil || !strings.Contains(string(out), "cap_net_raw=ep") {
		t.Errorf("getcap /usr/local/bin/tool = %q, %v; want cap_net_raw=ep", out, err)
	}
	// Mount stubs of the sandbox are not in the image.
	for _, rel := range []string{"etc/resolv.conf", "etc/hosts", "proc", "dev"} {
		if _, err := os.Lstat(filepath.Join(root, rel)); err == nil {
			t.Errorf("/%s (a sandbox mount stub) is in the image", rel)
		}
	}
	if len(resolved) != 1 {
		t.Errorf("resolved %v, want the base once", resolved)
	}

	// The image, exported and read by tools snapbuild did not write.
	if !sandbox.InUserNamespace() {
		checkWithUmoci(t, w, conv.Image, r)
	}

	// A second solve: everything from the cache, the same result.
	events = nil
	res2, err := s.Solve(ctx, conv.Definition)
	must(t, err)
	if r2 := res2.Ref.(*Ref); r2.Chain != r.Chain || res2.Key != res.Key {
		t.Errorf("second solve: chain %s key %s, want %s %s", r2.Chain, res2.Key, r.Chain, res.Key)
	}
	for _, e := range events {
		if e.Kind == build.VertexStarted {
			t.Errorf("second solve ran %q", e.Vertex.Name)
		}
	}
}

// checkWithUmoci writes the image of r with config cfg, exports it as an
// OCI layout, has skopeo convert it to gzip layers (checking every blob's
// digest on the way; umoci 0.4 cannot read zstd) and umoci unpack it, then
// checks files, owners and file capabilities in umoci's rootfs. It needs
// real root: umoci restores owners and capabilities as they are.
func checkWithUmoci(t *testing.T, w *Worker, cfg dockerspec.DockerOCIImage, r *Ref) {
	t.Helper()
	root := umociRootfs(t, w, cfg, r)
	for rel, want := range map[string]string{"work/built.txt": "hello built\n", "etc/motd": "motd from a heredoc\n", "home/app/w/uid.txt": "1000\n"} {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil || string(b) != want {
			t.Errorf("umoci: /%s = %q, %v; want %q", rel, b, err, want)
		}
	}
	var st unix.Stat_t
	for _, rel := range []string{"home/app/sub/dir", "home/app/w"} {
		if err := unix.Lstat(filepath.Join(root, rel), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("umoci: /%s owned by %d:%d (%v), want 1000:1000", rel, st.Uid, st.Gid, err)
		}
	}
	if out, err := exec.Command("getcap", filepath.Join(root, "usr/local/bin/tool")).Output(); err != nil || !strings.Contains(string(out), "cap_net_raw=ep") {
		t.Errorf("umoci: getcap /usr/local/bin/tool = %q, %v; want cap_net_raw=ep", out, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "ctx/ignored.log")); err == nil {
		t.Error("umoci: /ctx/ignored.log is in the image")
	}
}

// paxXattrs lists "name xattr" for every SCHILY.xattr PAX record of layer i.
func paxXattrs(t *testing.T, w *Worker, r *Ref, i int) []string {
	t.Helper()
	rc, err := w.blobs.OpenLayer(r.Layers[i])
	must(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		must(t, err)
		for k := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				out = append(out, h.Name+" "+x)
			}
		}
	}
}

// TestExecErrors checks that a failing RUN is an *ExitError with the exit
// code and the output's last lines, that mounts and sources the worker does
// not support are refused by name, and that a required secret the build
// lacks is named.
func TestExecErrors(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	w := newWorker(t)
	lay := filepath.Join(t.TempDir(), "layout")
	baseLayout(t, lay)
	baseDigest, baseConfig := loadLayout(t, w, lay)
	resolver := dockerfile.MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
		return baseDigest, baseConfig, nil
	})
	s, err := build.NewSolver(w)
	must(t, err)
	for _, c := range []struct {
		df, want string
	}{
		{"FROM base\nRUN echo out-line; echo err-line >&2; exit 3\n", "exit code: 3\nout-line\nerr-line"},
		{"FROM base\nRUN nosuchcommand\n", "exit code: 127"},
		{"FROM base\nRUN --mount=type=secret,id=tok,required cat /run/secrets/tok\n", `secret "tok", required for the mount at /run/secrets/tok, was not given to the build`},
		{"FROM base\nADD git@127.0.0.1:org/repo.git /src\n", "git sources"},
		{"FROM base\nRUN --mount=type=ssh true\n", "ssh mounts"},
		{"FROM base\nRUN --security=insecure true\n", "needs the security.insecure entitlement (snapbuild build --security insecure)"},
		{"FROM base\nUSER ghost\nRUN true\n", `user "ghost"`},
		{"FROM base\nCOPY --chown=ghost f /f\n", `user "ghost": no such user`},
	} {
		conv, err := dockerfile.Convert(ctx, []byte(c.df), dockerfile.Options{MetaResolver: resolver})
		if err != nil {
			t.Errorf("%q: convert: %v", c.df, err)
			continue
		}
		if strings.Contains(c.df, "COPY") {
			cdir := t.TempDir()
			write(t, cdir, "f", "f", 0o644)
			w2 := newWorker(t)
			loadLayout(t, w2, lay)
			must(t, w2.AddLocal("context", cdir))
			s2, err := build.NewSolver(w2)
			must(t, err)
			_, err = s2.Solve(ctx, conv.Definition)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%q: %v, want an error with %q", c.df, err, c.want)
			}
			continue
		}
		_, err = s.Solve(ctx, conv.Definition)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.df, err, c.want)
		}
	}
}

// TestSolveMounts checks RUN --mount: a cache mount keeps its content
// between ops and, with uid and gid, starts owned by them; a tmpfs mount is
// empty and discarded; a bind mount from another stage is read-only and
// its source path is selected. No mount target reaches the image.
func TestSolveMounts(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	w := newWorker(t)
	lay := filepath.Join(t.TempDir(), "layout")
	baseLayout(t, lay)
	baseDigest, baseConfig := loadLayout(t, w, lay)
	df := `FROM base AS stage
RUN mkdir /out && echo from-stage > /out/f

FROM base
RUN --mount=type=cache,target=/var/cache/x,uid=1000,gid=1000 stat -c %u:%g /var/cache/x > /cache-owner.txt && echo one >> /var/cache/x/log
RUN --mount=type=cache,target=/var/cache/x,uid=1000,gid=1000 cat /var/cache/x/log > /seen.txt
RUN --mount=type=tmpfs,target=/scratch ls -A /scratch > /tmpfs-before.txt && touch /scratch/x
RUN --mount=type=bind,from=stage,source=/out,target=/in cat /in/f > /bound.txt && (touch /in/g 2>/dev/null || echo read-only > /bind-ro.txt)
`
	conv, err := dockerfile.Convert(ctx, []byte(df), dockerfile.Options{
		MetaResolver: dockerfile.MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
			return baseDigest, baseConfig, nil
		}),
	})
	must(t, err)
	s, err := build.NewSolver(w)
	must(t, err)
	res, err := s.Solve(ctx, conv.Definition)
	if err != nil {
		t.Fatalf("solve: %v", err)
	}
	root, release, err := w.view(ctx, res.Ref.(*Ref))
	must(t, err)
	defer release()
	for rel, want := range map[string]string{
		"cache-owner.txt":  "1000:1000\n",
		"seen.txt":         "one\n",
		"tmpfs-before.txt": "",
		"bound.txt":        "from-stage\n",
		"bind-ro.txt":      "read-only\n",
	} {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil || string(b) != want {
			t.Errorf("/%s = %q, %v; want %q", rel, b, err, want)
		}
	}
	for _, rel := range []string{"var/cache/x", "scratch", "in"} {
		if _, err := os.Lstat(filepath.Join(root, rel)); err == nil {
			t.Errorf("/%s (a mount target) is in the image", rel)
		}
	}
}

// TestSolveMultiStage solves two independent stages in parallel, copies
// from both into the target (COPY --from, with --chown and --chmod), and
// leaves out a stage the target does not need (it would fail).
func TestSolveMultiStage(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	w := newWorker(t)
	lay := filepath.Join(t.TempDir(), "layout")
	baseLayout(t, lay)
	baseDigest, baseConfig := loadLayout(t, w, lay)
	df := `FROM base AS a
RUN mkdir -p /out/a && echo A > /out/a/file

FROM base AS b
RUN mkdir -p /out/b && echo B > /out/b/file

FROM base AS unused
RUN exit 42

FROM base
COPY --from=a /out/a /merged/a
COPY --from=b --chown=app:app --chmod=0600 /out/b/file /merged/b/
`
	conv, err := dockerfile.Convert(ctx, []byte(df), dockerfile.Options{
		MetaResolver: dockerfile.MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
			return baseDigest, baseConfig, nil
		}),
	})
	must(t, err)
	var mu sync.Mutex
	var ran []string
	s, err := build.NewSolver(w, build.WithParallelism(2), build.WithProgress(func(e build.Event) {
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
	for _, name := range ran {
		if strings.Contains(name, "exit 42") {
			t.Errorf("the unused stage ran: %q", name)
		}
	}
	r := res.Ref.(*Ref)
	if len(r.Layers) != 3 {
		t.Errorf("target has %d layers, want 3 (base and two COPY)", len(r.Layers))
	}
	root, release, err := w.view(ctx, r)
	must(t, err)
	defer release()
	for rel, want := range map[string]string{"merged/a/file": "A\n", "merged/b/file": "B\n"} {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil || string(b) != want {
			t.Errorf("/%s = %q, %v; want %q", rel, b, err, want)
		}
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(root, "merged/b/file"), &st))
	if st.Uid != 1000 || st.Gid != 1000 || st.Mode&0o7777 != 0o600 {
		t.Errorf("/merged/b/file: %d:%d %o, want 1000:1000 600", st.Uid, st.Gid, st.Mode&0o7777)
	}
}

// TestExecDevices: an exec op's CDI devices go to the WithDevices injector,
// whose changes to the spec the process sees (its env wins over the op's);
// without an injector the op is refused, and the injector's error fails it.
func TestExecDevices(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	var seen []string
	inject := func(ctx context.Context, devs []*pb.CDIDevice, spec *sandbox.Spec) error {
		for _, d := range devs {
			seen = append(seen, d.Name)
			if d.Name == "example.com/dev=bad" {
				return errors.New("no such device")
			}
		}
		spec.Env = append(spec.Env, "DEVICE=injected")
		return nil
	}
	w := newWorker(t, WithDevices(inject))
	lay := filepath.Join(t.TempDir(), "layout")
	baseLayout(t, lay)
	conv := convertOnBase(t, w, "FROM base\nRUN echo \"$DEVICE\" > /device.txt\n")
	withDevice := func(name string) *pb.Definition {
		def, err := build.Rewrite(conv, func(op *pb.Op, _ *pb.OpMetadata) error {
			if e := op.GetExec(); e != nil {
				e.Meta.Env = append(e.Meta.Env, "DEVICE=from-op")
				e.CdiDevices = append(e.CdiDevices, &pb.CDIDevice{Name: name})
			}
			return nil
		})
		must(t, err)
		return def
	}
	root := solveView(t, w, withDevice("example.com/dev=good"))
	s, err := build.NewSolver(w)
	must(t, err)
	if b, err := os.ReadFile(filepath.Join(root, "device.txt")); err != nil || string(b) != "injected\n" {
		t.Errorf("/device.txt = %q, %v; want the injector's env", b, err)
	}
	if !slices.Equal(seen, []string{"example.com/dev=good"}) {
		t.Errorf("injector saw %q", seen)
	}
	if _, err := s.Solve(ctx, withDevice("example.com/dev=bad")); err == nil || !strings.Contains(err.Error(), "CDI devices: no such device") {
		t.Errorf("injector error: %v", err)
	}
	plain := newWorker(t)
	loadLayout(t, plain, lay)
	ps, err := build.NewSolver(plain)
	must(t, err)
	if _, err := ps.Solve(ctx, withDevice("example.com/dev=good")); err == nil || !strings.Contains(err.Error(), "no device injector") {
		t.Errorf("without WithDevices: %v", err)
	}
}

// TestCacheDirs: a cache mount whose ID the front end maps (WithCacheDirs)
// is that directory, shared as it is: what a step writes there stays in it
// and in no layer; other IDs get the worker's own caches.
func TestCacheDirs(t *testing.T) {
	needRoot(t)
	vol := t.TempDir()
	write(t, vol, "before.txt", "kept\n", 0o644)
	w := newWorker(t, WithCacheDirs(func(_ context.Context, id string) (string, bool, error) {
		if id == "/volume" { // dockerfile2llb's ID for id=volume
			return vol, true, nil
		}
		return "", false, nil
	}))
	root := solveView(t, w, convertOnBase(t, w, `FROM base
RUN --mount=type=cache,id=volume,target=/vol sh -c 'cat /vol/before.txt > /seen.txt; echo written > /vol/after.txt'
RUN --mount=type=cache,id=other,target=/vol sh -c 'ls /vol > /other.txt'
`))
	if b, err := os.ReadFile(filepath.Join(vol, "after.txt")); err != nil || string(b) != "written\n" {
		t.Errorf("the volume's after.txt = %q, %v", b, err)
	}
	for rel, want := range map[string]string{"seen.txt": "kept\n", "other.txt": ""} {
		if b, err := os.ReadFile(filepath.Join(root, rel)); err != nil || string(b) != want {
			t.Errorf("/%s = %q, %v; want %q", rel, b, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "vol", "after.txt")); !os.IsNotExist(err) {
		t.Errorf("the volume's file reached the image: %v", err)
	}
}

// TestDefaultEnv: the worker's default environment fills what the op does
// not set, and is no part of the op (two workers with different defaults
// key the op alike).
func TestDefaultEnv(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	w := newWorker(t, WithDefaultEnv([]string{"SITE=mirror-a", "FROMOP=default"}))
	def := convertOnBase(t, w, "FROM base\nENV FROMOP=op\nRUN echo \"$SITE $FROMOP\" > /env.txt\n")
	root := solveView(t, w, def)
	if b, err := os.ReadFile(filepath.Join(root, "env.txt")); err != nil || string(b) != "mirror-a op\n" {
		t.Errorf("/env.txt = %q, %v; want the default where the op sets nothing", b, err)
	}
	other := newWorker(t, WithDefaultEnv([]string{"SITE=mirror-b"}))
	g, err := build.Load(def)
	must(t, err)
	s, err := build.NewSolver(w)
	must(t, err)
	k1, err := s.Key(ctx, g)
	must(t, err)
	s2, err := build.NewSolver(other)
	must(t, err)
	k2, err := s2.Key(ctx, g)
	must(t, err)
	if k1 != k2 {
		t.Errorf("the default env changed the key: %s vs %s", k1, k2)
	}
	if _, err := New(w.blobs, w.snaps, t.TempDir(), WithDefaultEnv([]string{"NOEQUALS"})); err == nil || !strings.Contains(err.Error(), "NAME=value") {
		t.Errorf("a bad entry: %v", err)
	}
}

// convertOnBase loads the test base image into w and converts df on it
// (every FROM resolves to the base).
func convertOnBase(t *testing.T, w *Worker, df string) *pb.Definition {
	t.Helper()
	lay := filepath.Join(t.TempDir(), "layout")
	baseLayout(t, lay)
	baseDigest, baseConfig := loadLayout(t, w, lay)
	resolver := dockerfile.MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
		return baseDigest, baseConfig, nil
	})
	conv, err := dockerfile.Convert(context.Background(), []byte(df), dockerfile.Options{MetaResolver: resolver})
	must(t, err)
	return conv.Definition
}

// solveView solves def on w and returns the result's root filesystem,
// mounted until the test ends.
func solveView(t *testing.T, w *Worker, def *pb.Definition) string {
	t.Helper()
	s, err := build.NewSolver(w)
	must(t, err)
	res, err := s.Solve(context.Background(), def)
	if err != nil {
		t.Fatalf("solve: %v", err)
	}
	root, release, err := w.view(context.Background(), res.Ref.(*Ref))
	must(t, err)
	t.Cleanup(release)
	return root
}

// TestExecTimeout: a process still running at the limit WithTimeout gives
// is killed and the op fails with an *ExitError naming the limit, promptly;
// the limit is no part of the op's key; ops the limit does not name run to
// the end.
func TestExecTimeout(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	limit := func(ctx context.Context) time.Duration {
		if v := build.VertexFrom(ctx); v != nil && strings.Contains(v.Name, "while") {
			return time.Second
		}
		return 0
	}
	w := newWorker(t, WithTimeout(limit))
	def := convertOnBase(t, w, "FROM base\nRUN echo started; while :; do :; done\n")
	s, err := build.NewSolver(w)
	must(t, err)
	start := time.Now()
	_, err = s.Solve(ctx, def)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.TimedOut != time.Second || !strings.Contains(err.Error(), "timed out after 1s") {
		t.Fatalf("solve: %v, want an *ExitError timed out after 1s", err)
	}
	if !slices.Contains(ee.Tail, "started") {
		t.Errorf("tail %q, want the output before the kill", ee.Tail)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the op ran %s past a 1s limit", d)
	}
	g, err := build.Load(def)
	must(t, err)
	k1, err := s.Key(ctx, g)
	must(t, err)
	s2, err := build.NewSolver(newWorker(t))
	must(t, err)
	if k2, err := s2.Key(ctx, g); err != nil || k1 != k2 {
		t.Errorf("the limit changed the key: %s vs %s (%v)", k1, k2, err)
	}
	root := solveView(t, w, convertOnBase(t, w, "FROM base\nRUN echo done > /done.txt\n"))
	if b, err := os.ReadFile(filepath.Join(root, "done.txt")); err != nil || string(b) != "done\n" {
		t.Errorf("an op without a limit: /done.txt = %q, %v", b, err)
	}
}

// TestExecSecurity checks the exec ops' security modes: a sandboxed op
// runs with a seccomp filter and no_new_privs; with WithSecurity(insecure)
// an op that asks for insecure runs without either; the mode is part of
// the key, so the same command run insecure after a sandboxed run is run
// again, not taken from the cache.
func TestExecSecurity(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	w := newWorker(t, WithSecurity(sandbox.SecurityInsecure))
	lay := filepath.Join(t.TempDir(), "layout")
	baseLayout(t, lay)
	baseDigest, baseConfig := loadLayout(t, w, lay)
	resolver := dockerfile.MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
		return baseDigest, baseConfig, nil
	})
	s, err := build.NewSolver(w)
	must(t, err)
	for _, c := range []struct {
		flag, seccomp, nnp string
	}{
		{"", "2", "1"},
		{"--security=insecure ", "0", "0"},
		{"--security=sandbox ", "2", "1"},
	} {
		df := "FROM base\nRUN " + c.flag + "cat /proc/self/status > /status.txt\n"
		conv, err := dockerfile.Convert(ctx, []byte(df), dockerfile.Options{MetaResolver: resolver})
		must(t, err)
		res, err := s.Solve(ctx, conv.Definition)
		if err != nil {
			t.Fatalf("%q: solve: %v", df, err)
		}
		root, release, err := w.view(ctx, res.Ref.(*Ref))
		must(t, err)
		b, err := os.ReadFile(filepath.Join(root, "status.txt"))
		release()
		must(t, err)
		for _, want := range []string{"\nSeccomp:\t" + c.seccomp + "\n", "\nNoNewPrivs:\t" + c.nnp + "\n"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("RUN %s: /proc/self/status lacks %q:\n%s", c.flag, strings.TrimSpace(want), b)
			}
		}
	}
}

// TestPackageCaches: a package cache the front end gives an op is mounted
// at its target with its variables; what a step writes there stays in the
// worker's pkgcache/<name> for the next op (and the next Worker on the
// same directory) and reaches no layer (a step run as another user gets
// a directory of its own that it owns), nor do the target's directories;
// the op's own variables win; ops the front end gives none see nothing;
// the caches are no part of any key; bad caches are errors naming them.
func TestPackageCaches(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	prepared := 0
	caches := func(_ context.Context, op *pb.ExecOp) []PackageCache {
		if strings.Contains(strings.Join(op.Meta.Args, " "), "nocache") {
			return nil
		}
		return []PackageCache{{
			Name: "tool", Dest: "/var/cache/snapbuild-test/tool", Locked: true,
			Env:     []string{"TOOL_CACHE=/var/cache/snapbuild-test/tool", "OPSET=cache"},
			Prepare: func(string) error { prepared++; return nil },
		}}
	}
	w := newWorkerAt(t, dir, WithPackageCaches(caches))
	df := `FROM base
ENV OPSET=op
RUN sh -c 'echo "$TOOL_CACHE $OPSET" > /env.txt; echo one >> $TOOL_CACHE/log'
RUN sh -c 'cat /var/cache/snapbuild-test/tool/log > /seen.txt'
RUN sh -c 'ls -A /var/cache > /nocache.txt; echo "[$TOOL_CACHE]" >> /nocache.txt'
USER app
RUN sh -c 'touch $TOOL_CACHE/by-app'
`
	def := convertOnBase(t, w, df)
	s, err := build.NewSolver(w, build.WithCache(w.Cache()), build.WithKeySalt(w.KeySalt()))
	must(t, err)
	res, err := s.Solve(ctx, def)
	if err != nil {
		t.Fatalf("solve: %v", err)
	}
	r := res.Ref.(*Ref)
	root, release, err := w.view(ctx, r)
	must(t, err)
	defer release()
	for rel, want := range map[string]string{
		"env.txt":     "/var/cache/snapbuild-test/tool op\n",
		"seen.txt":    "one\n",
		"nocache.txt": "[]\n",
	} {
		if b, err := os.ReadFile(filepath.Join(root, rel)); err != nil || string(b) != want {
			t.Errorf("/%s = %q, %v; want %q", rel, b, err, want)
		}
	}
	if prepared != 3 {
		t.Errorf("Prepare called %d times, want 3 (once per op given the cache)", prepared)
	}
	// A step run as another user gets a cache of its own, which it owns.
	if fi, err := os.Stat(filepath.Join(dir, "worker", "pkgcache", "tool-1000", "by-app")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("pkgcache/tool-1000/by-app: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "worker", "pkgcache", "tool-1000")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("pkgcache/tool-1000 is not owned by 1000: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "worker", "pkgcache", "tool", "log")); err != nil || string(b) != "one\n" {
		t.Errorf("pkgcache/tool/log = %q, %v", b, err)
	}
	// No layer holds the cache's files or the mount target's directories
	// (the base has no /var: the runtime made /var/cache/snapbuild-test/tool).
	for i := range r.Layers {
		for _, e := range layerEntries(t, w, r, i) {
			if strings.HasPrefix(e, "var") {
				t.Errorf("layer %d holds %s", i, e)
			}
		}
	}
	// The same definition keys alike on a Worker without package caches:
	// there, everything is a cache hit.
	plain := newWorkerAt(t, dir)
	g, err := build.Load(def)
	must(t, err)
	s1, err := build.NewSolver(w, build.WithKeySalt(w.KeySalt()))
	must(t, err)
	s2, err := build.NewSolver(plain, build.WithKeySalt(plain.KeySalt()))
	must(t, err)
	k1, err := s1.Key(ctx, g)
	must(t, err)
	k2, err := s2.Key(ctx, g)
	must(t, err)
	if k1 != k2 {
		t.Errorf("the package caches changed the key: %s vs %s", k1, k2)
	}

	for _, bad := range []struct {
		c    PackageCache
		want string
	}{
		{PackageCache{Name: "Apt", Dest: "/x"}, `package cache name "Apt"`},
		{PackageCache{Name: "apt", Dest: "rel"}, `package cache apt: mount target "rel"`},
		{PackageCache{Name: "apt", Dest: "/x", Env: []string{"NOEQ"}}, `env "NOEQ"`},
	} {
		bw := newWorker(t, WithPackageCaches(func(context.Context, *pb.ExecOp) []PackageCache { return []PackageCache{bad.c} }))
		s, err := build.NewSolver(bw)
		must(t, err)
		_, err = s.Solve(ctx, convertOnBase(t, bw, "FROM base\nRUN true\n"))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want an error with %q", bad.c, err, bad.want)
		}
	}
}
