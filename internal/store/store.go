// Package store keeps snapbuild's local state under one root directory: the
// OCI content (package oci), the committed overlay snapshots (package
// snapshot), and the JSON records that tie them together: the step cache,
// the built images, and the names given to them.
//
// Layout under the root directory:
//
//	lock                 flock(2) held exclusively by a build, shared by readers
//	pin                  flock(2) held shared by every process that has built
//	                     (until it closes the store), exclusively by a prune
//	mode                 "root" or "rootless": who made the store (see CheckMode)
//	idmap                rootless: "subids" or "single", the user namespace
//	                     the snapshots were unpacked in (see CheckIDMap)
//	blobs/sha256/<hex>   layers, configs and manifests (OCI content)
//	snapshots/<hex>/fs   committed overlay upper dirs, named by chain ID
//	steps/<hex>.json     step cache: step key -> layer, diffID, chain ID (Step)
//	bases/<hex>.json     the Debian base pinned for a base definition (a Step
//	                     and its archive state), or registry-<hex>.json:
//	                     the image pulled for a from_registry reference
//	images/<im-id>.json  built images: manifest, chain ID, shell (Image)
//	metadata/<hex>.json  probed metadata of an image, by manifest digest
//	names.json           image names -> image IDs
//	sources.json         names given by builds -> the file that defined the image
//	mounts.json          names -> runtime mounts (add_local_* copy=False)
//	volumes/<name>/      Modal volumes kept in the store (never pruned)
//	run/<pid>/           state of `snapbuild run` containers
//	tmp/                 libcontainer state and scratch; emptied by each build
//	worker/              the build worker's files: cache/ (cache mounts),
//	                     pkgcache/ (package caches of installer steps),
//	                     keys/ (solver cache records) and contenthash/ (file
//	                     hashes of local sources) are kept; tmp/ (copies of
//	                     local sources) and run/ (sandbox state, secret
//	                     files) are emptied by each build
//
// Every record is written to a temporary file and renamed (package
// internal/atomicfile), after the blobs and snapshots it names are in place,
// so a killed build leaves the store consistent: at worst some unreferenced
// content and temporary files, which the next build removes (LockExclusive).
// Prune removes in the opposite order: records first, then what no record
// names; DiskUsage says what uses the space.
//
// A Store is safe for concurrent use. Processes (and several Stores opened
// on one root) serialize on the lock file: a build holds it exclusively,
// readers share it. Goroutines of one Store share its lock: the first to
// lock takes the file lock, the last to unlock releases it, and builds that
// run at once in one process (several images of one recipe) coordinate
// through finer locks of their own (per cache key, per snapshot). A build's result has no name until the
// builder names it, after the build lock is released; so a Store that took
// the build lock also holds the pin file shared until it is closed, and a
// prune (LockPrune) waits for every such Store to close.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/snapbuild/snapbuild/internal/atomicfile"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/registry"
	"github.com/snapbuild/snapbuild/sandbox"
	"github.com/snapbuild/snapbuild/snapshot"
)

// Store is an open store directory. Open returns it; Close releases it.
type Store struct {
	root   string
	blobs  *oci.Store
	snaps  *snapshot.Store
	lock   *os.File
	pin    *os.File
	pinned int // how pin is held: 0, unix.LOCK_SH (built) or unix.LOCK_EX (pruning)

	// The lock as this Store's goroutines hold it: holders of mode
	// (unix.LOCK_SH or unix.LOCK_EX; 0 when none). lockMu guards them and
	// pinned; released is signalled when holders drops to 0.
	lockMu   sync.Mutex
	released *sync.Cond
	holders  int
	mode     int
}

// Step is one step cache entry, stored as steps/<Key>.json. The record
// pinning a base definition's Debian base, under bases/, holds a Step's
// fields too.
type Step struct {
	Key         string             `json:"key"`
	Instruction string             `json:"instruction"`
	Empty       bool               `json:"empty,omitempty"` // the step changed no file
	Layer       ocispec.Descriptor `json:"layer,omitzero"`
	DiffID      digest.Digest      `json:"diffID,omitempty"`
	ChainID     digest.Digest      `json:"chainID,omitempty"`
	Python      string             `json:"python,omitempty"` // bases: full Python version
}

