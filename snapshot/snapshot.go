// Package snapshot keeps committed filesystem snapshots and prepares overlay
// mounts on top of them.
//
// The model is containerd's overlay snapshotter: a committed snapshot is the
// overlay upper dir of the step that made it, kept as it is (with overlay
// whiteouts and opaque markers) under <root>/<chainID>/fs, and it names its
// parent. An active snapshot is a fresh upper dir mounted over the chain of its
// parent's fs dirs (top-most first); committing it renames its upper dir into
// place. Snapshots are named by the OCI ChainID of the layers they hold, so two
// steps that produce the same layer on the same parent share one snapshot.
//
// Committed snapshots are immutable. Every mutation goes through a temporary
// directory under <root>/.tmp and a rename, so a killed process leaves at most
// a temporary directory behind, which CleanTemp removes.
package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/snapbuild/snapbuild/overlay"
)

// Store is a directory of committed snapshots. Its methods may be called
// concurrently.
type Store struct {
	root      string
	userXattr bool
	squash    bool       // SquashOwners
	commitMu  sync.Mutex // Commit's check and rename into place
}

// New opens the snapshot store at root. userXattr must be true when the process
// runs in a user namespace: overlay then keeps whiteout and opaque markers in
// user.overlay.* xattrs, and every mount of the store's snapshots must agree.
func New(root string, userXattr bool, opts ...Option) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(root, ".tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	s := &Store{root: root, userXattr: userXattr}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Option configures a Store opened with New.
type Option func(*Store)

// SquashOwners makes Apply unpack every entry as owned by 0:0, the only
// IDs a user namespace that maps one ID has (single-ID rootless mode),
// instead of failing on the first entry of another owner: what podman's
// ignore_chown_errors leaves on disk. The snapshot then differs from the
// layer in those entries' owners only; modes, setuid bits and content are
// kept. The default applies the layer's owners.
func SquashOwners(s *Store) { s.squash = true }

// UserXattr reports the overlay xattr namespace the store was opened with.
func (s *Store) UserXattr() bool { return s.userXattr }

// ChainID returns the OCI chain ID of diffID on top of parent ("" for a base
// layer): sha256(parent + " " + diffID), or diffID itself for a base layer.
func ChainID(parent, diffID digest.Digest) digest.Digest {
	if parent == "" {
		return diffID
	}
	return digest.FromString(parent.String() + " " + diffID.String())
}

func (s *Store) dir(id digest.Digest) string { return filepath.Join(s.root, id.Encoded()) }

// FS is the directory holding the files of committed snapshot id.
func (s *Store) FS(id digest.Digest) string { return filepath.Join(s.dir(id), "fs") }

// Exists reports whether snapshot id is committed.
func (s *Store) Exists(id digest.Digest) bool {
	_, err := os.Stat(filepath.Join(s.dir(id), "parent"))
	return err == nil
}

// Lowers returns the fs dirs of snapshot id and its ancestors, top-most first:
// the lowerdir list of a mount on top of id. id "" (no parent) gives nil.
func (s *Store) Lowers(id digest.Digest) ([]string, error) {
	var lowers []string
	for id != "" {
		b, err := os.ReadFile(filepath.Join(s.dir(id), "parent"))
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", id, err)
		}
		lowers = append(lowers, s.FS(id))
		parent := strings.TrimSpace(string(b))
		if parent == "" {
			break
		}
		id = digest.Digest(parent)
		if err := id.Validate(); err != nil {
			return nil, fmt.Errorf("snapshot store is corrupt: parent of a snapshot: %w", err)
		}
		if len(lowers) > 500 {
			return nil, fmt.Errorf("snapshot %s: chain longer than 500 layers (overlay's limit): squash the image", id)
		}
	}
	return lowers, nil
}

// Active is a writable snapshot being prepared: an upper and a work dir in a
// temporary directory, mounted over the parent's chain at Rootfs.
type Active struct {
	Dir     string   // temporary directory holding fs/, work/ and rootfs/
	Upper   string   // Dir/fs: the overlay upper dir, i.e. the step's changes
	Rootfs  string   // Dir/rootfs: the merged mount
	Lowers  []string // the parent chain, top-most first
	Parent  digest.Digest
	mounted bool
	store   *Store
}

