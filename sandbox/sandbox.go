package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Network selects the network a sandbox sees.
type Network string

const (
	// NetworkHost shares the host's network namespace (the default), as
	// `docker build --network host` does: apt-get and pip reach the host's mirrors,
	// proxies and loopback services (a package index on 127.0.0.1)
	// without a network stack in between. Under SecuritySandbox the
	// process has no CAP_NET_RAW and no CAP_NET_ADMIN, so it can neither
	// see the host's traffic nor change its network; it can still connect
	// to, and listen on, the host's addresses like any host process.
	NetworkHost Network = "host"
	// NetworkNone gives the sandbox a network namespace with loopback only.
	NetworkNone Network = "none"
	// NetworkPrivate gives the sandbox a network namespace of its own
	// with outbound access through slirp4netns (Debian package
	// slirp4netns), a user-mode TCP/IP stack, as podman's rootless
	// default network and BuildKit's rootless "sandbox" network: the
	// sandbox has address PrivateAddress on tap0, a default route
	// through PrivateGateway and PrivateDNS as its only nameserver.
	// Connections leave from the host's network namespace as the
	// builder's own would, NATed. The host's loopback services (a
	// package index on 127.0.0.1) are reachable only through
	// PrivateGateway (HostAlias in /etc/hosts), not through 127.0.0.1,
	// which is the sandbox's own; the sandbox cannot bind host ports,
	// see the host's interfaces or reach the host's abstract Unix
	// sockets. The process keeps Docker's full default capability set,
	// as with NetworkNone. Rootless, slirp4netns opens /dev/net/tun,
	// which must be readable and writable by the user (mode 0666, as
	// Debian's udev rules make it).
	NetworkPrivate Network = "private"
)

// Check reports whether n is a known network, naming the choices when it
// is not. "" is NetworkHost.
func (n Network) Check() error {
	switch n {
	case "", NetworkHost, NetworkNone, NetworkPrivate:
		return nil
	}
	return fmt.Errorf("unknown network %q: use %q (the default), %q or %q", string(n), NetworkHost, NetworkNone, NetworkPrivate)
}

// BindMount is a bind mount of a host path into the sandbox.
type BindMount struct {
	Source      string // host path, file or directory
	Destination string // absolute path inside the sandbox
	ReadOnly    bool
}

// Spec describes one sandboxed process.
type Spec struct {
	// ID names the container; it must be unique within StateDir and consist of
	// letters, digits and "_+-.".
	ID string
	// StateDir holds libcontainer's state for the container's lifetime.
	StateDir string
	// Rootfs is the mounted root filesystem (an overlay snapshot).
	Rootfs string
	// Args is the command and its arguments; Args[0] is looked up in the
	// sandbox's PATH by the container init.
	Args []string
	// Env is the process environment, "KEY=value" entries.
	Env []string
	// Cwd is the absolute working directory inside the rootfs; "" means "/".
	Cwd string
	// UID and GID the process runs as, inside the sandbox.
	UID, GID int
	// Stdin, Stdout and Stderr connect the process; nil means /dev/null.
	// With Terminal, Stdin and Stdout connect the pty and Stderr is unused.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Terminal, when set, gives the process a pseudo-terminal (see
	// Terminal); nil gives it Stdin, Stdout and Stderr as they are.
	Terminal *Terminal
	// Mounts are extra bind mounts, applied after the standard ones.
	Mounts []BindMount
	// Network defaults to NetworkHost.
	Network Network
	// Security defaults to SecuritySandbox: Docker's default capabilities
	// (none of the network ones with the host network), seccomp profile
	// and no_new_privs.
	Security Security
	// Hostname defaults to "snapbuild".
	Hostname string
	// Devices are host character devices (e.g. /dev/nvidia0) bound
	// read-only into the sandbox (never created with mknod, so it works
	// rootless; the nodes still open for writing) and allowed by the
	// device cgroup.
	Devices []Device
	// Hooks are OCI runtime hooks (e.g. from a CDI spec) that libcontainer
	// runs while it sets the container up, before the process starts. When
	// there are hooks, the hooks get the container's state on stdin with a
	// bundle directory whose config.json names the rootfs (root.path), as
	// OCI runtimes give it: hooks such as nvidia-ctk's find the rootfs so.
	Hooks []Hook
	// UpperDir is the overlay upper dir of Rootfs, optional. With hooks,
	// Run records what the runtime and the hooks made in it before the
	// process started, and reports in Result.Stubs the entries that the
	// process left as they were (see Result.Stubs). Without hooks it is not
	// used: mount stubs are found as without it.
	UpperDir string
}

