package sandbox

import (
	"os"
	"slices"
	"testing"

	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
)

// libcontainerConfig converts s as Run does.
func libcontainerConfig(t *testing.T, s Spec) *configs.Config {
	t.Helper()
	spec, err := runtimeSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName: s.ID, Spec: spec, RootlessEUID: os.Geteuid() != 0, RootlessCgroups: true,
	})
	if err != nil {
		t.Fatalf("CreateLibcontainerConfig: %v", err)
	}
	return cfg
}

// allowed reports whether cfg's filter lets name through unconditionally.
func allowed(cfg *configs.Config, name string) bool {
	for _, c := range cfg.Seccomp.Syscalls {
		if c.Name == name && c.Action == configs.Allow && len(c.Args) == 0 {
			return true
		}
	}
	return false
}

// TestSecurityConfig checks what libcontainer is asked to apply in each
// security mode and network: capabilities, no_new_privs and the seccomp
// filter, as specconv converts them.
func TestSecurityConfig(t *testing.T) {
	base := Spec{ID: "x", StateDir: "/tmp/state", Rootfs: "/tmp/rootfs", Args: []string{"true"}}

	host := libcontainerConfig(t, base)
	if !host.NoNewPrivileges {
		t.Error("sandbox: no_new_privs not set")
	}
	if c := host.Capabilities.Bounding; slices.Contains(c, "CAP_NET_RAW") || slices.Contains(c, "CAP_NET_ADMIN") || !slices.Contains(c, "CAP_CHOWN") {
		t.Errorf("sandbox, host network: capabilities %v, want Docker's without CAP_NET_RAW", c)
	}
	if host.Seccomp == nil {
		t.Fatal("sandbox: no seccomp filter")
	}
	// Docker's profile: refuse by default with EPERM; the ordinary calls
	// pass; keyrings, namespaces, mounts and bpf do not (no CAP_SYS_ADMIN).
	if host.Seccomp.DefaultAction != configs.Errno || host.Seccomp.DefaultErrnoRet == nil || *host.Seccomp.DefaultErrnoRet != 1 {
		t.Errorf("default action %v errno %v, want Errno EPERM", host.Seccomp.DefaultAction, host.Seccomp.DefaultErrnoRet)
	}
	for _, name := range []string{"read", "openat", "execve", "setresuid", "chown"} {
		if !allowed(host, name) {
			t.Errorf("sandbox: %s is not allowed", name)
		}
	}
	for _, name := range []string{"keyctl", "add_key", "request_key", "unshare", "mount", "setns", "bpf", "open_by_handle_at", "kexec_load", "reboot"} {
		if allowed(host, name) {
			t.Errorf("sandbox: %s is allowed", name)
		}
	}

	none := base
	none.Network = NetworkNone
	if c := libcontainerConfig(t, none).Capabilities.Bounding; !slices.Equal(c, defaultCaps) {
		t.Errorf("sandbox, own network namespace: capabilities %v, want Docker's %v", c, defaultCaps)
	}

	insecure := base
	insecure.Security = SecurityInsecure
	cfg := libcontainerConfig(t, insecure)
	if cfg.Seccomp != nil || cfg.NoNewPrivileges {
		t.Errorf("insecure: seccomp %v, no_new_privs %v; want neither", cfg.Seccomp != nil, cfg.NoNewPrivileges)
	}
	for _, c := range []string{"CAP_SYS_ADMIN", "CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_SYS_PTRACE", "CAP_CHOWN"} {
		if !slices.Contains(cfg.Capabilities.Bounding, c) || !slices.Contains(cfg.Capabilities.Effective, c) {
			t.Errorf("insecure: %s missing from %v", c, cfg.Capabilities.Bounding)
		}
	}
}

func TestSecurityCheck(t *testing.T) {
	for _, s := range []Security{"", SecuritySandbox, SecurityInsecure} {
		if err := s.Check(); err != nil {
			t.Errorf("Security(%q).Check() = %v", s, err)
		}
	}
	err := Security("privileged").Check()
	if want := `unknown security mode "privileged": use "sandbox" (the default) or "insecure"`; err == nil || err.Error() != want {
		t.Errorf("Check() = %v, want %s", err, want)
	}
}
