package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The addresses of a NetworkPrivate sandbox: slirp4netns's defaults for its
// 10.0.2.0/24 network, the ones podman's and rootlesskit's slirp4netns
// networks use.
const (
	// PrivateAddress is the sandbox's own address, on its interface tap0.
	PrivateAddress = "10.0.2.100"
	// PrivateGateway is the sandbox's default route and the host's
	// loopback: a connection to PrivateGateway:PORT reaches the host's
	// 127.0.0.1:PORT (a package index on the host's loopback), as
	// slirp4netns without --disable-host-loopback and podman's
	// allow_host_loopback=true make it. /etc/hosts names it HostAlias.
	PrivateGateway = "10.0.2.2"
	// PrivateDNS is slirp4netns's DNS forwarder, the only nameserver in a
	// NetworkPrivate sandbox's /etc/resolv.conf: it forwards to the
	// nameservers of the host's /etc/resolv.conf, as seen from the host's
	// network namespace.
	PrivateDNS = "10.0.2.3"
	// HostAlias is the name of PrivateGateway in a NetworkPrivate
	// sandbox's /etc/hosts, podman's name for the host.
	HostAlias = "host.containers.internal"
)

// privateMTU is the MTU of tap0: slirp4netns's largest, as podman and
// rootlesskit set it, for speed.
const privateMTU = 65520

// privateReadyTimeout bounds the wait for slirp4netns to configure tap0.
const privateReadyTimeout = 30 * time.Second

// slirp4netnsPath is the user-mode network stack NetworkPrivate needs
// (Debian package slirp4netns), looked up in PATH.
var slirp4netnsPath = "slirp4netns"

// netFiles returns the host paths of the resolv.conf and hosts files that a
// sandbox with network n gets, for spec s: generated ones under StateDir for
// NetworkPrivate, the host's for the host network, and for NetworkNone a
// generated hosts file naming only loopback (as BuildKit and Docker give a
// step or container without network one, so that localhost resolves) and
// no resolv.conf.
func netFiles(s Spec) (resolv, hosts string) {
	switch s.Network {
	case NetworkNone:
		return "", filepath.Join(privateDir(s), "hosts")
	case NetworkPrivate:
		dir := privateDir(s)
		return filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "hosts")
	}
	return "/etc/resolv.conf", "/etc/hosts"
}

// privateDir holds the generated network files of a NetworkPrivate or
// NetworkNone sandbox.
func privateDir(s Spec) string {
	return filepath.Join(s.StateDir, s.ID+".net")
}

// writeNetFiles writes the generated network files of a NetworkPrivate or
// NetworkNone sandbox (see netFiles). The caller removes privateDir.
func writeNetFiles(s Spec) error {
	resolv, hosts := netFiles(s)
	if err := os.MkdirAll(privateDir(s), 0o755); err != nil {
		return err
	}
	name := orDefault(s.Hostname, "snapbuild")
	if s.Network == NetworkNone {
		// BuildKit's hosts file for a step (executor/oci/hosts.go).
		h := "127.0.0.1\tlocalhost " + name + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
		return os.WriteFile(hosts, []byte(h), 0o644)
	}
	if err := os.WriteFile(resolv, []byte("nameserver "+PrivateDNS+"\n"), 0o644); err != nil {
		return err
	}
	h := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		PrivateAddress + "\t" + name + "\n" +
		PrivateGateway + "\t" + HostAlias + "\n"
	return os.WriteFile(hosts, []byte(h), 0o644)
}

// netMounts returns the read-only binds of the network files for s.
func netMounts(s Spec) []specs.Mount {
	resolv, hosts := netFiles(s)
	var mounts []specs.Mount
	for _, f := range []struct{ src, dst string }{{resolv, "/etc/resolv.conf"}, {hosts, "/etc/hosts"}} {
		if f.src == "" {
			continue
		}
		if s.Network == NetworkHost || s.Network == "" {
			if _, err := os.Stat(f.src); err != nil {
				continue
			}
		}
		mounts = append(mounts, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src,
			Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
	}
	return mounts
}

// slirpArgs returns slirp4netns's arguments for the network namespace of
// process pid, with the ready and exit pipes at fds 3 and 4.
func slirpArgs(pid int) []string {
	return []string{
		"--configure", "--mtu=" + strconv.Itoa(privateMTU),
		"--ready-fd=3", "--exit-fd=4",
		// Its own mount namespace, no capabilities but
		// CAP_NET_BIND_SERVICE, and a seccomp filter: a bug in the
		// user-mode stack reached from the sandbox gets little.
		"--enable-sandbox", "--enable-seccomp",
		strconv.Itoa(pid), "tap0",
	}
}

// slirp is a running slirp4netns serving one sandbox's network namespace.
type slirp struct {
	cmd    *exec.Cmd
	exit   *os.File // closing it makes slirp4netns exit
	stderr *bytes.Buffer
	done   chan struct{}
}

// startSlirp starts slirp4netns for the network namespace of process pid
// (a container init waiting at its exec fifo) and returns once tap0 is up
// with PrivateAddress and a default route through PrivateGateway. The
// caller must call stop on every path.
func startSlirp(ctx context.Context, pid int) (*slirp, error) {
	bin, err := exec.LookPath(slirp4netnsPath)
	if err != nil {
		return nil, fmt.Errorf("network %s needs slirp4netns (Debian package slirp4netns): %w", NetworkPrivate, err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, slirpArgs(pid)...)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.ExtraFiles = []*os.File{readyW, exitR}
	// Dies with this thread (Run keeps it until the process is reaped)
	// and so with snapbuild, however it ends; its own process group so
	// that a terminal's ^C reaches snapbuild, which then stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	err = cmd.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		exitW.Close()
		return nil, fmt.Errorf("starting slirp4netns: %w", err)
	}
	sl := &slirp{cmd: cmd, exit: exitW, stderr: &stderr, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(sl.done)
	}()

	ready := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		_, err := io.ReadFull(readyR, b)
		ready <- err
	}()
	timer := time.NewTimer(privateReadyTimeout)
	defer timer.Stop()
	select {
	case err = <-ready:
		if err != nil {
			// EOF: slirp4netns exited (or closed the fd) before it
			// was ready.
			<-sl.done
		}
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("not ready after %s", privateReadyTimeout)
	}
	if err != nil {
		sl.stop()
		return nil, fmt.Errorf("slirp4netns for network %s: %w%s", NetworkPrivate, err, sl.why())
	}
	return sl, nil
}

// why returns what slirp4netns wrote, with a hint for the usual rootless
// failure, prefixed for an error message; "" if it wrote nothing.
func (sl *slirp) why() string {
	msg := strings.TrimSpace(sl.stderr.String())
	if msg == "" {
		return ""
	}
	if strings.Contains(msg, "/dev/net/tun") || strings.Contains(msg, "open(\"/dev/net/tun\")") {
		msg += "\n(slirp4netns opens /dev/net/tun: rootless, the device must be readable and writable by the user, mode 0666 as Debian's udev rules make it; `chmod 0666 /dev/net/tun` as root, or use --network host or none)"
	}
	return ": " + msg
}

// stop makes slirp4netns exit (its exit fd closes), waits for it and kills
// it if it has not exited within a second. It is idempotent.
func (sl *slirp) stop() {
	if sl.exit != nil {
		sl.exit.Close()
		sl.exit = nil
	}
	select {
	case <-sl.done:
		return
	case <-time.After(time.Second):
	}
	_ = sl.cmd.Process.Signal(unix.SIGKILL)
	<-sl.done
}
