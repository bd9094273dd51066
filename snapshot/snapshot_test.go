package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("overlay mounts need root (CI=true)")
		}
		t.Skip("overlay mounts need root")
	}
}

func TestChainID(t *testing.T) {
	a, b := digest.FromString("a"), digest.FromString("b")
	if ChainID("", a) != a {
		t.Error("the chain ID of a base layer is its diffID")
	}
	if want := digest.FromString(a.String() + " " + b.String()); ChainID(a, b) != want {
		t.Errorf("ChainID(a, b) = %s, want %s (OCI image spec)", ChainID(a, b), want)
	}
}

// TestPrepareCommit stacks three snapshots and checks what each mount sees.
func TestPrepareCommit(t *testing.T) {
	needRoot(t)
	s, err := New(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	base, err := s.Prepare("")
	if err != nil {
		t.Fatal(err)
	}
	if base.Rootfs != base.Upper {
		t.Errorf("a snapshot without parent is written in place: rootfs %s, upper %s", base.Rootfs, base.Upper)
	}
	os.WriteFile(filepath.Join(base.Rootfs, "a"), []byte("base"), 0o644)
	id1 := digest.FromString("layer1")
	if err := s.Commit(base, id1); err != nil {
		t.Fatal(err)
	}
	if !s.Exists(id1) {
		t.Fatal("committed snapshot missing")
	}

	a2, err := s.Prepare(id1)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(a2.Rootfs, "a")); err != nil || string(b) != "base" {
		t.Fatalf("the child does not see its parent: %q %v", b, err)
	}
	os.WriteFile(filepath.Join(a2.Rootfs, "b"), []byte("two"), 0o644)
	if err := os.Remove(filepath.Join(a2.Rootfs, "a")); err != nil {
		t.Fatal(err)
	}
	id2 := ChainID(id1, digest.FromString("layer2"))
	if err := s.Commit(a2, id2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a2.Dir); !os.IsNotExist(err) {
		t.Errorf("the active dir outlived its commit: %v", err)
	}
	lowers, err := s.Lowers(id2)
	if err != nil || len(lowers) != 2 || lowers[0] != s.FS(id2) || lowers[1] != s.FS(id1) {
		t.Fatalf("Lowers = %v, %v; want [%s %s]", lowers, err, s.FS(id2), s.FS(id1))
	}

	a3, err := s.Prepare(id2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(a3.Rootfs, "a")); !os.IsNotExist(err) {
		t.Errorf("a file deleted in the parent is visible: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(a3.Rootfs, "b")); string(b) != "two" {
		t.Errorf("b = %q", b)
	}
	// Commit of an existing chain ID keeps the first and drops this one.
	os.WriteFile(filepath.Join(a3.Rootfs, "c"), nil, 0o644)
	if err := s.Commit(a3, id2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.FS(id2), "c")); !os.IsNotExist(err) {
		t.Error("a second commit of one chain ID replaced the first")
	}
	if err := a3.Remove(); err != nil {
		t.Errorf("Remove after Commit: %v", err)
	}
}

func TestCleanTemp(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	s, err := New(root, false)
	if err != nil {
		t.Fatal(err)
	}
	parent, _ := s.Prepare("")
	id := digest.FromString("p")
	if err := s.Commit(parent, id); err != nil {
		t.Fatal(err)
	}
	mine, err := s.Prepare(id) // mounted, owned by this (live) process
	if err != nil {
		t.Fatal(err)
	}
	// A dead process's leftovers: pid 0x7ffffffe does not exist.
	dead := filepath.Join(root, ".tmp", "active-2147483646-123")
	os.MkdirAll(filepath.Join(dead, "fs"), 0o755)
	if err := s.CleanTemp(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Error("a dead process's active snapshot was kept")
	}
	// The caller holds the build lock, so its own earlier active snapshots
	// are leftovers too: unmounted, then removed.
	if _, err := os.Stat(mine.Dir); !os.IsNotExist(err) {
		t.Errorf("this process's active snapshot was kept: %v", err)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), mine.Rootfs) {
		t.Errorf("%s is still mounted", mine.Rootfs)
	}
	ents, _ := os.ReadDir(filepath.Join(root, ".tmp"))
	if len(ents) != 0 {
		t.Errorf("left in .tmp: %v", ents)
	}
}

func TestLowersErrors(t *testing.T) {
	s, err := New(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := s.Lowers(""); err != nil || l != nil {
		t.Errorf("Lowers(\"\") = %v, %v", l, err)
	}
	if _, err := s.Lowers(digest.FromString("missing")); err == nil {
		t.Error("Lowers of a missing snapshot: no error")
	}
}

// layerTar returns an uncompressed tar layer of regular files (name ->
// content; a ".wh." name is a whiteout) and its diffID.
func layerTar(t *testing.T, files map[string]string) ([]byte, digest.Digest) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[name]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), digest.FromBytes(buf.Bytes())
}