// Image is one built image (one Modal layer's result), stored as
// images/<ID>.json.
type Image struct {
	ID       string             `json:"id"`
	Manifest ocispec.Descriptor `json:"manifest"`
	ChainID  digest.Digest      `json:"chainID,omitempty"`
	Shell    []string           `json:"shell,omitempty"`
	// Health is the HEALTHCHECK, kept here so that images built on this
	// one inherit it (it is also in the config, as Docker's extension).
	Health *dockerspec.HealthcheckConfig `json:"healthcheck,omitempty"`
	Parent string                        `json:"parent,omitempty"`
}

// OpenOption changes what Open checks.
type OpenOption func(*openConfig)

type openConfig struct{ anyIDMap bool }

// AnyIDMap makes Open skip CheckIDMap, for a caller that reads only the
// store's records and file sizes (df), never a snapshot's owners: a store
// of either rootless ID mapping then opens, and none is recorded.
var AnyIDMap OpenOption = func(c *openConfig) { c.anyIDMap = true }

// Open opens the store at root (made absolute), creating its directories
// when they do not exist, and checks that it was made in the same mode, root
// or rootless, as this process runs in (CheckMode), and, rootless in the
// build namespace, with the same ID mapping (CheckIDMap; not with
// AnyIDMap). It takes no lock. Open fails naming root when root is "",
// when the directories cannot be made (a store of another user says so),
// or when the mode or mapping differs.
func Open(root string, opts ...OpenOption) (*Store, error) {
	var cfg openConfig
	for _, o := range opts {
		o(&cfg)
	}
	if root == "" {
		return nil, errors.New("store: no root directory given")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"steps", "bases", "images", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			if errors.Is(err, os.ErrPermission) {
				return nil, fmt.Errorf("store %s is not writable by this user (made by another user, or by root?): use a store of your own with --root or SNAPBUILD_ROOT", abs)
			}
			return nil, fmt.Errorf("store %s: %w", abs, err)
		}
	}
	blobs, err := oci.NewStore(abs)
	if err != nil {
		return nil, err
	}
	var snapOpts []snapshot.Option
	if sandbox.SingleID() {
		// One ID mapped: layers' other owners become 0 (podman's
		// ignore_chown_errors).
		snapOpts = append(snapOpts, snapshot.SquashOwners)
	}
	snaps, err := snapshot.New(filepath.Join(abs, "snapshots"), sandbox.InUserNamespace(), snapOpts...)
	if err != nil {
		return nil, err
	}
	if err := CheckMode(abs, sandbox.InUserNamespace()); err != nil {
		return nil, err
	}
	if sandbox.Entered() && sandbox.InUserNamespace() && !cfg.anyIDMap {
		if err := CheckIDMap(abs, sandbox.SingleID()); err != nil {
			return nil, err
		}
	}
	lock, err := os.OpenFile(filepath.Join(abs, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", abs, err)
	}
	pin, err := os.OpenFile(filepath.Join(abs, "pin"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("store %s: %w", abs, err)
	}
	st := &Store{root: abs, blobs: blobs, snaps: snaps, lock: lock, pin: pin}
	st.released = sync.NewCond(&st.lockMu)
	return st, nil
}

// CheckMode refuses to mix rootless and root use of the store at root: their
// snapshots keep overlay markers in different xattr namespaces (trusted.overlay.*
// as root, user.overlay.* in a user namespace). The first call on a store
// records the mode in root/mode; later calls compare with it and fail with an
// error naming both modes when they differ.
func CheckMode(root string, rootless bool) error {
	mode := "root"
	if rootless {
		mode = "rootless"
	}
	return checkMarker(root, "mode", mode, func(got string) error {
		return fmt.Errorf("store %s was made by a %s snapbuild and cannot be used %s: use another --root", root, got, map[string]string{"root": "as root", "rootless": "rootless"}[mode])
	})
}

// checkMarker records mode in the file root/name when it does not exist,
// else compares: a different word there is mismatch(word).
func checkMarker(root, name, mode string, mismatch func(got string) error) error {
	p := filepath.Join(root, name)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return atomicfile.Write(p, []byte(mode+"\n"), 0o644)
	}
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(string(b)); got != mode {
		return mismatch(got)
	}
	return nil
}