// Device is a host character device node.
type Device struct {
	Path         string // absolute path inside the sandbox
	HostPath     string // absolute path on the host; "" means Path
	Major, Minor int64
}

// Hook is an OCI runtime hook (runtime-spec config "hooks"). Path is run with
// Args (Args[0] is the program name; empty Args means {Path}) and exactly
// Env, with the container's OCI state as JSON on stdin.
type Hook struct {
	// Stage is the OCI hook point: HookPrestart, HookCreateRuntime,
	// HookCreateContainer or HookPoststart. All of them run before the
	// process starts: prestart and createRuntime in the builder's
	// namespaces, createContainer in the container's mount namespace before
	// pivot_root (so host paths still work and the rootfs is at Rootfs),
	// poststart after the container is created. startContainer and poststop
	// hooks are refused: they run while or after the process runs, so what
	// they change in the rootfs could not be told apart from the step's work.
	Stage   string
	Path    string
	Args    []string
	Env     []string
	Timeout time.Duration // 0: no limit
}

// Hook stages (OCI names).
const (
	HookPrestart        = "prestart"
	HookCreateRuntime   = "createRuntime"
	HookCreateContainer = "createContainer"
	HookPoststart       = "poststart"
)

// Result is what Run observed.
type Result struct {
	// ExitCode is the process's exit status, or 128+signal when it was killed.
	ExitCode int
	// Stubs lists the paths, relative to the rootfs and without a leading "/",
	// that did not exist before the run and that the runtime created only to
	// mount over them (e.g. "etc/resolv.conf"). They belong to no layer.
	//
	// With Hooks and UpperDir it also lists, sorted, every upper dir entry
	// that appeared or changed while the container was set up (mount
	// stubs, copied-up parents, what the hooks wrote: /etc/ld.so.cache,
	// symlinks, /etc/ld.so.conf.d files) and that was still unchanged
	// (same inode, type, mode, owner, link count, size, mtime and ctime,
	// and content for regular files up to 4 MiB) when the process exited. An entry the process changed is the process's work
	// and is not listed. Removing the listed entries from the upper dir
	// (overlay.RemoveStubs) leaves exactly the process's changes; a listed
	// directory is only removable once empty.
	Stubs []string
}

// ErrCommandNotFound and ErrCommandNotExecutable report that the process
// could not be started; Result.ExitCode is then 127 or 126, as a shell's.
var (
	ErrCommandNotFound      = errors.New("command not found")
	ErrCommandNotExecutable = errors.New("command not executable")
)

