package snapbuild

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/snapbuild/snapbuild/internal/atomicfile"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/sandbox"
	"github.com/snapbuild/snapbuild/snapshot"
)

// Store layout under the root directory:
//
//	lock                 flock(2) held exclusively by a build, shared by readers
//	blobs/sha256/<hex>   layers, configs and manifests (OCI content)
//	snapshots/<hex>/fs   committed overlay upper dirs, named by chain ID
//	steps/<hex>.json     step cache: step key -> layer, diffID, chain ID
//	bases/<hex>.json     newest base built for a base definition (offline reuse)
//	images/<im-id>.json  built images: manifest, chain ID, shell
//	names.json           image names -> image IDs
//	sources.json         names given by builds -> the file that defined the image
//	tmp/                 libcontainer state and scratch; emptied by each build
//
// Every record is written to a temporary file and renamed, after the blobs and
// snapshots it names are in place, so a killed build leaves the store
// consistent: at worst some unreferenced content and temporary files, which
// the next build removes.
type store struct {
	root  string
	blobs *oci.Store
	snaps *snapshot.Store
	lock  *os.File
}

// DefaultRoot is the store directory used when none is given: $SNAPBUILD_ROOT,
// else /var/lib/snapbuild for root, else $XDG_DATA_HOME/snapbuild or
// ~/.local/share/snapbuild.
func DefaultRoot() string {
	if r := os.Getenv("SNAPBUILD_ROOT"); r != "" {
		return r
	}
	if !sandbox.InUserNamespace() && os.Geteuid() == 0 {
		return "/var/lib/snapbuild"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "snapbuild")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "."
	}
	return filepath.Join(home, ".local", "share", "snapbuild")
}

func openStore(root string) (*store, error) {
	if root == "" {
		root = DefaultRoot()
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
	snaps, err := snapshot.New(filepath.Join(abs, "snapshots"), sandbox.InUserNamespace())
	if err != nil {
		return nil, err
	}
	if err := checkStoreMode(abs, sandbox.InUserNamespace()); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(abs, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", abs, err)
	}
	return &store{root: abs, blobs: blobs, snaps: snaps, lock: lock}, nil
}

// checkStoreMode refuses to mix rootless and root use of one store: their
// snapshots keep overlay markers in different xattr namespaces.
func checkStoreMode(root string, rootless bool) error {
	mode := "root"
	if rootless {
		mode = "rootless"
	}
	p := filepath.Join(root, "mode")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return os.WriteFile(p, []byte(mode+"\n"), 0o644)
	}
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(string(b)); got != mode {
		return fmt.Errorf("store %s was made by a %s snapbuild and cannot be used %s: use another --root", root, got, map[string]string{"root": "as root", "rootless": "rootless"}[mode])
	}
	return nil
}

func (s *store) close() error { return s.lock.Close() }

