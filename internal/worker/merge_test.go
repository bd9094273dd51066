package worker

// Merge and diff ops: COPY --link Dockerfiles converted by
// internal/dockerfile and solved on the worker, and LLB graphs made with
// BuildKit's client/llb. Like solve_test.go, these need root (real, or in
// the builder's user namespace with SNAPBUILD_TEST_ROOTLESS=1): merged
// snapshots are overlay mounts.

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/dockerfile"
	"github.com/snapbuild/snapbuild/internal/testimage"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/sandbox"
)

const linkDockerfile = `FROM base AS build
RUN mkdir -p /out && echo built > /out/tool.txt

FROM base
ARG V
RUN mkdir -p /srv/data && echo "$V" > /srv/data/v.txt && chown -R 1000:1000 /srv/data && chmod 0700 /srv/data
COPY --link config /etc/config
COPY --link --from=build /out/tool.txt /opt/tools/
COPY --link app/ /srv/data/
COPY --link --chown=1000:1000 owned.txt /home/app/
RUN cat /etc/config /opt/tools/tool.txt > /seen.txt && stat -c '%u:%g %a' /srv/data /home/app > /owners.txt
`

// TestSolveCopyLink solves linkDockerfile, whose COPY --link forms
// (from the context, from another stage, over a file of the base, into a
// directory the base has with another owner and mode, with --chown)
// dockerfile2llb turns into merges of the stage with copies made on
// scratch. It checks the layers (the base's as they were, then one layer
// per linked copy holding only what it copied and its parent directories),
// the files later ops and image readers see (the linked copy's parent
// directories replace the base's owner and mode, as BuildKit documents for
// --link), and that with another base below them (build arg V) the linked
// copies are cache hits with the same layer blobs: the point of --link.
func TestSolveCopyLink(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	w := newWorker(t)
	lay := filepath.Join(t.TempDir(), "layout")
	must(t, testimage.WriteLayout(lay, testimage.Spec{
		Tag:   "base",
		Tools: []string{"sh", "cat", "mkdir", "chown", "chmod", "stat"},
		Dirs:  []string{"/etc", "/tmp", "/home/app"},
		Files: map[string]string{
			"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
			"/etc/group":  "root:x:0:\napp:x:1000:\n",
			"/etc/config": "base config\n",
		},
	}))
	baseDigest, baseConfig := loadLayout(t, w, lay)
	cdir := t.TempDir()
	write(t, cdir, "config", "linked config\n", 0o644)
	write(t, cdir, "app/a.txt", "a\n", 0o640)
	write(t, cdir, "owned.txt", "owned\n", 0o600)
	must(t, w.AddLocal("context", cdir))

	convert := func(v string) *dockerfile.Result {
		t.Helper()
		conv, err := dockerfile.Convert(ctx, []byte(linkDockerfile), dockerfile.Options{
			BuildArgs: map[string]string{"V": v},
			MetaResolver: dockerfile.MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
				return baseDigest, baseConfig, nil
			}),
		})
		must(t, err)
		return conv
	}
	var started []build.OpKind
	s, err := build.NewSolver(w, build.WithCache(w.Cache()), build.WithKeySalt(w.KeySalt()), build.WithProgress(func(e build.Event) {
		if e.Kind == build.VertexStarted {
			started = append(started, e.Vertex.Kind)
		}
	}))
	must(t, err)

	conv1 := convert("1")
	res, err := s.Solve(ctx, conv1.Definition)
	if err != nil {
		t.Fatalf("solve: %v", err)
	}
	r1 := res.Ref.(*Ref)
	if got := count(started, build.KindMerge); got != 4 {
		t.Errorf("%d merges ran, want 4 (one per COPY --link)", got)
	}

	// The base layer, the RUN's, four linked copies, the last RUN's.
	if len(r1.Layers) != 7 {
		t.Fatalf("%d layers, want 7", len(r1.Layers))
	}
	baseLayers := readManifest(t, w, baseDigest).Layers
	if r1.Layers[0].Digest != baseLayers[0].Digest {
		t.Errorf("layer 0 is %s, want the base's %s as it is", r1.Layers[0].Digest, baseLayers[0].Digest)
	}
	root := fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	for i, want := range [][]string{
		{"etc/ 0755 " + root, "etc/config 0644 " + root + " linked config\n"},
		{"opt/ 0755 0:0", "opt/tools/ 0755 0:0", "opt/tools/tool.txt 0644 0:0 built\n"},
		{"srv/ 0755 0:0", "srv/data/ 0755 0:0", "srv/data/a.txt 0640 " + root + " a\n"},
		{"home/ 0755 1000:1000", "home/app/ 0755 1000:1000", "home/app/owned.txt 0600 1000:1000 owned\n"},
	} {
		if got := layerEntries(t, w, r1, 2+i); !slices.Equal(got, want) {
			t.Errorf("layer %d (COPY --link) = %q, want %q", 2+i, got, want)
		}
	}

	files := map[string]string{
		"etc/config":         "linked config\n",
		"etc/passwd":         "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
		"opt/tools/tool.txt": "built\n",
		"srv/data/a.txt":     "a\n",
		"srv/data/v.txt":     "1\n", // the base's file stays: directories merge
		"home/app/owned.txt": "owned\n",
		"seen.txt":           "linked config\nbuilt\n",
		// The last RUN saw the linked layer's directory entries.
		"owners.txt": "0:0 755\n1000:1000 755\n",
	}
	view, release, err := w.view(ctx, r1)
	must(t, err)
	defer release()
	checkFiles(t, "snapshot", view, files)

	// Image readers see the same: the layers unpacked by umoci (as real
	// root: umoci keeps owners only then).
	if !sandbox.InUserNamespace() {
		rootfs := umociRootfs(t, w, conv1.Image, r1)
		checkFiles(t, "umoci", rootfs, files)
		for rel, want := range map[string]string{"srv/data": "0:0 755", "home/app": "1000:1000 755", "srv/data/v.txt": "1000:1000 644"} {
			st := lstat(t, filepath.Join(rootfs, rel))
			if got := fmt.Sprintf("%d:%d %o", st.Uid, st.Gid, st.Mode&0o7777); got != want {
				t.Errorf("umoci: /%s is %s, want %s", rel, got, want)
			}
		}
	}

	// Another base below the linked copies: they are not made again and
	// keep their blobs; only the RUNs and the merges run.
	started = nil
	res, err = s.Solve(ctx, convert("2").Definition)
	if err != nil {
		t.Fatalf("solve with V=2: %v", err)
	}
	r2 := res.Ref.(*Ref)
	if count(started, build.KindFile) != 0 || count(started, build.KindExec) != 2 || count(started, build.KindMerge) != 4 {
		t.Errorf("with V=2 these ran: %v; want 2 exec and 4 merge, no file op", started)
	}
	if len(r2.Layers) != 7 || r2.Layers[1].Digest == r1.Layers[1].Digest {
		t.Fatalf("with V=2: layers %v, want 7 with another layer 1", r2.Layers)
	}
	for i := 2; i < 6; i++ {
		if r2.Layers[i].Digest != r1.Layers[i].Digest {
			t.Errorf("with V=2: linked layer %d is %s, want %s as with V=1", i, r2.Layers[i].Digest, r1.Layers[i].Digest)
		}
	}
	view2, release2, err := w.view(ctx, r2)
	must(t, err)
	defer release2()
	checkFiles(t, "snapshot (V=2)", view2, map[string]string{"srv/data/v.txt": "2\n", "srv/data/a.txt": "a\n", "etc/config": "linked config\n"})
}

