package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/solver/pb"
	copy "github.com/tonistiigi/fsutil/copy"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/userdb"
	"github.com/snapbuild/snapbuild/overlay"
	"github.com/snapbuild/snapbuild/sandbox"
	"github.com/snapbuild/snapbuild/snapshot"
)

// defaultPath is the PATH an exec op gets when its environment has none
// (BuildKit's default for Linux).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ExitError is the error of an exec op whose process exited with a status
// the op does not accept (any but 0, or those not in Meta.ValidExitCodes).
type ExitError struct {
	Args     []string
	ExitCode int
	// Tail holds the last lines of the process's output.
	Tail []string
	// TimedOut is the op's time limit (WithTimeout) when the process was
	// killed for reaching it; 0 otherwise.
	TimedOut time.Duration
	// Cause is why the process failed where the worker can tell better
	// than the exit code: in single-ID mode, the output line that shows
	// the step asked for an ID the user namespace does not map (an error
	// wrapping sandbox.ErrSingleID); nil otherwise.
	Cause error
}

// Unwrap returns e.Cause.
func (e *ExitError) Unwrap() error { return e.Cause }

// Error returns, as BuildKit words it, `process "/bin/sh -c false" did not
// complete successfully: exit code: 1`, followed by the output's last lines.
func (e *ExitError) Error() string {
	msg := fmt.Sprintf("process %q did not complete successfully: exit code: %d", strings.Join(e.Args, " "), e.ExitCode)
	if e.TimedOut > 0 {
		msg = fmt.Sprintf("process %q did not complete successfully: timed out after %s and was killed", strings.Join(e.Args, " "), e.TimedOut)
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	if len(e.Tail) > 0 {
		msg += "\n" + strings.Join(e.Tail, "\n")
	}
	return msg
}

// Exec runs op.Meta's process in a sandbox (sandbox.Run) on the op's mounts
// and returns one Ref per output mount, each the mount's changes committed
// as one layer on its input.
//
// Mounts: the root mount ("/") is a writable snapshot of its input; a bind
// mount of another input is a read-only view, or a writable snapshot when
// it is not read-only (committed if it has an output, else discarded); a
// selector mounts that path of the input. A cache mount is a directory kept
// under the worker's dir by cache ID, shared between ops (CacheOpt sharing
// "shared"), or used by one op at a time ("locked", and "private", which
// this worker serialises rather than giving each op its own copy); a new
// cache seeded from an input (uid, gid and mode set) starts as a copy of
// it. A tmpfs mount is an empty
// directory, removed after the op (not memory-backed; its size limit is not
// enforced). A secret mount is the secret's value (see WithSecrets) in a
// file on a tmpfs of its own under the worker's run dir, owned by the
// mount's uid and gid, with its mode, bound read-only at its target and
// unmounted after the op; an optional secret the store lacks gets no
// mount. Ssh mounts are refused. Package caches (WithPackageCaches) are
// mounted after the op's own mounts.
//
// Process: Meta.Args, Meta.Env (PATH added when missing), Meta.Cwd (created,
// owned by the user, when missing), Meta.User resolved against the rootfs's
// /etc/passwd and /etc/group, Meta.Hostname. The process gets the user's
// uid and gid only: supplementary groups from /etc/group are not set (the
// sandbox takes one gid), where BuildKit sets them. The network is the op's
// (host or none; unset means the worker's default, WithNetwork: host, none
// or private). Extra
// hosts, ulimits, a cgroup parent, proxy env and CDI devices (without
// WithDevices) are refused with an error naming them. The security mode
// is the op's: sandbox (sandbox.SecuritySandbox: Docker's default
// capabilities, seccomp profile and no_new_privs) or, when WithSecurity
// allows it, insecure; an insecure op is refused otherwise. Secret env
// (op.Secretenv) adds each secret's value as a variable of the process,
// after Meta.Env; an optional secret the store lacks adds none.
func (w *Worker) Exec(ctx context.Context, op *pb.ExecOp, inputs []build.Ref) ([]build.Ref, error) {
	meta := op.Meta
	if meta == nil || len(meta.Args) == 0 {
		return nil, errors.New("the exec op has no process arguments")
	}
	if err := checkExec(op, w.opts.devices != nil, w.opts.security == sandbox.SecurityInsecure); err != nil {
		return nil, err
	}
	x := &execRun{w: w}
	defer x.release()

	var root *execMount
	var spec sandbox.Spec
	nOut := 0
	for i, m := range op.Mounts {
		if m.MountType == pb.MountType_BIND && int(m.Output)+1 > nOut {
			nOut = int(m.Output) + 1
		}
		em, err := x.mount(ctx, m, inputs)
		if err != nil {
			return nil, fmt.Errorf("mount %d (%s): %w", i, m.Dest, err)
		}
		if m.Dest == pb.RootMount {
			if root != nil {
				return nil, errors.New("the exec op has two root mounts")
			}
			root = em
			continue
		}
		if em.source == "" {
			continue // an optional secret that was not given
		}
		// Secrets are read-only whatever the op says, as in BuildKit.
		ro := m.Readonly || m.MountType == pb.MountType_SECRET
		spec.Mounts = append(spec.Mounts, sandbox.BindMount{Source: em.source, Destination: m.Dest, ReadOnly: ro})
	}
	if root == nil || root.active == nil {
		return nil, errors.New("the exec op has no writable root mount (\"/\")")
	}
	rootfs := root.active.Rootfs

	u, err := userdb.ExecUser(rootfs, meta.User)
	if err != nil {
		return nil, err
	}
	if sandbox.SingleID() && (u.Uid != 0 || u.Gid != 0) {
		return nil, sandbox.SingleIDError(fmt.Sprintf("USER %s (uid %d, gid %d)", meta.User, u.Uid, u.Gid))
	}
	cwd := meta.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := mkCwd(rootfs, cwd, u.Uid, u.Gid); err != nil {
		return nil, fmt.Errorf("working directory %s: %w", cwd, err)
	}
	pkgMounts, pkgEnv, err := x.packageCaches(ctx, op, u.Uid, u.Gid)
	if err != nil {
		return nil, err
	}
	for _, m := range pkgMounts {
		spec.Mounts = append(spec.Mounts, sandbox.BindMount{Source: m.source, Destination: m.dest})
	}
	env := slices.Clone(meta.Env)
	// The worker's defaults (WithDefaultEnv), then the package caches'
	// variables, then PATH, where the op does not set them.
	defaults := append(slices.Clone(w.opts.defaultEnv), pkgEnv...)
	for _, kv := range append(defaults, "PATH="+defaultPath) {
		if k, _, _ := strings.Cut(kv, "="); !slices.ContainsFunc(env, hasName(k)) {
			env = append(env, kv)
		}
	}
	if sandbox.SingleID() {
		m, e, err := aptSingleID(filepath.Join(w.dir, "run"), env)
		if err != nil {
			return nil, fmt.Errorf("apt configuration for single-ID mode: %w", err)
		}
		x.releases = append(x.releases, func() { os.Remove(m.Source) })
		spec.Mounts = append(spec.Mounts, m)
		env = e
	}
	// Secret values go into the process's environment only, over the
	// op's own variables (BuildKit's order: a secret wins).
	senv, err := w.secretEnv(ctx, op)
	if err != nil {
		return nil, err
	}
	for _, kv := range senv {
		k, _, _ := strings.Cut(kv, "=")
		if i := slices.IndexFunc(env, hasName(k)); i >= 0 {
			env[i] = kv
		} else {
			env = append(env, kv)
		}
	}
	network := w.opts.network
	switch op.Network {
	case pb.NetMode_HOST:
		network = sandbox.NetworkHost
	case pb.NetMode_NONE:
		network = sandbox.NetworkNone
	}

	tail := &tailWriter{keep: w.opts.tailKeep}
	var out io.Writer = tail
	switch {
	case w.opts.outputFor != nil:
		if wc := w.opts.outputFor(ctx); wc != nil {
			defer wc.Close()
			out = io.MultiWriter(tail, wc)
		}
	case w.opts.output != nil:
		out = io.MultiWriter(tail, w.opts.output)
	}
	spec.ID = fmt.Sprintf("snapbuild-w%d-%d", os.Getpid(), sandboxSeq.Add(1))
	spec.StateDir = filepath.Join(w.dir, "run")
	spec.Rootfs = rootfs
	// With hooks (a device injector's), the runtime reports what they
	// made in the upper dir, to keep it out of the layer.
	spec.UpperDir = root.active.Upper
	spec.Args = meta.Args
	spec.Env = env
	spec.Cwd = cwd
	spec.UID, spec.GID = u.Uid, u.Gid
	spec.Stdout, spec.Stderr = out, out
	spec.Network = network
	spec.Security = sandbox.SecuritySandbox
	if op.Security == pb.SecurityMode_INSECURE {
		spec.Security = sandbox.SecurityInsecure
	}
	spec.Hostname = meta.Hostname

	if len(op.CdiDevices) > 0 {
		// Last: the devices' env entries override the op's.
		if err := w.opts.devices(ctx, op.CdiDevices, &spec); err != nil {
			return nil, fmt.Errorf("CDI devices: %w", err)
		}
	}

	// Locked cache mounts, in a fixed order so that two ops cannot wait
	// for each other.
	slices.SortFunc(x.locks, func(a, b cacheLock) int { return strings.Compare(a.dir, b.dir) })
	for _, l := range x.locks {
		l.mu.Lock()
		defer l.mu.Unlock()
	}
	runCtx := ctx
	var limit time.Duration
	if w.opts.timeout != nil {
		if limit = w.opts.timeout(ctx); limit > 0 {
			var cancel context.CancelFunc
			runCtx, cancel = context.WithTimeout(ctx, limit)
			defer cancel()
		}
	}
	res, err := sandbox.Run(runCtx, spec)
	if errors.Is(err, sandbox.ErrCommandNotFound) || errors.Is(err, sandbox.ErrCommandNotExecutable) {
		return nil, &ExitError{Args: meta.Args, ExitCode: res.ExitCode, Tail: append(tail.lines(), err.Error())}
	}
	if err != nil && ctx.Err() == nil && runCtx.Err() != nil {
		return nil, &ExitError{Args: meta.Args, ExitCode: res.ExitCode, Tail: tail.lines(), TimedOut: limit}
	}
	if err != nil {
		return nil, err
	}
	if !exitOK(res.ExitCode, meta.ValidExitCodes) {
		ee := &ExitError{Args: meta.Args, ExitCode: res.ExitCode, Tail: tail.lines()}
		if sandbox.SingleID() {
			if line := singleIDCause(ee.Tail); line != "" {
				ee.Cause = sandbox.SingleIDError(fmt.Sprintf("the step's %q", strings.TrimSpace(line)))
			}
		}
		return nil, ee
	}
	// Mount targets the runtime made belong to no layer.
	if err := root.active.Unmount(); err != nil {
		return nil, err
	}
	pruneMountDirs(root.active.Upper, res.Stubs, spec.Mounts)
	if err := overlay.RemoveStubs(root.active.Upper, root.active.Lowers, res.Stubs, w.snaps.UserXattr()); err != nil {
		return nil, err
	}

	outs := make([]build.Ref, nOut)
	for _, em := range x.mounts {
		if em.output < 0 || em.active == nil {
			continue
		}
		ref, err := w.commit(ctx, em.active, em.base)
		em.active = nil
		if err != nil {
			return nil, fmt.Errorf("mount %s: %w", em.dest, err)
		}
		outs[em.output] = ref
	}
	for i, o := range outs {
		if o == nil {
			return nil, fmt.Errorf("output %d: no writable mount makes it", i)
		}
	}
	return outs, nil
}

// hasName returns a test for an environment entry "NAME=value" of name k.
func hasName(k string) func(string) bool {
	return func(kv string) bool { return strings.HasPrefix(kv, k+"=") }
}

// checkExec refuses what the worker cannot do, or may not (an insecure op
// without insecure allowed), naming it.
func checkExec(op *pb.ExecOp, devices, insecure bool) error {
	m := op.Meta
	switch {
	case len(m.ExtraHosts) > 0:
		return errors.New("extra hosts (RUN --add-host) are not supported by this worker")
	case len(m.Ulimit) > 0:
		return errors.New("ulimits are not supported by this worker")
	case m.CgroupParent != "":
		return errors.New("a cgroup parent is not supported by this worker")
	case m.ProxyEnv != nil:
		return errors.New("proxy environment variables (ProxyEnv) are not supported by this worker: set them in Env")
	case len(op.CdiDevices) > 0 && !devices:
		return errors.New("CDI devices (GPUs) are not supported by this worker: it was given no device injector (WithDevices)")
	case op.Security == pb.SecurityMode_INSECURE && !insecure:
		return errors.New("the insecure security mode (RUN --security=insecure) is not allowed: it needs the security.insecure entitlement (snapbuild build --security insecure)")
	}
	switch op.Security {
	case pb.SecurityMode_SANDBOX, pb.SecurityMode_INSECURE:
	default:
		return fmt.Errorf("security mode %v is not supported: use sandbox or insecure", op.Security)
	}
	switch op.Network {
	case pb.NetMode_UNSET, pb.NetMode_HOST, pb.NetMode_NONE:
	default:
		return fmt.Errorf("network mode %v is not supported: use host or none", op.Network)
	}
	return nil
}

func exitOK(code int, valid []int32) bool {
	if len(valid) == 0 {
		return code == 0
	}
	return slices.Contains(valid, int32(code))
}

// execRun is the state of one Exec call.
type execRun struct {
	w        *Worker
	mounts   []*execMount
	releases []func()
	locks    []cacheLock
}

// cacheLock is the lock of a cache mount's directory.
type cacheLock struct {
	dir string
	mu  *sync.Mutex
}

// execMount is one mount of an exec op, prepared.
type execMount struct {
	dest   string
	output int64
	source string           // host path bound at dest (not for the root mount)
	active *snapshot.Active // a writable snapshot, or nil
	base   *Ref             // what active starts from
}

func (x *execRun) release() {
	for _, m := range x.mounts {
		if m.active != nil {
			m.active.Remove()
		}
	}
	for i := len(x.releases) - 1; i >= 0; i-- {
		x.releases[i]()
	}
}

// mount prepares mount m.
func (x *execRun) mount(ctx context.Context, m *pb.Mount, inputs []build.Ref) (*execMount, error) {
	// Only bind mounts make outputs (llb writes secret and ssh mounts with
	// Output 0).
	em := &execMount{dest: m.Dest, output: int64(pb.SkipOutput)}
	x.mounts = append(x.mounts, em)
	if m.MountType == pb.MountType_BIND {
		em.output = m.Output
		if m.Output >= 0 && m.Readonly {
			return nil, errors.New("a read-only mount cannot be an output")
		}
	} else if m.Output >= 0 && m.MountType != pb.MountType_SECRET && m.MountType != pb.MountType_SSH {
		return nil, fmt.Errorf("a %s mount cannot be an output", strings.ToLower(m.MountType.String()))
	}
	switch m.MountType {
	case pb.MountType_BIND:
		r, err := inputRef(inputs, m.Input)
		if err != nil {
			return nil, err
		}
		var dir string
		if m.Readonly {
			d, release, err := x.w.view(ctx, r)
			if err != nil {
				return nil, err
			}
			x.releases = append(x.releases, release)
			dir = d
		} else {
			a, err := x.w.prepare(r)
			if err != nil {
				return nil, err
			}
			em.active, em.base = a, r
			dir = a.Rootfs
		}
		if m.Dest == pb.RootMount {
			if m.Selector != "" {
				return nil, fmt.Errorf("a selector (%s) on the root mount is not supported", m.Selector)
			}
			return em, nil
		}
		src := dir
		if m.Selector != "" {
			p, err := securejoin.SecureJoin(dir, m.Selector)
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("the source path %s: %w", m.Selector, err)
			}
			src = p
		}
		em.source = src
		return em, nil
	case pb.MountType_CACHE:
		if m.CacheOpt == nil || m.CacheOpt.ID == "" {
			return nil, errors.New("a cache mount needs an ID")
		}
		if x.w.opts.cacheDirs != nil {
			dir, ok, err := x.w.opts.cacheDirs(ctx, m.CacheOpt.ID)
			if err != nil {
				return nil, fmt.Errorf("cache %q: %w", m.CacheOpt.ID, err)
			}
			if ok {
				em.source = dir // the front end's directory, shared as it is
				return em, nil
			}
		}
		sum := sha256.Sum256([]byte(m.CacheOpt.ID))
		dir := filepath.Join(x.w.dir, "cache", hex.EncodeToString(sum[:]))
		mu := x.w.cacheLock(dir)
		mu.Lock()
		err := x.makeCache(ctx, dir, m, inputs)
		mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("cache %q: %w", m.CacheOpt.ID, err)
		}
		if m.CacheOpt.Sharing != pb.CacheSharingOpt_SHARED {
			x.locks = append(x.locks, cacheLock{dir, mu})
		}
		em.source = dir
		return em, nil
	case pb.MountType_TMPFS:
		d, err := os.MkdirTemp(filepath.Join(x.w.dir, "tmp"), "tmpfs-")
		if err != nil {
			return nil, err
		}
		x.releases = append(x.releases, func() { os.RemoveAll(d) })
		em.source = d
		return em, nil
	case pb.MountType_SECRET:
		if m.Input >= 0 {
			return nil, errors.New("a secret mount cannot have an input")
		}
		p, release, err := x.w.secretFile(ctx, m)
		if err != nil {
			return nil, err
		}
		if p != "" {
			x.releases = append(x.releases, release)
		}
		em.source = p
		return em, nil
	case pb.MountType_SSH:
		return nil, errors.New("ssh mounts (RUN --mount=type=ssh) are not supported by this worker")
	}
	return nil, fmt.Errorf("mount type %v is not supported", m.MountType)
}