// CheckIDMap refuses to mix the rootless ID mappings on the store at root.
// In single-ID mode (sandbox.UserNSSingle) layers are unpacked with every
// owner squashed to 0 under the same chain IDs as with subordinate IDs, so a
// snapshot of one mode is wrong in the other: owners lost, or owned by IDs
// the single-ID namespace does not map. The first call from inside the
// build namespace records the mode in root/idmap ("subids" or "single");
// later calls compare with it and fail with an error naming both modes and
// the fix when they differ. Processes outside the namespace read no
// snapshot's owners and do not call it.
func CheckIDMap(root string, single bool) error {
	mode := "subids"
	if single {
		mode = "single"
	}
	return checkMarker(root, "idmap", mode, func(got string) error {
		return fmt.Errorf("store %s holds snapshots unpacked with %s ID mapping and cannot be used with %s mapping (SNAPBUILD_USERNS): its layers' owners would be wrong; use another --root for this mapping, or SNAPBUILD_USERNS=%s", root, got, mode, got)
	})
}

// Root is the store directory, absolute.
func (s *Store) Root() string { return s.root }

// Blobs is the store's OCI content: layers, configs and manifests.
func (s *Store) Blobs() *oci.Store { return s.blobs }

// Snapshots is the store's committed overlay snapshots, named by chain ID.
func (s *Store) Snapshots() *snapshot.Store { return s.snaps }

// Close releases the lock files (and with them any lock held).
func (s *Store) Close() error { return errors.Join(s.lock.Close(), s.pin.Close()) }

// LockExclusive takes the build lock, waiting (and saying so on stderr) while
// another process holds it, and then clears what a killed build left:
// temporary blobs and snapshots and the contents of tmp/, worker/tmp/ and
// worker/run/. The first call also pins the store until Close: a prune
// waits for the images this Store builds to be named (see Store).
// While another goroutine of this Store holds the build lock, it returns at
// once and clears nothing; while this Store holds the lock shared, it waits
// for those holders to unlock.
func (s *Store) LockExclusive() error {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	for s.holders > 0 && s.mode == unix.LOCK_SH {
		s.released.Wait()
	}
	if s.holders == 0 {
		// The pin first: a prune takes it before the build lock, so no
		// two processes wait for each other.
		if s.pinned == 0 {
			if err := s.flock(s.pin, unix.LOCK_SH, "waiting for snapbuild prune on %s..."); err != nil {
				return err
			}
			s.pinned = unix.LOCK_SH
		}
		if err := s.lockBuild(); err != nil {
			return err
		}
		s.mode = unix.LOCK_EX
	}
	s.holders++
	return nil
}

// LockPrune takes the store for a prune: it waits (saying so on stderr)
// until no other Store that has built is open, in any process, and takes
// the build lock as LockExclusive does. Builds wait for the prune until
// Unlock. It must be the first lock a Store takes.
func (s *Store) LockPrune() error {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.pinned != 0 || s.holders != 0 {
		return fmt.Errorf("store %s: LockPrune after a build lock on the same Store: use a Store of its own", s.root)
	}
	if err := s.flock(s.pin, unix.LOCK_EX, "waiting for snapbuild processes that build on %s to finish..."); err != nil {
		return err
	}
	s.pinned = unix.LOCK_EX
	if err := s.lockBuild(); err != nil {
		return err
	}
	s.mode, s.holders = unix.LOCK_EX, 1
	return nil
}

// flock takes lock how on f, first without waiting; when it has to wait it
// says so on stderr with msg (given the root).
func (s *Store) flock(f *os.File, how int, msg string) error {
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		fmt.Fprintf(os.Stderr, msg+"\n", s.root)
		if err := unix.Flock(int(f.Fd()), how); err != nil {
			return fmt.Errorf("store %s: lock: %w", s.root, err)
		}
	}
	return nil
}

