package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/moby/buildkit/solver/pb"
	"golang.org/x/sys/unix"
)

// SecretStore gives the values of build secrets by ID, for secret mounts
// (RUN --mount=type=secret) and secret environment variables (RUN
// --mount=type=secret,env=NAME). It has the shape of BuildKit's
// session/secrets.SecretStore.
type SecretStore interface {
	// GetSecret returns the value of the secret id. A store that has no
	// secret id returns an error that wraps ErrSecretNotFound; any other
	// error fails the op, whether the secret is optional or not.
	GetSecret(ctx context.Context, id string) ([]byte, error)
}

// ErrSecretNotFound is the error, wrapped, of a SecretStore that has no
// secret with the ID asked for (BuildKit's secrets.ErrNotFound). An op that
// requires the secret fails with an error that wraps it too.
var ErrSecretNotFound = errors.New("secret not found")

// SecretMap is a SecretStore holding its values in memory, by ID.
type SecretMap map[string][]byte

// GetSecret returns a copy of the value of id, or an error wrapping
// ErrSecretNotFound.
func (m SecretMap) GetSecret(ctx context.Context, id string) ([]byte, error) {
	v, ok := m[id]
	if !ok {
		return nil, fmt.Errorf("secret %q: %w", id, ErrSecretNotFound)
	}
	return slices.Clone(v), nil
}

// WithSecrets makes s the store that secret mounts and secret environment
// variables of exec ops read. Secret values never enter cache keys (only
// the op's secret IDs do, as in BuildKit: changing a secret's value does not
// rebuild a step), logs, errors or layers.
// The default is a store with no secrets: a required secret fails the op,
// an optional one is left out.
func WithSecrets(s SecretStore) Option {
	return func(o *options) error {
		if s == nil {
			return errors.New("secrets: the store is nil")
		}
		o.secrets = s
		return nil
	}
}

// secret returns the value of secret id, or ok false when the store has
// none and the secret is optional. what names the use in errors
// ("mount at /run/secrets/x", "environment variable X").
func (w *Worker) secret(ctx context.Context, id string, optional bool, what string) (value []byte, ok bool, err error) {
	if id == "" {
		return nil, false, fmt.Errorf("secret for %s: the secret ID is empty", what)
	}
	store := w.opts.secrets
	if store == nil {
		store = SecretMap(nil)
	}
	v, err := store.GetSecret(ctx, id)
	switch {
	case err == nil:
		return v, true, nil
	case errors.Is(err, ErrSecretNotFound) && optional:
		return nil, false, nil
	case errors.Is(err, ErrSecretNotFound):
		return nil, false, fmt.Errorf("secret %q, required for %s, was not given to the build: give a secret with this ID, or make its use optional (drop `required`): %w", id, what, ErrSecretNotFound)
	}
	return nil, false, fmt.Errorf("secret %q for %s: %w", id, what, err)
}

// secretEnv returns the op's secret environment variables as KEY=value
// entries; optional secrets the store lacks are left out.
func (w *Worker) secretEnv(ctx context.Context, op *pb.ExecOp) ([]string, error) {
	var env []string
	for _, s := range op.Secretenv {
		if s.Name == "" {
			return nil, fmt.Errorf("secret %q: the environment variable's name is empty", s.ID)
		}
		v, ok, err := w.secret(ctx, s.ID, s.Optional, "environment variable "+s.Name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if slices.Contains(v, 0) {
			return nil, fmt.Errorf("secret %q holds a NUL byte: it cannot be the environment variable %s (mount it as a file instead)", s.ID, s.Name)
		}
		env = append(env, s.Name+"="+string(v))
	}
	return env, nil
}

// secretFile writes the value of the secret mount m into a file of its own
// on a tmpfs mounted under the Worker's run dir, so that it never reaches a
// disk, owned by the mount's uid and gid and with its mode (BuildKit's
// secret mount). It returns the file's path and a function that unmounts
// and removes the tmpfs; path "" (and no error) means an optional secret
// the store lacks: the op gets no mount.
func (w *Worker) secretFile(ctx context.Context, m *pb.Mount) (path string, release func(), err error) {
	opt := m.SecretOpt
	if opt == nil {
		return "", nil, errors.New("the secret mount has no secret options (ID, owner, mode)")
	}
	v, ok, err := w.secret(ctx, opt.ID, opt.Optional, "the mount at "+m.Dest)
	if err != nil || !ok {
		return "", nil, err
	}
	dir, err := os.MkdirTemp(filepath.Join(w.dir, "run"), "secret-")
	if err != nil {
		return "", nil, err
	}
	// A mount's nosuid, nodev and noexec flags carry over to bind mounts of
	// its files: the secret is executable only if its mode says so.
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	if opt.Mode&0o111 == 0 {
		flags |= unix.MS_NOEXEC
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, "mode=0700"); err != nil {
		os.Remove(dir)
		return "", nil, fmt.Errorf("mounting a tmpfs for secret %q on %s: %w", opt.ID, dir, err)
	}
	release = func() {
		unix.Unmount(dir, unix.MNT_DETACH)
		os.RemoveAll(dir)
	}
	path = filepath.Join(dir, "secret")
	if err := writeSecret(path, v, int(opt.Uid), int(opt.Gid), os.FileMode(opt.Mode&0o777)); err != nil {
		release()
		return "", nil, fmt.Errorf("secret %q: %w", opt.ID, err)
	}
	return path, release, nil
}

// writeSecret writes v to a new file p owned by uid:gid with mode.
func writeSecret(p string, v []byte, uid, gid int, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chown(p, uid, gid); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("owner %d:%d of the secret file: the id is not mapped in the builder's user namespace (see /etc/subuid and /etc/subgid)", uid, gid)
		}
		return fmt.Errorf("owner %d:%d of the secret file: %w", uid, gid, err)
	}
	return os.Chmod(p, mode)
}