// pruneMountDirs removes, from the upper dir, the directories the runtime
// created below a stub to reach a mount target deeper down (for /var/cache/x
// on an image without /var, the stub is "var" and the runtime made
// var/cache/x): from the target up to the stub, each directory that is still
// empty, and the target itself when it is an empty file (the target of a
// file mount, /run/secrets/ID). overlay.RemoveStubs then removes the stub itself. Anything the
// process wrote beside them keeps its parents.
func pruneMountDirs(upper string, stubs []string, mounts []sandbox.BindMount) {
	for _, m := range mounts {
		rel := strings.TrimPrefix(filepath.Clean(m.Destination), "/")
		for _, stub := range stubs {
			if !strings.HasPrefix(rel, stub+"/") {
				continue
			}
			for d := rel; d != stub && d != "."; d = filepath.Dir(d) {
				p := filepath.Join(upper, d)
				fi, err := os.Lstat(p)
				if err != nil {
					break
				}
				// The target of a file mount (a secret) is an empty
				// file the runtime made; the process could not write
				// to it, it was mounted over.
				isStubFile := d == rel && fi.Mode().IsRegular() && fi.Size() == 0
				if !fi.IsDir() && !isStubFile {
					break
				}
				if err := os.Remove(p); err != nil {
					break // not empty: the process's
				}
			}
		}
	}
}

