package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/solver/pb"
	"golang.org/x/sys/unix"
)

// PackageCache is a directory the Worker keeps across builds and mounts
// into an exec op without the op asking for it: a package manager's
// download cache (apt's archives, pip's, uv's, micromamba's), as a
// Dockerfile's RUN --mount=type=cache would mount it, but chosen by the
// front end per op (WithPackageCaches) and kept outside the op, so that it
// changes no cache key, whether it is on, off, warm or cold.
//
// The directory is pkgcache/<Name> under the Worker's dir for ops that run
// as uid 0, and pkgcache/<Name>-<uid> for ops that run as another user, made
// empty on first use (mode 0755, owned by the op's uid and gid): a tool run
// as a user finds a cache it can write, and never one another user's
// files fill. Mounting it at Dest makes the runtime create
// Dest's missing directories in the step's upper dir; they are removed
// before the diff, like every mount target the runtime makes, so neither
// the directory nor anything in it reaches a layer.
type PackageCache struct {
	// Name names the directory: lowercase letters, digits and '-' (e.g.
	// "apt", "pip"). Ops that name the same cache share its directory.
	Name string
	// Dest is the absolute path the directory is mounted at in the step.
	Dest string
	// Locked lets one op at a time use the cache, across Workers and
	// processes on the same directory (an advisory lock on
	// pkgcache/<Name>.lock, held while the op runs): BuildKit's "locked"
	// sharing, which apt needs. Otherwise ops share it at once ("shared"),
	// which is safe for caches whose tool writes each entry atomically
	// (pip, uv).
	Locked bool
	// Env are "NAME=value" variables that point the tool at Dest. Each is
	// added to the process's environment unless the op, or the Worker's
	// default environment (WithDefaultEnv), sets the name: an image or a
	// site that chose its own setting (PIP_NO_CACHE_DIR, another
	// PIP_CACHE_DIR) keeps it.
	Env []string
	// Prepare, when not nil, is called with the cache's directory on the
	// host before every op that mounts it, after the lock is taken for a
	// Locked cache: to write a tool's configuration into it, or to remove
	// what a killed process left half-written. An error fails the op.
	Prepare func(dir string) error
}

var packageCacheName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// validate reports what is wrong with c, naming the field.
func (c PackageCache) validate() error {
	if !packageCacheName.MatchString(c.Name) {
		return fmt.Errorf("package cache name %q: use lowercase letters, digits and '-'", c.Name)
	}
	if !path.IsAbs(c.Dest) || path.Clean(c.Dest) != c.Dest || c.Dest == "/" {
		return fmt.Errorf("package cache %s: mount target %q: give a clean absolute path below /", c.Name, c.Dest)
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("package cache %s: env %q: give NAME=value", c.Name, kv)
		}
	}
	return nil
}

// WithPackageCaches lets the front end mount package caches into exec ops:
// fn is called for each exec op the Worker runs, with the op's context
// (build.VertexFrom names its vertex), and returns the caches to mount
// (none: nil). A cache whose Dest is also a mount target of the op itself
// is left out: the op's own mount wins. The caches are not part of the op,
// so not part of its cache key.
// The default is none.
func WithPackageCaches(fn func(ctx context.Context, op *pb.ExecOp) []PackageCache) Option {
	return func(o *options) error {
		o.packageCaches = fn
		return nil
	}
}

// packageCaches prepares the package caches the front end gives op: it
// locks the Locked ones (released by x.release), calls their Prepare, and
// returns the bind mounts and the environment entries to add.
func (x *execRun) packageCaches(ctx context.Context, op *pb.ExecOp, uid, gid int) (mounts []packageMount, env []string, err error) {
	if x.w.opts.packageCaches == nil {
		return nil, nil, nil
	}
	caches := x.w.opts.packageCaches(ctx, op)
	// A fixed order, so that two ops taking several locks cannot wait for
	// each other.
	slices.SortFunc(caches, func(a, b PackageCache) int { return strings.Compare(a.Name, b.Name) })
	root := filepath.Join(x.w.dir, "pkgcache")
	for _, c := range caches {
		if err := c.validate(); err != nil {
			return nil, nil, err
		}
		if slices.ContainsFunc(op.Mounts, func(m *pb.Mount) bool { return path.Clean(m.Dest) == c.Dest }) {
			continue
		}
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, nil, fmt.Errorf("package cache %s: %w", c.Name, err)
		}
		dir := filepath.Join(root, c.Name)
		if uid != 0 {
			dir += "-" + strconv.Itoa(uid)
		}
		if c.Locked {
			unlock, err := lockFile(ctx, dir+".lock")
			if err != nil {
				return nil, nil, fmt.Errorf("package cache %s: %w", c.Name, err)
			}
			x.releases = append(x.releases, unlock)
		}
		if err := makeOwnedDir(dir, uid, gid); err != nil {
			return nil, nil, fmt.Errorf("package cache %s: %w", c.Name, err)
		}
		if c.Prepare != nil {
			if err := c.Prepare(dir); err != nil {
				return nil, nil, fmt.Errorf("package cache %s: %w", c.Name, err)
			}
		}
		// Its modification time is its last use, which prune's
		// --filter until and --keep-storage read.
		now := time.Now()
		_ = os.Chtimes(dir, now, now)
		mounts = append(mounts, packageMount{source: dir, dest: c.Dest})
		env = append(env, c.Env...)
	}
	return mounts, env, nil
}

// packageMount is a package cache's directory and its mount target.
type packageMount struct{ source, dest string }

// lockFile takes an exclusive advisory lock on the file p (made when
// missing), waiting for it while ctx allows, and returns its release.
func lockFile(ctx context.Context, p string) (func(), error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	// flock with LOCK_NB in a loop rather than a blocking call that a
	// cancelled build could not interrupt.
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// makeOwnedDir makes directory dir (mode 0755, owned by uid:gid) unless it
// exists: in a temporary directory beside it, renamed into place, so that
// no process sees it with another owner.
func makeOwnedDir(dir string, uid, gid int) error {
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".new-")
	if err != nil {
		return err
	}
	err = os.Chmod(tmp, 0o755)
	if err == nil {
		err = os.Lchown(tmp, uid, gid)
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		os.Remove(tmp)
		if _, serr := os.Lstat(dir); serr == nil {
			return nil // made by another op meanwhile
		}
	}
	return err
}