// TestMergeOp solves merges made with client/llb: the inputs' layers
// concatenated as they are, later files over earlier ones, a later input's
// whiteout deleting an earlier input's file, a merge of merges, and a local
// source as an input. It also calls Merge with empty inputs.
func TestMergeOp(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	w := newWorker(t)
	at := llb.WithCreatedTime(time.Unix(1_700_000_000, 0))
	a := llb.Scratch().
		File(llb.Mkdir("/d", 0o755, at)).
		File(llb.Mkfile("/d/x", 0o644, []byte("x from a"), at).Mkfile("/d/y", 0o644, []byte("y from a"), at).Mkfile("/a", 0o644, []byte("a"), at))
	// b: its second layer deletes /d/x, which b itself has from its first.
	b := llb.Scratch().
		File(llb.Mkdir("/d", 0o755, at).Mkfile("/d/x", 0o644, []byte("x from b"), at).Mkfile("/d/y", 0o600, []byte("y from b"), at)).
		File(llb.Rm("/d/x"))
	c := llb.Scratch().File(llb.Mkfile("/c", 0o644, []byte("c"), at))

	ra, rb, rc := solveLLB(t, w, a), solveLLB(t, w, b), solveLLB(t, w, c)
	m := solveLLB(t, w, llb.Merge([]llb.State{a, b}))
	if want := slices.Concat(ra.Layers, rb.Layers); !slices.Equal(digests(m.Layers), digests(want)) {
		t.Errorf("merge layers = %v, want a's then b's %v", m.Layers, want)
	}
	if want := slices.Concat(ra.DiffIDs, rb.DiffIDs); !slices.Equal(m.DiffIDs, want) {
		t.Errorf("merge diffIDs = %v, want %v", m.DiffIDs, want)
	}
	want := map[string]string{"a": "- 0644 a", "d": "d 0755", "d/y": "- 0600 y from b"}
	if got := treeOf(t, w, m); !equalTree(got, want) {
		t.Errorf("merge(a, b) = %v, want %v (b's whiteout deletes a's /d/x)", got, want)
	}

	// A merge of a merge: the concatenation of all three.
	mm := solveLLB(t, w, llb.Merge([]llb.State{llb.Merge([]llb.State{a, b}), c}))
	if want := slices.Concat(ra.Layers, rb.Layers, rc.Layers); !slices.Equal(digests(mm.Layers), digests(want)) {
		t.Errorf("merge(merge(a, b), c) layers = %v, want %v", mm.Layers, want)
	}
	want["c"] = "- 0644 c"
	if got := treeOf(t, w, mm); !equalTree(got, want) {
		t.Errorf("merge(merge(a, b), c) = %v, want %v", got, want)
	}

	// A local source as an input becomes one layer of its files.
	cdir := t.TempDir()
	write(t, cdir, "a", "a from local", 0o755)
	must(t, w.AddLocal("ctx", cdir))
	ml := solveLLB(t, w, llb.Merge([]llb.State{a, llb.Local("ctx")}))
	if len(ml.Layers) != len(ra.Layers)+1 {
		t.Errorf("merge(a, local) has %d layers, want %d", len(ml.Layers), len(ra.Layers)+1)
	}
	if got := treeOf(t, w, ml)["a"]; got != "- 0755 a from local" {
		t.Errorf("merge(a, local): /a = %q, want the local file", got)
	}

	// Empty inputs (pb.Empty) add nothing; one input left is that input.
	got, err := w.Merge(ctx, &pb.MergeOp{Inputs: []*pb.MergeInput{{Input: -1}, {Input: 0}, {Input: -1}}}, []build.Ref{ra})
	if err != nil || got.(*Ref) != ra {
		t.Errorf("merge(scratch, a, scratch) = %v, %v; want a's ref", got, err)
	}
	got, err = w.Merge(ctx, &pb.MergeOp{Inputs: []*pb.MergeInput{{Input: -1}}}, nil)
	if r, ok := got.(*Ref); err != nil || !ok || r.Chain != "" || len(r.Layers) != 0 {
		t.Errorf("merge(scratch) = %v, %v; want an empty filesystem", got, err)
	}
}