// TestApply unpacks layers into snapshots: the diffID is checked (a
// mismatch commits nothing), a whiteout that hides a file of the parent
// stays, one that hides nothing is dropped.
func TestApply(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s, err := New(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	base, baseID := layerTar(t, map[string]string{"a": "a", "b": "b"})
	bad := digest.FromString("bad")
	if _, err := s.Apply(ctx, "", bad, bytes.NewReader(base), digest.FromString("other")); err == nil || !strings.Contains(err.Error(), "diffID mismatch") {
		t.Errorf("a wrong diffID: %v", err)
	}
	if s.Exists(bad) {
		t.Error("a layer with a wrong diffID was committed")
	}
	if _, err := s.Apply(ctx, "", baseID, bytes.NewReader(base), baseID); err != nil {
		t.Fatal(err)
	}
	upper, upperID := layerTar(t, map[string]string{".wh.a": "", ".wh.ghost": "", "c": "c"})
	chain := ChainID(baseID, upperID)
	if _, err := s.Apply(ctx, baseID, chain, bytes.NewReader(upper), upperID); err != nil {
		t.Fatal(err)
	}
	fs := s.FS(chain)
	for name, want := range map[string]bool{"a": true, "ghost": false, "c": true} {
		_, err := os.Lstat(filepath.Join(fs, name))
		if got := err == nil; got != want {
			t.Errorf("%s in the upper dir: %v, want %v", name, got, want)
		}
	}
	v, err := s.View(chain)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Remove()
	var names []string
	ents, _ := os.ReadDir(v.Rootfs)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"b", "c"}) {
		t.Errorf("the snapshot holds %q, want [b c]", names)
	}
}

func TestRemoveWalkActiveParents(t *testing.T) {
	s, err := New(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	commit := func(id, parent digest.Digest) {
		t.Helper()
		a, err := s.Prepare("")
		if err != nil {
			t.Fatal(err)
		}
		a.Parent = parent
		if err := s.Commit(a, id); err != nil {
			t.Fatal(err)
		}
	}
	base, child := ChainID("", digest.FromString("a")), ChainID(ChainID("", digest.FromString("a")), digest.FromString("b"))
	commit(base, "")
	commit(child, base)
	var ids []digest.Digest
	if err := s.Walk(func(id digest.Digest) error { ids = append(ids, id); return nil }); err != nil || len(ids) != 2 {
		t.Fatalf("Walk = %v, %v; want both snapshots", ids, err)
	}
	if p, err := s.Parent(child); err != nil || p != base {
		t.Errorf("Parent(child) = %s, %v; want %s", p, err, base)
	}
	if p, err := s.Parent(base); err != nil || p != "" {
		t.Errorf("Parent(base) = %q, %v; want \"\"", p, err)
	}
	// This process's own active snapshot: prepared on base, it records it.
	a, err := s.Prepare("")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Remove()
	if b, err := os.ReadFile(filepath.Join(a.Dir, "parent")); err != nil || string(b) != "\n" {
		t.Errorf("active snapshot's parent file = %q, %v; want an empty parent", b, err)
	}
	// A live process's active snapshot on child is reported; this
	// process's own are not (a build cleans them itself).
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	other := filepath.Join(s.root, ".tmp", fmt.Sprintf("active-%d-x", sleep.Process.Pid))
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeParent(other, child); err != nil {
		t.Fatal(err)
	}
	if ps, ok, err := s.ActiveParents(); err != nil || !ok || len(ps) != 1 || ps[0] != child {
		t.Errorf("ActiveParents = %v, %v, %v; want [%s], true", ps, ok, err, child)
	}
	os.Remove(filepath.Join(other, "parent"))
	if _, ok, err := s.ActiveParents(); err != nil || ok {
		t.Errorf("ActiveParents with an unrecorded parent: ok = %v, %v; want false", ok, err)
	}
	if err := s.Remove(child); err != nil {
		t.Fatal(err)
	}
	if s.Exists(child) || !s.Exists(base) {
		t.Error("Remove(child) did not remove child alone")
	}
	if err := s.Remove(child); err != nil {
		t.Errorf("Remove of a missing snapshot = %v, want nil", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.root, ".tmp")); len(ents) != 2 {
		t.Errorf("Remove left %d entries in .tmp, want the 2 active snapshots", len(ents))
	}
}