// Prepare creates an active snapshot on top of committed snapshot parent (""
// for an empty rootfs) and mounts it.
func (s *Store) Prepare(parent digest.Digest) (*Active, error) {
	dir, err := os.MkdirTemp(filepath.Join(s.root, ".tmp"), fmt.Sprintf("active-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("snapshot prepare: %w", err)
	}
	a := &Active{Dir: dir, Upper: filepath.Join(dir, "fs"), Rootfs: filepath.Join(dir, "rootfs"),
		Parent: parent, store: s}
	// The parent file says which chain the active snapshot mounts, so that
	// a prune keeps it (ActiveParents); it is written before the chain is
	// read. Commit rewrites it.
	if err := writeParent(dir, parent); err != nil {
		a.Remove()
		return nil, fmt.Errorf("snapshot prepare: %w", err)
	}
	if a.Lowers, err = s.Lowers(parent); err != nil {
		a.Remove()
		return nil, err
	}
	lowers := a.Lowers
	for _, d := range []string{a.Upper, filepath.Join(dir, "work"), a.Rootfs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			a.Remove()
			return nil, fmt.Errorf("snapshot prepare: %w", err)
		}
	}
	if len(lowers) == 0 {
		// Nothing below: the upper dir is the rootfs.
		if err := os.Remove(a.Rootfs); err != nil {
			a.Remove()
			return nil, err
		}
		a.Rootfs = a.Upper
		return a, nil
	}
	m := overlay.Mount{Lowers: lowers, Upper: a.Upper, Work: filepath.Join(dir, "work"), UserXattr: s.userXattr}
	if err := m.Mount(a.Rootfs); err != nil {
		a.Remove()
		return nil, fmt.Errorf("snapshot prepare on %s: %w", parent, err)
	}
	a.mounted = true
	return a, nil
}