// TestDiffOp solves diffs made with client/llb: upper built on lower
// (upper's own layers, as they are), unrelated trees (one new layer with
// what differs and whiteouts for what upper lacks, which merged onto lower
// gives upper's tree), an empty upper (whiteouts for everything), the same
// tree (nothing), an empty lower (upper itself), and the rebase a diff is
// for: a diff's deletions applied where it is merged.
func TestDiffOp(t *testing.T) {
	needRoot(t)
	w := newWorker(t)
	at := llb.WithCreatedTime(time.Unix(1_700_000_000, 0))
	lower := llb.Scratch().File(llb.Mkdir("/d", 0o755, at).
		Mkfile("/d/x", 0o644, []byte("x"), at).
		Mkfile("/a", 0o644, []byte("1"), at).
		Mkfile("/b", 0o644, []byte("same"), at).
		Symlink("a", "/l", at))
	rl := solveLLB(t, w, lower)

	// upper built on lower: its own layers.
	upper := lower.File(llb.Mkfile("/new", 0o644, []byte("new"), at)).File(llb.Rm("/d/x"))
	ru := solveLLB(t, w, upper)
	d := solveLLB(t, w, llb.Diff(lower, upper))
	if !slices.Equal(digests(d.Layers), digests(ru.Layers[len(rl.Layers):])) || !slices.Equal(d.DiffIDs, ru.DiffIDs[len(rl.DiffIDs):]) {
		t.Errorf("diff(lower, upper on lower) layers = %v, want upper's last two %v", d.Layers, ru.Layers[len(rl.Layers):])
	}
	// Its own filesystem: /new and /d; the whiteout of /d/x hides nothing
	// and is no device node.
	if got, want := treeOf(t, w, d), map[string]string{"d": "d 0755", "new": "- 0644 new"}; !equalTree(got, want) {
		t.Errorf("diff(lower, upper on lower) = %v, want %v", got, want)
	}
	// Rebased: merged onto another tree holding /d/x, it deletes it.
	other := llb.Scratch().File(llb.Mkdir("/d", 0o755, at).Mkfile("/d/x", 0o644, []byte("other x"), at).Mkfile("/o", 0o644, []byte("o"), at))
	rebased := solveLLB(t, w, llb.Merge([]llb.State{other, llb.Diff(lower, upper)}))
	if got, want := treeOf(t, w, rebased), map[string]string{"d": "d 0755", "new": "- 0644 new", "o": "- 0644 o"}; !equalTree(got, want) {
		t.Errorf("merge(other, diff) = %v, want %v", got, want)
	}

	// An unrelated upper: /a's content changes (same size), /b is equal,
	// /d/x goes, /c comes, /l points elsewhere.
	unrelated := llb.Scratch().File(llb.Mkdir("/d", 0o755, at).
		Mkfile("/a", 0o644, []byte("2"), at).
		Mkfile("/b", 0o644, []byte("same"), at).
		Mkfile("/c", 0o600, []byte("c"), at).
		Symlink("b", "/l", at))
	rn := solveLLB(t, w, unrelated)
	dn := solveLLB(t, w, llb.Diff(lower, unrelated))
	if len(dn.Layers) != 1 || dn.Layers[0].MediaType != ocispec.MediaTypeImageLayerZstd {
		t.Fatalf("diff(lower, unrelated) layers = %v, want one zstd layer", dn.Layers)
	}
	names := layerNames(t, w, dn, 0)
	for _, n := range []string{"a", "c", "d/.wh.x", "l"} {
		if !slices.Contains(names, n) {
			t.Errorf("diff(lower, unrelated) layer %q lacks %s", names, n)
		}
	}
	if slices.Contains(names, "b") {
		t.Errorf("diff(lower, unrelated) layer %q holds /b, which is equal in both", names)
	}
	merged := solveLLB(t, w, llb.Merge([]llb.State{lower, llb.Diff(lower, unrelated)}))
	if got, want := treeOf(t, w, merged), treeOf(t, w, rn); !equalTree(got, want) {
		t.Errorf("merge(lower, diff(lower, unrelated)) = %v, want unrelated's tree %v", got, want)
	}

	// An empty upper: everything of lower deleted.
	de := solveLLB(t, w, llb.Diff(lower, llb.Scratch()))
	if got, want := layerNames(t, w, de, 0), []string{".wh.a", ".wh.b", ".wh.d", ".wh.l"}; !slices.Equal(got, want) {
		t.Errorf("diff(lower, scratch) layer = %q, want %q", got, want)
	}
	if got := treeOf(t, w, solveLLB(t, w, llb.Merge([]llb.State{lower, llb.Diff(lower, llb.Scratch())}))); len(got) != 0 {
		t.Errorf("merge(lower, diff(lower, scratch)) = %v, want nothing", got)
	}

	// The same tree: nothing. An empty lower: upper itself.
	if r := solveLLB(t, w, llb.Diff(lower, lower)); len(r.Layers) != 0 || r.Chain != "" {
		t.Errorf("diff(lower, lower) = %+v, want an empty filesystem", r)
	}
	got, err := w.Diff(context.Background(), &pb.DiffOp{Lower: &pb.LowerDiffInput{Input: -1}, Upper: &pb.UpperDiffInput{Input: 0}}, nil, rl)
	if err != nil || got.(*Ref) != rl {
		t.Errorf("diff(scratch, lower) = %v, %v; want lower's ref", got, err)
	}
}

