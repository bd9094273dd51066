package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/profiles/seccomp"
	"github.com/moby/sys/capability"
	lcseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Security selects how a sandboxed process is confined beyond its
// namespaces. The values are BuildKit's exec security modes (pb.SecurityMode)
// and name its entitlement: "insecure" is what `docker buildx build --allow
// security.insecure` lets a `RUN --security=insecure` step have.
type Security string

const (
	// SecuritySandbox is the default (so is ""): Docker's default
	// capability set, less CAP_NET_RAW and CAP_NET_ADMIN when the process
	// shares the host's network namespace (see Network); Docker's default
	// seccomp profile (github.com/moby/profiles/seccomp, the one dockerd
	// and BuildKit apply), resolved for those capabilities, so that
	// mount(2), unshare(2), keyctl(2), bpf(2) and the like fail with EPERM;
	// and no_new_privs, so that setuid and file-capability binaries (su,
	// sudo, ping with cap_net_raw) gain nothing: a step must start as root
	// and drop to a user, not the other way round.
	SecuritySandbox Security = "sandbox"
	// SecurityInsecure gives the process every capability the kernel knows
	// and the builder holds (its bounding set), no seccomp filter and no
	// no_new_privs, as BuildKit's security.insecure (it still gets no host
	// devices and its /sys stays read-only). Rootless, the capabilities hold only in the user
	// namespace of the build: they do not reach the host's network or
	// files. As root with the host network, the process can read and
	// change the host's network (packet sockets, routes, firewall).
	SecurityInsecure Security = "insecure"
)

// Check reports whether s is a known security mode, naming the choices when
// it is not.
func (s Security) Check() error {
	switch s {
	case "", SecuritySandbox, SecurityInsecure:
		return nil
	}
	return fmt.Errorf("unknown security mode %q: use %q (the default) or %q", string(s), SecuritySandbox, SecurityInsecure)
}

// ErrSeccompUnsupported reports a binary built without libcontainer's
// seccomp support, which cannot run a process under SecuritySandbox.
var ErrSeccompUnsupported = errors.New(`this binary was built without seccomp support (Go build tag "seccomp" with cgo and libseccomp-dev): rebuild it with "make build" (a program of your own: go build -tags seccomp), or build with --security insecure (Go: WithSecurity(sandbox.SecurityInsecure))`)

// extraMaskedPaths returns the paths that containerd's default spec (which
// BuildKit's steps and Docker's containers get) masks beyond runc's example
// spec (specconv.Example): the host's interrupt counts, its RAPL energy
// counters (powercap, the side channel of CVE-2020-8694) and, for each CPU
// that has them, its thermal throttle counters (runc skips a masked path
// that does not exist).
func extraMaskedPaths() []string {
	paths := []string{"/proc/interrupts", "/sys/devices/virtual/powercap"}
	cpus, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")
	return append(paths, cpus...)
}

// defaultCaps is Docker's default capability set (moby's
// oci/caps.DefaultCapabilities), which BuildKit and podman also use.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// hostNetworkCaps are the capabilities a SecuritySandbox process loses when
// it shares the host's network namespace: with them, as real root, it could
// open packet sockets and read (or forge) the host's traffic, loopback
// included, or reconfigure the host's interfaces and firewall.
var hostNetworkCaps = []string{"CAP_NET_RAW", "CAP_NET_ADMIN"}

// sharesHostNetwork reports whether a process with network n runs in the
// host's network namespace. Every other mode gives the sandbox a namespace
// of its own, where Docker's defaults apply.
func sharesHostNetwork(n Network) bool {
	return n == "" || n == NetworkHost
}

// capabilities returns the bounding, effective and permitted set of a process
// with security sec and network n.
func capabilities(sec Security, n Network) ([]string, error) {
	if sec == SecurityInsecure {
		return heldCaps()
	}
	caps := slices.Clone(defaultCaps)
	if sharesHostNetwork(n) {
		caps = slices.DeleteFunc(caps, func(c string) bool { return slices.Contains(hostNetworkCaps, c) })
	}
	return caps, nil
}

// heldCaps returns every capability the kernel knows that this process's
// bounding set holds: all of them as real root on a plain host; in a
// container (or a user namespace made by a confined process) those it was
// left, which are all a child can be given.
func heldCaps() ([]string, error) {
	known, err := capability.ListSupported()
	if err != nil {
		return nil, fmt.Errorf("listing the kernel's capabilities: %w", err)
	}
	self, err := capability.NewPid2(0)
	if err == nil {
		err = self.Load()
	}
	if err != nil {
		return nil, fmt.Errorf("reading this process's capabilities: %w", err)
	}
	var caps []string
	for _, c := range known {
		if self.Get(capability.BOUNDING, c) {
			caps = append(caps, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return caps, nil
}

// confine sets spec's capabilities, seccomp profile and no_new_privs for
// security sec and network n. It must run after spec.Process is otherwise
// complete: the profile allows some system calls by capability.
func confine(spec *specs.Spec, sec Security, n Network) error {
	caps, err := capabilities(sec, n)
	if err != nil {
		return err
	}
	spec.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding: caps, Effective: caps, Permitted: caps,
	}
	if sec == SecurityInsecure {
		spec.Process.NoNewPrivileges = false
		spec.Linux.Seccomp = nil
		return nil
	}
	if !lcseccomp.Enabled {
		return ErrSeccompUnsupported
	}
	spec.Process.NoNewPrivileges = true
	profile, err := seccomp.GetDefaultProfile(spec)
	if err != nil {
		return fmt.Errorf("seccomp profile: %w", err)
	}
	spec.Linux.Seccomp = profile
	return nil
}