// cacheLock returns the lock of the cache directory dir.
func (w *Worker) cacheLock(dir string) *sync.Mutex {
	return keyedLock(&sharedMu, cacheLocks, dir)
}

// makeCache creates the cache directory dir of mount m unless it exists:
// empty (root's, 0755), or, when the mount names an input (as
// dockerfile2llb does for `--mount=type=cache,uid=…,gid=…,mode=…`), a copy
// of the input's Selector path with its owner and mode. The caller holds
// the directory's lock.
func (x *execRun) makeCache(ctx context.Context, dir string, m *pb.Mount, inputs []build.Ref) error {
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	if m.Input < 0 {
		return os.Mkdir(dir, 0o755)
	}
	r, err := inputRef(inputs, m.Input)
	if err != nil {
		return err
	}
	src, release, err := x.w.view(ctx, r)
	if err != nil {
		return err
	}
	defer release()
	sel := m.Selector
	if sel == "" {
		sel = "/"
	}
	tmp := dir + ".new"
	os.RemoveAll(tmp)
	if err := copy.Copy(ctx, src, sel, filepath.Dir(tmp), "/"+filepath.Base(tmp)); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("seeding from %s: %w", sel, err)
	}
	return os.Rename(tmp, dir)
}

// mkCwd creates the working directory dir in rootfs when it is missing, with
// its missing parents, mode 0755 and owned by uid:gid (BuildKit's rule).
func mkCwd(rootfs, dir string, uid, gid int) error {
	p, err := securejoin.SecureJoin(rootfs, dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	_, err = copy.MkdirAll(p, 0o755, chowner(&copy.User{UID: uid, GID: gid}), nil)
	return err
}

// tailWriter keeps the last lines written to it.
type tailWriter struct {
	mu      sync.Mutex
	keep    int
	partial []byte
	tail    []string
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.add(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
	}
	if len(t.partial) > 64<<10 {
		t.add(string(t.partial))
		t.partial = nil
	}
	return len(p), nil
}

func (t *tailWriter) add(line string) {
	t.tail = append(t.tail, line)
	if len(t.tail) > t.keep {
		t.tail = t.tail[len(t.tail)-t.keep:]
	}
}

func (t *tailWriter) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.tail)
	if len(t.partial) > 0 {
		out = append(out, string(t.partial))
	}
	return out
}