// lockBuild takes the build lock and clears what a killed build left.
func (s *Store) lockBuild() error {
	if err := s.flock(s.lock, unix.LOCK_EX, "waiting for another snapbuild build on %s..."); err != nil {
		return err
	}
	errs := []error{s.blobs.CleanTemp(), s.snaps.CleanTemp(), CleanDir(filepath.Join(s.root, "tmp"))}
	for _, d := range workerScratch {
		// A store no build has solved in yet has no worker/.
		if err := CleanDir(filepath.Join(s.root, d)); !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// workerScratch is the build worker's directories of per-build files, which
// a killed build leaves behind.
var workerScratch = []string{filepath.Join("worker", "tmp"), filepath.Join("worker", "run")}

// LockShared takes the lock as a reader: it waits for a running build and
// lets other readers in, and clears nothing. While another goroutine of this
// Store holds the lock, in either mode, it returns at once.
func (s *Store) LockShared() error {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.holders == 0 {
		if err := unix.Flock(int(s.lock.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
			fmt.Fprintf(os.Stderr, "waiting for another snapbuild build on %s...\n", s.root)
			if err := unix.Flock(int(s.lock.Fd()), unix.LOCK_SH); err != nil {
				return fmt.Errorf("store %s: lock: %w", s.root, err)
			}
		}
		s.mode = unix.LOCK_SH
	}
	s.holders++
	return nil
}

// Unlock releases one hold of the lock taken by LockExclusive, LockShared or
// LockPrune. The last hold releases the file lock; when it was the build
// lock, it first empties tmp/ (a build's scratch). A build's pin stays until
// Close; a prune's is released.
func (s *Store) Unlock() {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.holders == 0 {
		return
	}
	if s.holders--; s.holders > 0 {
		return
	}
	if s.mode == unix.LOCK_EX {
		_ = CleanDir(filepath.Join(s.root, "tmp"))
	}
	_ = unix.Flock(int(s.lock.Fd()), unix.LOCK_UN)
	if s.pinned == unix.LOCK_EX {
		_ = unix.Flock(int(s.pin.Fd()), unix.LOCK_UN)
		s.pinned = 0
	}
	s.mode = 0
	s.released.Broadcast()
}

// CleanDir removes everything in dir, keeping dir itself. It tries every
// entry and returns the errors joined.
func CleanDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

// ReadJSON decodes the record at rel (a path relative to the root) into v.
// It returns false and no error when the record does not exist, and an
// error naming the record when it cannot be decoded.
func (s *Store) ReadJSON(rel string, v any) (bool, error) {
	b, err := os.ReadFile(filepath.Join(s.root, rel))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("store %s: %s is corrupt: %w", s.root, rel, err)
	}
	return true, nil
}

// WriteJSON writes v, indented, as the record at rel (a path relative to the
// root, in an existing directory), replacing it atomically.
func (s *Store) WriteJSON(rel string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.root, rel), append(b, '\n'), 0o644)
}

// Step returns the step cache entry for key; false when there is none. A
// found entry's record is marked used now (its access time; see touch),
// which is what prune's --filter until and --keep-storage go by.
func (s *Store) Step(key string) (Step, bool, error) {
	var r Step
	rel := filepath.Join("steps", key+".json")
	ok, err := s.ReadJSON(rel, &r)
	if ok && err == nil {
		touch(filepath.Join(s.root, rel))
	}
	return r, ok, err
}

// touch marks the cache record at path used now by setting its access time
// (the modification time stays when it was written, so a dry run changes
// no record); errors are ignored (a read-only store stays usable). A record
// was last used at the later of the two times (lastUse).
func touch(path string) { _ = os.Chtimes(path, time.Now(), time.Time{}) }

// lastUse is when the record with info fi was last written or used.
func lastUse(fi os.FileInfo) time.Time {
	t := fi.ModTime()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if a := time.Unix(st.Atim.Unix()); a.After(t) {
			return a
		}
	}
	return t
}

// StepUsable reports whether everything a cached step names is still there:
// its layer blob and its snapshot (an empty step names neither).
func (s *Store) StepUsable(r Step) bool {
	return r.Empty || (s.blobs.Has(r.Layer.Digest) && s.snaps.Exists(r.ChainID))
}

// PutStep records r under r.Key, replacing an earlier entry.
func (s *Store) PutStep(r Step) error {
	return s.WriteJSON(filepath.Join("steps", r.Key+".json"), r)
}

// Image returns the image record with ID id; false when there is none, or
// when id is not an image ID (see ValidImageID).
func (s *Store) Image(id string) (Image, bool, error) {
	var r Image
	if !ValidImageID(id) {
		return r, false, nil
	}
	ok, err := s.ReadJSON(filepath.Join("images", id+".json"), &r)
	return r, ok, err
}

