package worker

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/sandbox"
	"github.com/snapbuild/snapbuild/snapshot"
)

// newWorker returns a Worker on fresh stores in a temporary directory.
func newWorker(t *testing.T, opts ...Option) *Worker {
	t.Helper()
	return newWorkerAt(t, t.TempDir(), opts...)
}

// newWorkerAt returns a Worker on the stores in root, made when missing.
func newWorkerAt(t *testing.T, root string, opts ...Option) *Worker {
	t.Helper()
	blobs, err := oci.NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshot.New(filepath.Join(root, "snapshots"), sandbox.InUserNamespace())
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(blobs, snaps, filepath.Join(root, "worker"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// layerEntries lists the entries of a layer blob as "name mode uid:gid"
// (regular files also with their content).
func layerEntries(t *testing.T, w *Worker, r *Ref, i int) []string {
	t.Helper()
	rc, err := w.blobs.OpenLayer(r.Layers[i])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		e := fmt.Sprintf("%s %04o %d:%d", h.Name, h.Mode&0o7777, h.Uid, h.Gid)
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			e += " " + string(b)
		}
		out = append(out, e)
	}
}

func localOp(name string, attrs map[string]string) *pb.SourceOp {
	return &pb.SourceOp{Identifier: "local://" + name, Attrs: attrs}
}

// TestLocalSource checks a local:// source: its content key follows the
// content of the files it selects, not their mtimes nor excluded files, and
// its selection holds only the selected files, with their modes.
func TestLocalSource(t *testing.T) {
	ctx := context.Background()
	w := newWorker(t)
	dir := t.TempDir()
	write(t, dir, "main.go", "package main", 0o644)
	write(t, dir, "run.sh", "#!/bin/sh", 0o755)
	write(t, dir, "secret.env", "TOKEN=1", 0o600)
	write(t, dir, "build/out.bin", "big", 0o644)
	if err := w.AddLocal("context", dir); err != nil {
		t.Fatal(err)
	}
	if err := w.AddLocal("context", dir); err == nil {
		t.Error("registering a name twice: no error")
	}
	op := localOp("context", map[string]string{pb.AttrExcludePatterns: `["secret.env","build"]`})

	k1, err := w.ContentKey(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	if err := k1.Validate(); err != nil {
		t.Fatalf("content key %q: %v", k1, err)
	}
	key := func() digest.Digest {
		k, err := w.ContentKey(ctx, op)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	// An excluded file and an mtime do not change the key.
	write(t, dir, "secret.env", "TOKEN=2", 0o600)
	write(t, dir, "build/out.bin", "bigger", 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, "main.go"), old, old)
	if k := key(); k != k1 {
		t.Errorf("key changed with an excluded file or an mtime: %s -> %s", k1, k)
	}
	// Content, mode and new files do.
	seen := []digest.Digest{k1}
	for _, change := range []func(){
		func() { write(t, dir, "main.go", "package main // edited", 0o644) },
		func() { os.Chmod(filepath.Join(dir, "run.sh"), 0o700) },
		func() { write(t, dir, "new.txt", "", 0o644) },
	} {
		change()
		k := key()
		if slices.Contains(seen, k) {
			t.Errorf("key did not change: %s", k)
		}
		seen = append(seen, k)
	}

	ref, err := w.Source(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	r := ref.(*Ref)
	if r.Dir != dir || len(r.Layers) != 0 {
		t.Fatalf("local source ref = %+v, want the directory %s in place", r, dir)
	}
	view, release, err := w.view(ctx, r)
	must(t, err)
	defer release()
	var got []string
	filepath.WalkDir(view, func(p string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(view, p); rel != "." {
			got = append(got, rel)
		}
		return nil
	})
	if want := []string{"main.go", "new.txt", "run.sh"}; !slices.Equal(got, want) {
		t.Errorf("local source's selection holds %v, want %v", got, want)
	}
	if st := lstat(t, filepath.Join(view, "run.sh")); st.Mode&0o777 != 0o700 {
		t.Errorf("run.sh mode %o, want 700", st.Mode&0o777)
	}
}

// TestLocalSourceContentKey checks a local source registered with
// WithContentKey: its key is the caller's, whatever the files hold, and no
// selection of it gets a finer one; its result still holds its files.
func TestLocalSourceContentKey(t *testing.T) {
	ctx := context.Background()
	w := newWorker(t)
	dir := t.TempDir()
	write(t, dir, "app.py", "def f(): pass", 0o644)
	if err := w.AddLocal("bad", dir, WithContentKey("")); err == nil {
		t.Error("an empty content key: no error")
	}
	want := digest.FromString("definition of app.f")
	if err := w.AddLocal("fn", dir, WithContentKey(want)); err != nil {
		t.Fatal(err)
	}
	op := localOp("fn", nil)
	for _, edit := range []string{"", "def f(): pass\ndef g(): pass"} {
		if edit != "" {
			write(t, dir, "app.py", edit, 0o644)
		}
		if k, err := w.ContentKey(ctx, op); err != nil || k != want {
			t.Errorf("content key = %q, %v; want %q", k, err, want)
		}
	}
	if k, err := w.SelectionKey(ctx, op, []string{"app.py"}); err != nil || k != "" {
		t.Errorf("selection key = %q, %v; want \"\" (the whole source's key)", k, err)
	}
	ref, err := w.Source(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(ref.(*Ref).Dir, "app.py")); err != nil || !strings.Contains(string(b), "def g") {
		t.Errorf("the source holds %q, %v; want the edited app.py", b, err)
	}
}

// TestSelectionKey checks the checksum of what a copy reads from a local
// source: it follows the selected files (by path, wildcard or directory),
// not the others nor excluded ones, and is "" where a symbolic link decides
// what a copy reads.
func TestSelectionKey(t *testing.T) {
	ctx := context.Background()
	w := newWorker(t)
	dir := t.TempDir()
	write(t, dir, "requirements.txt", "requests==1", 0o644)
	write(t, dir, "app.py", "print(1)", 0o644)
	write(t, dir, "src/a.go", "package a", 0o644)
	write(t, dir, "src/b.txt", "b", 0o644)
	write(t, dir, "pkg/lib/x.py", "x = 1", 0o644)
	write(t, dir, "secret.env", "TOKEN=1", 0o600)
	if err := w.AddLocal("context", dir); err != nil {
		t.Fatal(err)
	}
	op := localOp("context", map[string]string{pb.AttrExcludePatterns: `["secret.env"]`})
	key := func(paths ...string) digest.Digest {
		t.Helper()
		k, err := w.SelectionKey(ctx, op, paths)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if k := key("/requirements.txt", "."); k != "" {
		t.Errorf("SelectionKey of the whole source = %q, want \"\" (its own key)", k)
	}
	sels := [][]string{{"/requirements.txt"}, {"src/*.go"}, {"pkg/"}, {"*"}, {"app.py", "src/b.txt"}}
	before := make([]digest.Digest, len(sels))
	for i, sel := range sels {
		if before[i] = key(sel...); before[i].Validate() != nil {
			t.Fatalf("SelectionKey(%q) = %q, want a digest", sel, before[i])
		}
	}
	if before[0] == key("requirements.txt", "app.py") {
		t.Error("two selections, one key")
	}
	// Each change: which selections it must change.
	for _, c := range []struct {
		name    string
		change  func()
		changed []bool // per sels entry
	}{
		{"edit app.py", func() { write(t, dir, "app.py", "print(2)", 0o644) }, []bool{false, false, false, true, true}},
		{"edit an excluded file", func() { write(t, dir, "secret.env", "TOKEN=2", 0o600) }, []bool{false, false, false, false, false}},
		{"edit src/b.txt", func() { write(t, dir, "src/b.txt", "bb", 0o644) }, []bool{false, false, false, true, true}},
		{"add src/c.go", func() { write(t, dir, "src/c.go", "package a", 0o644) }, []bool{false, true, false, true, false}},
		{"edit pkg/lib/x.py", func() { write(t, dir, "pkg/lib/x.py", "x = 2", 0o644) }, []bool{false, false, true, true, false}},
		{"chmod requirements.txt", func() { os.Chmod(filepath.Join(dir, "requirements.txt"), 0o600) }, []bool{true, false, false, true, false}},
	} {
		c.change()
		for i, sel := range sels {
			k := key(sel...)
			if (k != before[i]) != c.changed[i] {
				t.Errorf("%s: SelectionKey(%q) changed = %v, want %v", c.name, sel, k != before[i], c.changed[i])
			}
			before[i] = k
		}
	}

	// A symbolic link that a copy follows: no selection key.
	if err := os.Symlink("pkg", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, sel := range []string{"link", "link/lib/x.py", "l*"} {
		if k := key(sel); k != "" {
			t.Errorf("SelectionKey(%q) through a symbolic link = %q, want \"\"", sel, k)
		}
	}
	if k := key("/requirements.txt"); k != before[0] {
		t.Errorf("a link elsewhere changed SelectionKey(requirements.txt): %s -> %s", before[0], k)
	}
	// Not a local source, or not a pattern: "".
	if k, err := w.SelectionKey(ctx, &pb.SourceOp{Identifier: "docker-image://docker.io/library/alpine:3.20"}, []string{"x"}); k != "" || err != nil {
		t.Errorf("SelectionKey of an image = %q, %v; want \"\"", k, err)
	}
	if k := key("src/[a"); k != "" {
		t.Errorf("SelectionKey of a bad pattern = %q, want \"\"", k)
	}
}

func TestSourceErrors(t *testing.T) {
	ctx := context.Background()
	w := newWorker(t)
	for _, c := range []struct {
		id, want string
	}{
		{"local://nope", `no local source "nope" is registered`},
		{"docker-image://docker.io/library/debian:bookworm", "not pinned by digest"},
		{"docker-image://docker.io/library/debian@sha256:abc", "invalid"},
		{"docker-image://docker.io/library/debian:bookworm@sha256:" + strings.Repeat("a", 64), "is not in the store: pull or load the image first"},
		{"git://github.com/x/y", "git sources (ADD of a git repository) are not supported"},
		{"oci-layout://store/x", "oci-layout:// scheme is not supported"},
		{"https://", "not an http:// or https:// URL with a host"},
	} {
		_, err := w.Source(ctx, &pb.SourceOp{Identifier: c.id})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Source(%s) = %v, want an error with %q", c.id, err, c.want)
		}
	}
	// An image pinned by digest needs no content key.
	k, err := w.ContentKey(ctx, &pb.SourceOp{Identifier: "docker-image://docker.io/library/debian:bookworm@sha256:" + strings.Repeat("a", 64)})
	if err != nil || k != "" {
		t.Errorf("ContentKey(image by digest) = %q, %v; want \"\"", k, err)
	}
	if _, err := w.ContentKey(ctx, &pb.SourceOp{Identifier: "https://example.invalid/x"}); err == nil {
		t.Error("ContentKey(https://) accepted")
	}
}

// fileAction builds a pb.FileAction.
func fileAction(input, secondary, output int64, a any) *pb.FileAction {
	fa := &pb.FileAction{Input: input, SecondaryInput: secondary, Output: output}
	switch x := a.(type) {
	case *pb.FileActionCopy:
		fa.Action = &pb.FileAction_Copy{Copy: x}
	case *pb.FileActionMkFile:
		fa.Action = &pb.FileAction_Mkfile{Mkfile: x}
	case *pb.FileActionMkDir:
		fa.Action = &pb.FileAction_Mkdir{Mkdir: x}
	case *pb.FileActionRm:
		fa.Action = &pb.FileAction_Rm{Rm: x}
	}
	return fa
}

// TestFileOpOnScratch runs file ops on an empty filesystem (no overlay
// mount, so no root needed) and checks the layers they commit: a chain of
// actions is one layer, a heredoc-style mkfile read by a copy leaves no
// layer of its own, an op that changes nothing adds none.
func TestFileOpOnScratch(t *testing.T) {
	ctx := context.Background()
	w := newWorker(t)
	ts := int64(1_700_000_000) * 1e9

	// mkdir /app; mkfile /app/f: two chained actions, one output.
	op := &pb.FileOp{Actions: []*pb.FileAction{
		fileAction(-1, -1, -1, &pb.FileActionMkDir{Path: "/app", Mode: 0o755, MakeParents: true, Timestamp: ts}),
		fileAction(0, -1, 0, &pb.FileActionMkFile{Path: "/app/f", Data: []byte("hi"), Mode: 0o640, Timestamp: ts}),
	}}
	outs, err := w.File(ctx, op, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := outs[0].(*Ref)
	if len(r.Layers) != 1 || len(r.DiffIDs) != 1 || r.Chain != snapshot.ChainID("", r.DiffIDs[0]) {
		t.Fatalf("ref = %+v, want one layer with its chain ID", r)
	}
	// New entries belong to the process: root in the builder's namespace.
	me := fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	if got, want := layerEntries(t, w, r, 0), []string{"app/ 0755 " + me, "app/f 0640 " + me + " hi"}; !slices.Equal(got, want) {
		t.Errorf("layer = %q, want %q", got, want)
	}
	if !w.snaps.Exists(r.Chain) {
		t.Error("the output's snapshot is not committed")
	}

	// COPY <<EOF /etc/motd as dockerfile2llb writes it: mkfile on scratch
	// (no output), copied onto the base (scratch here; with no inputs,
	// index 0 names action 0).
	heredoc := &pb.FileOp{Actions: []*pb.FileAction{
		fileAction(-1, -1, -1, &pb.FileActionMkFile{Path: "/motd", Data: []byte("hello\n"), Mode: 0o644, Timestamp: -1}),
		fileAction(-1, 0, 0, copyOp("/motd", "/etc/motd")),
	}}
	outs, err = w.File(ctx, heredoc, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := outs[0].(*Ref)
	if len(h.Layers) != 1 {
		t.Fatalf("heredoc copy made %d layers, want 1", len(h.Layers))
	}
	entries := layerEntries(t, w, h, 0)
	if len(entries) != 2 || entries[0] != "etc/ 0755 "+me || entries[1] != "etc/motd 0644 "+me+" hello\n" {
		t.Errorf("heredoc layer = %q", entries)
	}

	// Mtimes in the layer are clamped to the epoch (the mkfile's was now).
	rc, err := w.blobs.OpenLayer(h.Layers[0])
	must(t, err)
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if !hdr.ModTime.Equal(defaultEpoch) {
			t.Errorf("%s: mtime %v in the layer, want the epoch %v", hdr.Name, hdr.ModTime, defaultEpoch)
		}
	}
	rc.Close()

	// rm of a missing path allowed: no change, no layer, the input back.
	nop := &pb.FileOp{Actions: []*pb.FileAction{fileAction(0, -1, 0, &pb.FileActionRm{Path: "/none", AllowNotFound: true})}}
	// The input here is r itself: a writable snapshot on r needs an
	// overlay mount, so it is only run as root.
	if os.Geteuid() == 0 {
		outs, err = w.File(ctx, nop, []build.Ref{r})
		if err != nil {
			t.Fatal(err)
		}
		if outs[0].(*Ref) != r {
			t.Errorf("a file op that changes nothing returned %+v, want its input", outs[0])
		}
	}

	// A failing action names itself and the path as the image sees it.
	bad := &pb.FileOp{Actions: []*pb.FileAction{fileAction(-1, -1, 0, &pb.FileActionMkFile{Path: "/no/dir/f", Mode: 0o644, Timestamp: -1})}}
	_, err = w.File(ctx, bad, nil)
	if err == nil || !strings.Contains(err.Error(), "mkfile /no/dir/f") || strings.Contains(err.Error(), w.dir) {
		t.Errorf("failing mkfile = %v", err)
	}

	// Cache: what Put records, Get returns while its snapshots and blobs
	// are there.
	c := w.Cache()
	key := digest.FromString("some vertex")
	if _, ok, err := c.Get(ctx, key); ok || err != nil {
		t.Fatalf("Get before Put = %v, %v", ok, err)
	}
	if err := c.Put(ctx, key, []build.Ref{r, h}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.Get(ctx, key)
	if err != nil || !ok || len(got) != 2 {
		t.Fatalf("Get after Put = %v, %v, %v", got, ok, err)
	}
	if g := got[1].(*Ref); g.Chain != h.Chain || !slices.Equal(g.DiffIDs, h.DiffIDs) || g.Layers[0].Digest != h.Layers[0].Digest || g.Layers[0].MediaType != h.Layers[0].MediaType {
		t.Errorf("Get = %+v, want %+v", g, h)
	}
	if err := os.Remove(w.blobs.Path(h.Layers[0].Digest)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Get(ctx, key); ok || err != nil {
		t.Errorf("Get with a layer blob gone = %v, %v; want a miss", ok, err)
	}
	// A local source is not recorded.
	lk := digest.FromString("local vertex")
	if err := c.Put(ctx, lk, []build.Ref{&Ref{Dir: t.TempDir()}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Get(ctx, lk); ok {
		t.Error("a local source's result was recorded")
	}
	if _, _, err := c.Get(ctx, "nonsense"); err == nil {
		t.Error("Get(bad key): no error")
	}
}