// lockExclusive takes the build lock and clears what a killed build left.
func (s *store) lockExclusive() error {
	if err := unix.Flock(int(s.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		fmt.Fprintf(os.Stderr, "waiting for another snapbuild build on %s...\n", s.root)
		if err := unix.Flock(int(s.lock.Fd()), unix.LOCK_EX); err != nil {
			return fmt.Errorf("store %s: lock: %w", s.root, err)
		}
	}
	return errors.Join(s.blobs.CleanTemp(), s.snaps.CleanTemp(), cleanDir(filepath.Join(s.root, "tmp")))
}

// lockShared takes the lock as a reader: it waits for a running build and
// lets other readers in, and clears nothing.
func (s *store) lockShared() error {
	if err := unix.Flock(int(s.lock.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		fmt.Fprintf(os.Stderr, "waiting for another snapbuild build on %s...\n", s.root)
		if err := unix.Flock(int(s.lock.Fd()), unix.LOCK_SH); err != nil {
			return fmt.Errorf("store %s: lock: %w", s.root, err)
		}
	}
	return nil
}

func (s *store) unlock() { _ = unix.Flock(int(s.lock.Fd()), unix.LOCK_UN) }

func cleanDir(dir string) error {
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

// stepRecord is one step cache entry.
type stepRecord struct {
	Key         string             `json:"key"`
	Instruction string             `json:"instruction"`
	Empty       bool               `json:"empty,omitempty"` // the step changed no file
	Layer       ocispec.Descriptor `json:"layer,omitzero"`
	DiffID      digest.Digest      `json:"diffID,omitempty"`
	ChainID     digest.Digest      `json:"chainID,omitempty"`
	Python      string             `json:"python,omitempty"` // bases: full Python version
}

// imageRecord is one built image (one Modal layer's result).
type imageRecord struct {
	ID       string             `json:"id"`
	Manifest ocispec.Descriptor `json:"manifest"`
	ChainID  digest.Digest      `json:"chainID,omitempty"`
	Shell    []string           `json:"shell,omitempty"`
	// Health is the HEALTHCHECK, kept here so that images built on this
	// one inherit it (it is also in the config, as Docker's extension).
	Health *dockerspec.HealthcheckConfig `json:"healthcheck,omitempty"`
	Parent string                        `json:"parent,omitempty"`
}

func (s *store) readJSON(rel string, v any) (bool, error) {
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

func (s *store) writeJSON(rel string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.root, rel), append(b, '\n'), 0o644)
}

func (s *store) step(key string) (stepRecord, bool, error) {
	var r stepRecord
	ok, err := s.readJSON(filepath.Join("steps", key+".json"), &r)
	return r, ok, err
}

// stepUsable reports whether everything a cached step names is still there.
func (s *store) stepUsable(r stepRecord) bool {
	return r.Empty || (s.blobs.Has(r.Layer.Digest) && s.snaps.Exists(r.ChainID))
}

// imageUsable reports whether image record r's filesystem snapshot is in
// the store (an image without layers has none to miss).
func (s *store) imageUsable(r imageRecord) bool {
	return r.ChainID == "" || s.snaps.Exists(r.ChainID)
}

func (s *store) putStep(r stepRecord) error {
	return s.writeJSON(filepath.Join("steps", r.Key+".json"), r)
}

func (s *store) image(id string) (imageRecord, bool, error) {
	var r imageRecord
	if !validImageID(id) {
		return r, false, nil
	}
	ok, err := s.readJSON(filepath.Join("images", id+".json"), &r)
	return r, ok, err
}

func (s *store) putImage(r imageRecord) error {
	return s.writeJSON(filepath.Join("images", r.ID+".json"), r)
}

func (s *store) names() (map[string]string, error) {
	m := map[string]string{}
	_, err := s.readJSON("names.json", &m)
	return m, err
}

// sources maps names given by builds to the source that defined their
// image (Builder.TagResultWith); names given otherwise have none.
func (s *store) sources() (map[string]string, error) {
	m := map[string]string{}
	_, err := s.readJSON("sources.json", &m)
	return m, err
}

// setName points name at image id (id "" removes the name), with no
// recorded source. Callers hold the exclusive lock.
func (s *store) setName(name, id string) error { return s.setNameFrom(name, id, "") }

// setNameFrom points name at image id (id "" removes the name) and records
// source ("" for none) as what defined it. The source is written first: a
// crash between the two writes leaves the old image under the name, with
// the source of the build that was moving it there. Callers hold the
// exclusive lock.
func (s *store) setNameFrom(name, id, source string) error {
	src, err := s.sources()
	if err != nil {
		return err
	}
	if src[name] != source || (id == "" && source != "") {
		if source == "" || id == "" {
			delete(src, name)
		} else {
			src[name] = source
		}
		if err := s.writeJSON("sources.json", src); err != nil {
			return err
		}
	}
	m, err := s.names()
	if err != nil {
		return err
	}
	if id == "" {
		delete(m, name)
	} else {
		m[name] = id
	}
	return s.writeJSON("names.json", m)
}

// resolve finds an image by ID or name.
func (s *store) resolve(ref string) (imageRecord, error) {
	if r, ok, err := s.image(ref); err != nil || ok {
		return r, err
	}
	m, err := s.names()
	if err != nil {
		return imageRecord{}, err
	}
	if id, ok := m[ref]; ok {
		if r, ok, err := s.image(id); err != nil || ok {
			return r, err
		}
		return imageRecord{}, fmt.Errorf("image %q names %s, which is missing from store %s", ref, id, s.root)
	}
	// A registry reference also finds a name spelled otherwise
	// ("ubuntu:22.04" is "docker.io/library/ubuntu:22.04"); names sorted,
	// so the choice is stable.
	if canon := canonicalRef(ref); canon != "" {
		var names []string
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if canonicalRef(n) == canon {
				if r, ok, err := s.image(m[n]); err != nil || ok {
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
	return imageRecord{}, fmt.Errorf("no image %q in store %s (%s): build it first, or pass --root", ref, s.root, have)
}

func validImageID(id string) bool {
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