// solveLLB marshals st and solves it on w.
func solveLLB(t *testing.T, w *Worker, st llb.State) *Ref {
	t.Helper()
	ctx := context.Background()
	def, err := st.Marshal(ctx)
	must(t, err)
	s, err := build.NewSolver(w, build.WithCache(w.Cache()), build.WithKeySalt(w.KeySalt()))
	must(t, err)
	res, err := s.Solve(ctx, def.ToPB())
	if err != nil {
		t.Fatalf("solve: %v", err)
	}
	return res.Ref.(*Ref)
}

// treeOf lists the files of r (through a read-only view of its snapshot)
// as path → "TYPE MODE[ CONTENT]": "d" for a directory, "-" for a regular
// file with its content, "l" for a symlink with its target, "c" for a
// character device with its number.
func treeOf(t *testing.T, w *Worker, r *Ref) map[string]string {
	t.Helper()
	if r.Chain == "" {
		return map[string]string{}
	}
	root, release, err := w.view(context.Background(), r)
	must(t, err)
	defer release()
	tree := map[string]string{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		mode := fmt.Sprintf("%04o", st.Mode&0o7777)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			tree[rel] = "d " + mode
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tree[rel] = "- " + mode + " " + string(b)
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			tree[rel] = "l " + target
		case unix.S_IFCHR:
			tree[rel] = fmt.Sprintf("c %d", st.Rdev)
		default:
			tree[rel] = fmt.Sprintf("? %o", st.Mode)
		}
		return nil
	})
	must(t, err)
	return tree
}