// lastPart is the innermost cause in a libcontainer error chain.
func lastPart(msg string) string {
	if i := strings.LastIndex(msg, ": exec: "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// Run starts the process described by s, waits for it and tears the container
// down. A non-zero exit status is not an error: it is reported in
// Result.ExitCode. Errors are failures to set up or start the container. When ctx
// is cancelled the process is killed and ctx.Err() is returned.
//
// The process gets a PID namespace and a procfs of its own. Where the
// kernel refuses that procfs (in a container whose /proc has masked paths:
// podman's and Kubernetes' default), Run starts it again sharing the
// builder's PID namespace with the builder's /proc bound in its place, and
// so every later Run of the process (SharedPIDNamespace), with one warning
// on standard error: BuildKit's rootless --oci-worker-no-process-sandbox.
func Run(ctx context.Context, s Spec) (Result, error) {
	// The container's init process has this OS thread as its parent (runc
	// clones it with CLONE_PARENT) and dies with it (see Init): keep the
	// goroutine on one thread that lives until the process is reaped.
	type outcome struct {
		res Result
		err error
	}
	ch := make(chan outcome, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		res, err := runFallingBack(ctx, s)
		ch <- outcome{res, err}
	}()
	o := <-ch
	return o.res, o.err
}

func run(ctx context.Context, s Spec) (Result, error) {
	spec, err := runtimeSpec(s)
	if err != nil {
		return Result{}, err
	}
	stubs := missingTargets(s.Rootfs, spec.Mounts)
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:      s.ID,
		Spec:            spec,
		RootlessEUID:    os.Geteuid() != 0,
		RootlessCgroups: InUserNamespace() || os.Geteuid() != 0,
	})
	if err != nil {
		return Result{}, fmt.Errorf("sandbox %s: config: %w", s.ID, err)
	}
	cfg.ParentDeathSignal = int(unix.SIGKILL)
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return Result{}, fmt.Errorf("sandbox %s: %w", s.ID, err)
	}
	if s.Network == NetworkPrivate || s.Network == NetworkNone {
		if err := writeNetFiles(s); err != nil {
			return Result{}, fmt.Errorf("sandbox %s: network files: %w", s.ID, err)
		}
		defer os.RemoveAll(privateDir(s))
	}
	var track *upperTracker
	if len(s.Hooks) > 0 {
		bundle, err := writeBundle(s, spec)
		if err != nil {
			return Result{}, fmt.Errorf("sandbox %s: %w", s.ID, err)
		}
		defer os.RemoveAll(bundle)
		setBundleLabel(cfg, bundle)
		if s.UpperDir != "" {
			if track, err = newUpperTracker(s.UpperDir); err != nil {
				return Result{}, fmt.Errorf("sandbox %s: %w", s.ID, err)
			}
		}
	}
	c, err := libcontainer.Create(s.StateDir, s.ID, cfg)
	if err != nil {
		return Result{}, fmt.Errorf("sandbox %s: create container: %w", s.ID, err)
	}
	defer c.Destroy()

	p := &libcontainer.Process{
		Args:   s.Args,
		Env:    s.Env,
		Cwd:    orDefault(s.Cwd, "/"),
		UID:    s.UID,
		GID:    s.GID,
		Stdin:  s.Stdin,
		Stdout: s.Stdout,
		Stderr: s.Stderr,
		Init:   true,
	}
	var consoleParent *os.File
	if s.Terminal != nil {
		var child *os.File
		if consoleParent, child, err = consoleSocket(); err != nil {
			return Result{}, fmt.Errorf("sandbox %s: %w", s.ID, err)
		}
		defer consoleParent.Close()
		// The init keeps its own copy; ours is closed once it has started,
		// so that a receive on consoleParent cannot wait for ever.
		defer child.Close()
		p.Stdin, p.Stdout, p.Stderr = nil, nil, nil
		p.ConsoleSocket = child
		p.ConsoleWidth, p.ConsoleHeight = s.Terminal.Size.Width, s.Terminal.Size.Height
	}
	var net *slirp
	defer func() {
		if net != nil {
			net.stop()
		}
	}()
	if track == nil && s.Network != NetworkPrivate {
		err = c.Run(p)
	} else {
		// Start stops the init at the exec fifo, after the namespaces,
		// the mounts and the hooks: what is new in the upper dir now is
		// the runtime's, and the network namespace exists for
		// slirp4netns to serve before the process runs.
		if err = c.Start(p); err == nil {
			if track != nil {
				err = track.started()
			}
			if err == nil && s.Network == NetworkPrivate {
				var pid int
				if pid, err = p.Pid(); err == nil {
					net, err = startSlirp(ctx, pid)
				}
			}
			if err == nil {
				err = c.Exec()
			} else {
				_ = p.Signal(unix.SIGKILL)
				_, _ = p.Wait()
				return Result{Stubs: stubs}, fmt.Errorf("sandbox %s: %w", s.ID, err)
			}
		}
	}
	if err != nil {
		res := Result{Stubs: stubs}
		msg := err.Error()
		switch {
		case strings.Contains(msg, "error running ") && strings.Contains(msg, " hook #"):
			return res, fmt.Errorf("sandbox %s: %w", s.ID, err)
		case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory"):
			res.ExitCode = 127
			return res, fmt.Errorf("%w: %s: %s", ErrCommandNotFound, s.Args[0], lastPart(msg))
		case strings.Contains(msg, "permission denied") && strings.Contains(msg, "exec"):
			res.ExitCode = 126
			return res, fmt.Errorf("%w: %s: %s", ErrCommandNotExecutable, s.Args[0], lastPart(msg))
		}
		return res, fmt.Errorf("sandbox %s: start %q: %w", s.ID, strings.Join(s.Args, " "), err)
	}
	var pty *ptyCopier
	if consoleParent != nil {
		p.ConsoleSocket.Close()
		master, err := recvMaster(consoleParent)
		if err != nil {
			_ = p.Signal(unix.SIGKILL)
			_, _ = p.Wait()
			return Result{Stubs: stubs}, fmt.Errorf("sandbox %s: %w", s.ID, err)
		}
		pty = startPTY(master, s.Terminal, s.Stdin, s.Stdout)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = p.Signal(unix.SIGKILL)
		case <-done:
		}
	}()
	ps, werr := p.Wait()
	close(done)
	if pty != nil {
		pty.finish(2 * time.Second)
	}
	res := Result{Stubs: stubs}
	if track != nil {
		res.Stubs = mergeSorted(stubs, track.unchanged())
	}
	if ps == nil {
		return res, fmt.Errorf("sandbox %s: wait: %w", s.ID, werr)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.ExitCode = 128 + int(ws.Signal())
	} else {
		res.ExitCode = ps.ExitCode()
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

func runtimeSpec(s Spec) (*specs.Spec, error) {
	if s.ID == "" || s.StateDir == "" || s.Rootfs == "" {
		return nil, errors.New("sandbox: Spec needs ID, StateDir and Rootfs")
	}
	if len(s.Args) == 0 {
		return nil, fmt.Errorf("sandbox %s: no command given", s.ID)
	}
	spec := specconv.Example()
	spec.Linux.MaskedPaths = append(spec.Linux.MaskedPaths, extraMaskedPaths()...)
	spec.Root = &specs.Root{Path: s.Rootfs}
	spec.Hostname = orDefault(s.Hostname, "snapbuild")
	spec.Process.Terminal = s.Terminal != nil
	spec.Linux.Resources = nil
	if err := s.Security.Check(); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.ID, err)
	}
	if err := s.Network.Check(); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.ID, err)
	}
	if err := confine(spec, s.Security, s.Network); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.ID, err)
	}
	spec.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
	}
	if !sharesHostNetwork(s.Network) {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if sharedPID.Load() {
		shareProc(spec)
	}
	if sharedUTS.Load() {
		shareUTS(spec)
	}
	var mounts []specs.Mount
	for _, m := range spec.Mounts {
		switch m.Destination {
		case "/sys":
			// sysfs cannot be mounted in a user namespace that does not own
			// the network namespace: bind the host's, read-only.
			m = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys",
				Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
		case "/sys/fs/cgroup":
			continue
		case "/dev/pts":
			if SingleID() {
				// Group tty (5) is not mapped: the ptys keep the
				// owner's group (runc's ToRootless).
				m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return strings.HasPrefix(o, "gid=") })
			}
		}
		mounts = append(mounts, m)
	}
	mounts = append(mounts, netMounts(s)...)
	for _, m := range s.Mounts {
		if !path.IsAbs(m.Destination) {
			return nil, fmt.Errorf("sandbox %s: mount destination %q is not absolute", s.ID, m.Destination)
		}
		opts := []string{"rbind"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		mounts = append(mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	for _, d := range s.Devices {
		src := orDefault(d.HostPath, d.Path)
		if !path.IsAbs(d.Path) || !path.IsAbs(src) {
			return nil, fmt.Errorf("sandbox %s: device %q (host %q) is not an absolute path", s.ID, d.Path, src)
		}
		// Bound, not created: mknod is not possible rootless. /dev is a
		// tmpfs, so the mount target never reaches the rootfs. Read-only
		// binds still open for writing (the read-only flag only guards
		// regular files, directories and symlinks), but the host's node
		// cannot be chmod-ed or chown-ed through them.
		mounts = append(mounts, specs.Mount{Destination: d.Path, Type: "bind", Source: src,
			Options: []string{"bind", "nosuid", "noexec", "ro"}})
		if spec.Linux.Resources == nil {
			spec.Linux.Resources = &specs.LinuxResources{}
		}
		major, minor := d.Major, d.Minor
		spec.Linux.Resources.Devices = append(spec.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
			Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"})
	}
	spec.Mounts = mounts
	if len(s.Hooks) > 0 {
		spec.Hooks = &specs.Hooks{}
	}
	for _, h := range s.Hooks {
		if !path.IsAbs(h.Path) {
			return nil, fmt.Errorf("sandbox %s: hook %q is not an absolute path", s.ID, h.Path)
		}
		oh := specs.Hook{Path: h.Path, Args: h.Args, Env: h.Env}
		if len(oh.Args) == 0 {
			oh.Args = []string{h.Path}
		}
		if h.Timeout > 0 {
			secs := int((h.Timeout + time.Second - 1) / time.Second)
			oh.Timeout = &secs
		}
		switch h.Stage {
		case HookPrestart:
			spec.Hooks.Prestart = append(spec.Hooks.Prestart, oh) //nolint:staticcheck // CDI specs may still use it
		case HookCreateRuntime:
			spec.Hooks.CreateRuntime = append(spec.Hooks.CreateRuntime, oh)
		case HookCreateContainer:
			spec.Hooks.CreateContainer = append(spec.Hooks.CreateContainer, oh)
		case HookPoststart:
			spec.Hooks.Poststart = append(spec.Hooks.Poststart, oh)
		default:
			return nil, fmt.Errorf("sandbox %s: hook %s: stage %q is not supported (prestart, createRuntime, createContainer, poststart): a hook that runs while or after the process runs could change the rootfs unnoticed", s.ID, h.Path, h.Stage)
		}
	}
	return spec, nil
}

// missingTargets returns the first missing component of each mount destination,
// relative to rootfs, for destinations that lie in the rootfs itself (not under
// an earlier mount).
func missingTargets(rootfs string, mounts []specs.Mount) []string {
	var stubs, covered []string
	seen := map[string]bool{}
next:
	for _, m := range mounts {
		dest := path.Clean(m.Destination)
		for _, c := range covered {
			if dest != c && strings.HasPrefix(dest, strings.TrimSuffix(c, "/")+"/") {
				continue next
			}
		}
		covered = append(covered, dest)
		rel := strings.TrimPrefix(dest, "/")
		parts := strings.Split(rel, "/")
		for i := range parts {
			p := strings.Join(parts[:i+1], "/")
			if _, err := os.Lstat(filepath.Join(rootfs, p)); err != nil {
				if !seen[p] {
					seen[p] = true
					stubs = append(stubs, p)
				}
				break
			}
		}
	}
	return stubs
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