// ImageUsable reports whether image record r's filesystem snapshot is in
// the store (an image without layers has none to miss).
func (s *Store) ImageUsable(r Image) bool {
	return r.ChainID == "" || s.snaps.Exists(r.ChainID)
}

// PutImage records r under r.ID, replacing an earlier record.
func (s *Store) PutImage(r Image) error {
	return s.WriteJSON(filepath.Join("images", r.ID+".json"), r)
}

// Names maps image names to image IDs; empty when no image has a name.
func (s *Store) Names() (map[string]string, error) {
	m := map[string]string{}
	_, err := s.ReadJSON("names.json", &m)
	return m, err
}

// Sources maps names given by builds to the source that defined their
// image (Builder.TagResultWith); names given otherwise have none.
func (s *Store) Sources() (map[string]string, error) {
	m := map[string]string{}
	_, err := s.ReadJSON("sources.json", &m)
	return m, err
}

// SetName points name at image id (id "" removes the name), with no
// recorded source. Callers hold the exclusive lock.
func (s *Store) SetName(name, id string) error { return s.SetNameFrom(name, id, "") }

// SetNameFrom points name at image id (id "" removes the name) and records
// source ("" for none) as what defined it. The source is written first: a
// crash between the two writes leaves the old image under the name, with
// the source of the build that was moving it there. Callers hold the
// exclusive lock.
func (s *Store) SetNameFrom(name, id, source string) error {
	src, err := s.Sources()
	if err != nil {
		return err
	}
	if src[name] != source || (id == "" && source != "") {
		if source == "" || id == "" {
			delete(src, name)
		} else {
			src[name] = source
		}
		if err := s.WriteJSON("sources.json", src); err != nil {
			return err
		}
	}
	m, err := s.Names()
	if err != nil {
		return err
	}
	if id == "" {
		delete(m, name)
	} else {
		m[name] = id
	}
	return s.WriteJSON("names.json", m)
}

// Resolve finds an image by ID or by name. A registry reference also finds
// a name spelled otherwise ("ubuntu:22.04" finds
// "docker.io/library/ubuntu:22.04", see CanonicalRef); when several names
// match, the first in sorted order wins. Resolve fails naming ref and the
// store, listing the store's names, when nothing matches, and naming the
// image ID when a name points at a missing record.
func (s *Store) Resolve(ref string) (Image, error) {
	if r, ok, err := s.Image(ref); err != nil || ok {
		return r, err
	}
	m, err := s.Names()
	if err != nil {
		return Image{}, err
	}
	if id, ok := m[ref]; ok {
		if r, ok, err := s.Image(id); err != nil || ok {
			return r, err
		}
		return Image{}, fmt.Errorf("image %q names %s, which is missing from store %s", ref, id, s.root)
	}
	if canon := CanonicalRef(ref); canon != "" {
		var names []string
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if CanonicalRef(n) == canon {
				if r, ok, err := s.Image(m[n]); err != nil || ok {
					return r, err
				}
			}
		}
	}
	var known []string
	for n := range m {
		known = append(known, n)
	}
	sort.Strings(known)
	have := "it has no named images"
	if len(known) > 0 {
		have = "its names: " + strings.Join(known, ", ")
	}
	return Image{}, fmt.Errorf("no image %q in store %s (%s): build it first, or pass --root", ref, s.root, have)
}

// CanonicalRef is ref as a fully qualified registry reference
// ("index.docker.io/library/ubuntu:22.04" for "ubuntu:22.04"), or "" when
// ref is not a registry reference (an air-gapped source, an image ID).
func CanonicalRef(ref string) string {
	if strings.HasPrefix(ref, "im-") || strings.HasPrefix(ref, "docker://") {
		return ""
	}
	r, err := registry.ParseReference(ref)
	if err != nil || r.Transport != registry.Docker || r.Name == nil {
		return ""
	}
	return r.Name.Name()
}

// ValidImageID reports whether id has the form of an image ID: "im-"
// followed by 22 base-62 digits (0-9, a-z, A-Z).
func ValidImageID(id string) bool {
	if !strings.HasPrefix(id, "im-") || len(id) != 25 {
		return false
	}
	for _, r := range id[3:] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