func equalTree(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// layerNames lists the entry names of layer i of r, in tar order.
func layerNames(t *testing.T, w *Worker, r *Ref, i int) []string {
	t.Helper()
	var names []string
	for _, e := range layerEntries(t, w, r, i) {
		name, _, _ := strings.Cut(e, " ")
		names = append(names, strings.TrimSuffix(name, "/"))
	}
	return names
}

// digests lists the digests of layers.
func digests(layers []ocispec.Descriptor) []digest.Digest {
	var ds []digest.Digest
	for _, l := range layers {
		ds = append(ds, l.Digest)
	}
	return ds
}

func count(kinds []build.OpKind, k build.OpKind) int {
	n := 0
	for _, x := range kinds {
		if x == k {
			n++
		}
	}
	return n
}

// checkFiles checks the content of files under root; what names where.
func checkFiles(t *testing.T, what, root string, files map[string]string) {
	t.Helper()
	for rel, want := range files {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil || string(b) != want {
			t.Errorf("%s: /%s = %q, %v; want %q", what, rel, b, err, want)
		}
	}
}

// readManifest reads the image manifest blob d of w's store.
func readManifest(t *testing.T, w *Worker, d digest.Digest) ocispec.Manifest {
	t.Helper()
	var m ocispec.Manifest
	must(t, w.blobs.ReadJSON(d, &m))
	return m
}

// umociRootfs writes the image of r with config cfg, exports it as an OCI
// layout, has skopeo convert its layers to gzip (umoci 0.4 cannot read
// zstd) and umoci unpack it, and returns umoci's rootfs.
func umociRootfs(t *testing.T, w *Worker, cfg dockerspec.DockerOCIImage, r *Ref) string {
	t.Helper()
	for _, tool := range []string{"skopeo", "umoci"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found (CI=true: not skipped)", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
	cfg.RootFS.DiffIDs = r.DiffIDs
	manifest, err := w.blobs.WriteDockerImage(cfg, r.Layers)
	must(t, err)
	dir := t.TempDir()
	zst, gz := filepath.Join(dir, "zstd"), filepath.Join(dir, "gzip")
	must(t, w.blobs.Export(manifest, oci.Reference{Transport: oci.TransportLayout, Path: zst, Tag: "built"}))
	if out, err := exec.Command("skopeo", "copy", "--quiet", "--dest-compress-format", "gzip", "oci:"+zst+":built", "oci:"+gz+":built").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	bundle := filepath.Join(dir, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", gz+":built", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	return filepath.Join(bundle, "rootfs")
}

// TestSolveLinkForms solves the other forms dockerfile2llb turns into
// merges: ADD --link of a local archive (unpacked by content, on scratch),
// COPY --link --parents (the source's parent directories kept, as
// include patterns), and COPY --link --from an image. Each linked layer
// holds only its own files; the stage's files stay. A linked copy through
// a path that is a symlink in the base (/bin -> usr/bin here) makes it a
// directory, as BuildKit documents: the copy cannot see the base.
func TestSolveLinkForms(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	w := newWorker(t)
	lay := filepath.Join(t.TempDir(), "layout")
	baseLayout(t, lay)
	baseDigest, baseConfig := loadLayout(t, w, lay)
	cdir := t.TempDir()
	write(t, cdir, "a/b/c.txt", "c\n", 0o644)
	write(t, cdir, "a/other.txt", "not selected\n", 0o644)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	must(t, tw.WriteHeader(&tar.Header{Name: "in-tar/", Typeflag: tar.TypeDir, Mode: 0o750}))
	must(t, tw.WriteHeader(&tar.Header{Name: "in-tar/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 7}))
	_, err := tw.Write([]byte("tarred\n"))
	must(t, err)
	must(t, tw.Close())
	write(t, cdir, "files.data", tb.String(), 0o644) // an archive by content, not by name
	must(t, w.AddLocal("context", cdir))

	df := `FROM base
RUN mkdir -p /unpacked && echo kept > /unpacked/kept.txt
ADD --link files.data /unpacked/
COPY --link --parents a/b/c.txt /dst/
COPY --link --from=base /etc/group /copied/group
COPY --link a/b/c.txt /bin/
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
	r := res.Ref.(*Ref)
	if len(r.Layers) != 6 {
		t.Fatalf("%d layers, want 6 (base, RUN, four linked copies)", len(r.Layers))
	}
	for i, want := range [][]string{
		{"unpacked", "unpacked/in-tar", "unpacked/in-tar/f"},
		{"dst", "dst/a", "dst/a/b", "dst/a/b/c.txt"},
		{"copied", "copied/group"},
		{"bin", "bin/c.txt"},
	} {
		if got := layerNames(t, w, r, 2+i); !slices.Equal(got, want) {
			t.Errorf("layer %d = %q, want %q", 2+i, got, want)
		}
	}
	view, release, err := w.view(ctx, r)
	must(t, err)
	defer release()
	checkFiles(t, "snapshot", view, map[string]string{
		"unpacked/kept.txt": "kept\n",
		"unpacked/in-tar/f": "tarred\n",
		"dst/a/b/c.txt":     "c\n",
		"copied/group":      "root:x:0:\napp:x:1000:\n",
		"etc/group":         "root:x:0:\napp:x:1000:\n",
	})
	if _, err := os.Lstat(filepath.Join(view, "dst/a/other.txt")); err == nil {
		t.Error("/dst/a/other.txt was copied; --parents selects a/b/c.txt only")
	}
	if st := lstat(t, filepath.Join(view, "bin")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("/bin is %o, want the linked copy's directory over the base's symlink", st.Mode)
	}
	if names, err := readNames(filepath.Join(view, "bin")); err != nil || !slices.Equal(names, []string{"c.txt"}) {
		t.Errorf("/bin holds %q, %v; want only c.txt", names, err)
	}
	if _, err := os.Lstat(filepath.Join(view, "usr/bin/sh")); err != nil {
		t.Errorf("/usr/bin/sh of the base: %v", err)
	}
	if st := lstat(t, filepath.Join(view, "unpacked/in-tar")); st.Mode&0o7777 != 0o750 {
		t.Errorf("/unpacked/in-tar mode %o, want 750 from the archive", st.Mode&0o7777)
	}
}

// TestSyncTree checks the tree copy behind general diffs on plain
// directories: afterwards dst lists as src does (types, owners, modes,
// mtimes, xattrs, content, symlink targets, hard links), and entries that
// were already equal are the same inodes as before (not rewritten).
func TestSyncTree(t *testing.T) {
	needRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	mtime := time.Unix(1_700_000_000, 0)
	both := func(rel, data string, mode os.FileMode) {
		for _, root := range []string{src, dst} {
			p := write(t, root, rel, data, mode)
			must(t, os.Chtimes(p, mtime, mtime))
		}
	}
	both("same.txt", "same", 0o644)
	both("content.txt", "aaaa", 0o644) // same size, other content in src
	both("mode.txt", "m", 0o644)
	both("owner.txt", "o", 0o644)
	both("xattr.txt", "x", 0o644)
	write(t, src, "content.txt", "bbbb", 0o644)
	must(t, os.Chtimes(filepath.Join(src, "content.txt"), mtime, mtime))
	must(t, os.Chmod(filepath.Join(src, "mode.txt"), 0o4755))
	must(t, os.Lchown(filepath.Join(src, "owner.txt"), 1000, 1000))
	must(t, unix.Lsetxattr(filepath.Join(src, "xattr.txt"), "user.k", []byte("v"), 0))
	// A file in dst becomes a directory, a directory a file.
	write(t, dst, "was-file", "f", 0o644)
	write(t, src, "was-file/inside", "i", 0o600)
	write(t, dst, "was-dir/deep/x", "x", 0o644)
	write(t, src, "was-dir", "now a file", 0o644)
	// Gone from src: a whole tree.
	write(t, dst, "gone/a/b", "b", 0o644)
	// Symlinks, and two names of one file.
	must(t, os.Symlink("same.txt", filepath.Join(dst, "link")))
	must(t, os.Symlink("mode.txt", filepath.Join(src, "link")))
	write(t, src, "hard1", "h", 0o644)
	must(t, os.Link(filepath.Join(src, "hard1"), filepath.Join(src, "hard2")))
	for _, root := range []string{src, dst} {
		must(t, os.Chtimes(root, mtime, mtime))
	}
	sameIno := lstat(t, filepath.Join(dst, "same.txt")).Ino

	must(t, syncTree(context.Background(), src, dst))

	if got, want := listTree(t, dst), listTree(t, src); !slices.Equal(got, want) {
		t.Errorf("after syncTree dst lists\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if lstat(t, filepath.Join(dst, "same.txt")).Ino != sameIno {
		t.Error("same.txt, equal in both, was rewritten")
	}
	if a, b := lstat(t, filepath.Join(dst, "hard1")), lstat(t, filepath.Join(dst, "hard2")); a.Ino != b.Ino {
		t.Error("hard1 and hard2 are one file in src, two in dst")
	}
}

// listTree lists every entry under root as "path type mode uid:gid mtime
// xattrs content-or-target", sorted.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st := lstat(t, p)
		x, err := xattrs(p)
		if err != nil {
			return err
		}
		e := fmt.Sprintf("%s %o %d:%d %d %v", rel, st.Mode, st.Uid, st.Gid, st.Mtim.Nano(), x)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			e += " " + readFile(t, p)
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			e += " -> " + target
		}
		out = append(out, e)
		return nil
	})
	must(t, err)
	slices.Sort(out)
	return out
}