// View mounts committed snapshot id read-only in a temporary directory, for
// copying files out of it. Remove the returned Active when done.
func (s *Store) View(id digest.Digest) (*Active, error) {
	if id == "" {
		return nil, errors.New("snapshot view: an empty image has no files")
	}
	dir, err := os.MkdirTemp(filepath.Join(s.root, ".tmp"), fmt.Sprintf("active-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("snapshot view: %w", err)
	}
	a := &Active{Dir: dir, Rootfs: filepath.Join(dir, "rootfs"), Parent: id, store: s}
	if err := writeParent(dir, id); err != nil { // see Prepare
		a.Remove()
		return nil, fmt.Errorf("snapshot view: %w", err)
	}
	lowers, err := s.Lowers(id)
	if err != nil {
		a.Remove()
		return nil, err
	}
	a.Lowers = lowers
	if err := os.Mkdir(a.Rootfs, 0o755); err != nil {
		a.Remove()
		return nil, err
	}
	if err := (overlay.Mount{Lowers: lowers, UserXattr: s.userXattr}).Mount(a.Rootfs); err != nil {
		a.Remove()
		return nil, fmt.Errorf("snapshot view of %s: %w", id, err)
	}
	a.mounted = true
	return a, nil
}

// Unmount unmounts the merged rootfs; the upper dir stays. It is idempotent.
func (a *Active) Unmount() error {
	if !a.mounted {
		return nil
	}
	if err := overlay.Unmount(a.Rootfs); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	a.mounted = false
	return nil
}

// Remove unmounts and deletes the active snapshot. It is idempotent.
func (a *Active) Remove() error {
	err := a.Unmount()
	return errors.Join(err, os.RemoveAll(a.Dir))
}

// Commit unmounts a and makes its upper dir the committed snapshot id on top of
// a.Parent. If id is already committed (the same layer was made before), a is
// removed instead. After Commit, a must not be used.
func (s *Store) Commit(a *Active, id digest.Digest) error {
	if err := a.Unmount(); err != nil {
		return err
	}
	defer a.Remove()
	// Two commits of one id (the same layer made twice at once) must not
	// clear each other's rename.
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.Exists(id) {
		return nil
	}
	if err := os.RemoveAll(filepath.Join(a.Dir, "work")); err != nil {
		return fmt.Errorf("snapshot commit %s: %w", id, err)
	}
	os.Remove(filepath.Join(a.Dir, "rootfs"))
	if err := writeParent(a.Dir, a.Parent); err != nil {
		return fmt.Errorf("snapshot commit %s: %w", id, err)
	}
	// A leftover from a crash between a rename and its parent file cannot
	// exist (the parent file is written first), but a stale dir without one
	// can: clear it.
	if err := os.RemoveAll(s.dir(id)); err != nil {
		return fmt.Errorf("snapshot commit %s: %w", id, err)
	}
	if err := os.Rename(a.Dir, s.dir(id)); err != nil {
		return fmt.Errorf("snapshot commit %s: %w", id, err)
	}
	return nil
}

func writeParent(dir string, parent digest.Digest) error {
	f, err := os.Create(filepath.Join(dir, "parent"))
	if err != nil {
		return err
	}
	if _, err := f.WriteString(parent.String() + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// CleanTemp removes active snapshots left behind by killed processes, after
// unmounting them if they are still mounted in this mount namespace. Active
// snapshots of live processes (a long-running container) are kept.
func (s *Store) CleanTemp() error {
	tmp := filepath.Join(s.root, ".tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if ownerAlive(e.Name()) {
			continue
		}
		d := filepath.Join(tmp, e.Name())
		_ = overlay.Unmount(filepath.Join(d, "rootfs"))
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}

// ownerAlive reports whether the process that created the active snapshot
// dir name ("active-<pid>-<random>") still runs.
func ownerAlive(name string) bool {
	var pid int
	if _, err := fmt.Sscanf(name, "active-%d-", &pid); err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return false
	}
	if err := unix.Kill(pid, 0); err != nil && err != unix.EPERM {
		return false
	}
	// A zombie (killed, not yet reaped) holds nothing any more.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

// Parent returns the parent of committed snapshot id ("" for a base
// snapshot). A snapshot that is not committed is an error wrapping
// os.ErrNotExist.
func (s *Store) Parent(id digest.Digest) (digest.Digest, error) {
	return readParent(s.dir(id))
}

func readParent(dir string) (digest.Digest, error) {
	b, err := os.ReadFile(filepath.Join(dir, "parent"))
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", filepath.Base(dir), err)
	}
	p := digest.Digest(strings.TrimSpace(string(b)))
	if p == "" {
		return "", nil
	}
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("snapshot store is corrupt: parent of %s: %w", filepath.Base(dir), err)
	}
	return p, nil
}

// Walk calls fn with the ID of every committed snapshot, in no particular
// order. Directories that are not committed snapshots (no parent file: a
// commit or remove cut short) are skipped. An error from fn stops the walk
// and is returned.
func (s *Store) Walk(fn func(id digest.Digest) error) error {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	for _, e := range ents {
		id := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if !e.IsDir() || id.Validate() != nil || !s.Exists(id) {
			continue
		}
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

// ActiveParents returns the snapshots that active snapshots of live
// processes (a build's step, a running container, a view) are mounted on,
// as recorded when they were prepared; "" stands for an empty rootfs. An
// active snapshot of a live process whose parent is not recorded (made by
// an older snapbuild, or still being prepared) makes ok false: the caller
// cannot tell what it uses and must keep every snapshot.
func (s *Store) ActiveParents() (parents []digest.Digest, ok bool, err error) {
	ents, err := os.ReadDir(filepath.Join(s.root, ".tmp"))
	if err != nil {
		return nil, false, fmt.Errorf("snapshot store: %w", err)
	}
	ok = true
	for _, e := range ents {
		if !ownerAlive(e.Name()) {
			continue
		}
		p, err := readParent(filepath.Join(s.root, ".tmp", e.Name()))
		if err != nil {
			ok = false
			continue
		}
		parents = append(parents, p)
	}
	return parents, ok, nil
}

// Remove deletes committed snapshot id; a snapshot that is not there is no
// error. The snapshot is first renamed into the store's temporary directory,
// so Exists is false at once and a remove cut short leaves a directory that
// CleanTemp deletes. Remove does not check for children: a snapshot that
// others name as parent must be removed after them (its children's mounts
// would fail), and one an active snapshot is mounted on must not be removed
// (see ActiveParents).
func (s *Store) Remove(id digest.Digest) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("snapshot remove: %w", err)
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	tmp, err := os.MkdirTemp(filepath.Join(s.root, ".tmp"), "removed-")
	if err != nil {
		return fmt.Errorf("snapshot remove %s: %w", id, err)
	}
	dst := filepath.Join(tmp, "snapshot")
	if err := os.Rename(s.dir(id), dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		os.Remove(tmp)
		return fmt.Errorf("snapshot remove %s: %w", id, err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("snapshot remove %s: %w", id, err)
	}
	return nil
}
