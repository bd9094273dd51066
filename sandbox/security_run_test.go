package sandbox_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/sandbox"
	"golang.org/x/sys/unix"
)

// probeEnv makes the test binary, run inside a sandbox, print what the
// process may do (securityProbe) instead of running tests.
const probeEnv = "SNAPBUILD_SANDBOX_PROBE"

// securityProbe prints, one "name=value" line each, the process's seccomp
// mode and no_new_privs flag (/proc/self/status), and the outcome ("ok" or
// the errno's name) of opening a packet socket, joining a new session
// keyring (keyctl) and unsharing the UTS namespace.
func securityProbe() {
	status, _ := os.ReadFile("/proc/self/status")
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch k {
		case "Seccomp", "NoNewPrivs":
			fmt.Printf("%s=%s\n", k, strings.TrimSpace(v))
		}
	}
	outcome := func(err error) string {
		var errno unix.Errno
		if errors.As(err, &errno) {
			return unix.ErrnoName(errno)
		}
		if err != nil {
			return err.Error()
		}
		return "ok"
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err == nil {
		unix.Close(fd)
	}
	fmt.Printf("packet=%s\n", outcome(err))
	_, err = unix.KeyctlJoinSessionKeyring("snapbuild-probe")
	fmt.Printf("keyctl=%s\n", outcome(err))
	runtime.LockOSThread() // the thread leaves with the process
	fmt.Printf("unshare=%s\n", outcome(unix.Unshare(unix.CLONE_NEWUTS)))
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// installProbe copies the test binary and the libraries it loads into
// rootfs as /probe.
func installProbe(t *testing.T, rootfs string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := copyFile(self, filepath.Join(rootfs, "probe")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ldd", self).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", self, err)
	}
	for _, f := range strings.Fields(string(out)) {
		if !strings.HasPrefix(f, "/") {
			continue
		}
		dst := filepath.Join(rootfs, f)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(f, dst); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSecurityInSandbox runs the probe in real sandboxes: by default the
// process has a seccomp filter and no_new_privs, and can open no packet
// socket in the host's network namespace (it can in a namespace of its own,
// as in Docker), join no keyring and unshare nothing; with
// SecurityInsecure all of that is allowed.
func TestSecurityInSandbox(t *testing.T) {
	for _, c := range []struct {
		security sandbox.Security
		network  sandbox.Network
		want     map[string]string
	}{
		{"", sandbox.NetworkHost, map[string]string{"Seccomp": "2", "NoNewPrivs": "1", "packet": "EPERM", "keyctl": "EPERM", "unshare": "EPERM"}},
		{sandbox.SecuritySandbox, sandbox.NetworkNone, map[string]string{"Seccomp": "2", "NoNewPrivs": "1", "packet": "ok", "keyctl": "EPERM", "unshare": "EPERM"}},
		{sandbox.SecuritySandbox, sandbox.NetworkPrivate, map[string]string{"Seccomp": "2", "NoNewPrivs": "1", "packet": "ok", "keyctl": "EPERM", "unshare": "EPERM"}},
		{sandbox.SecurityInsecure, sandbox.NetworkHost, map[string]string{"Seccomp": "0", "NoNewPrivs": "0", "packet": "ok", "keyctl": "ok", "unshare": "ok"}},
	} {
		t.Run(fmt.Sprintf("%s-%s", orSandbox(c.security), c.network), func(t *testing.T) {
			s := newSnap(t)
			installProbe(t, s.merged)
			seq++
			var out bytes.Buffer
			res, err := sandbox.Run(context.Background(), sandbox.Spec{
				ID:       fmt.Sprintf("sectest-%d-%d", os.Getpid(), seq),
				StateDir: filepath.Join(t.TempDir(), "state"),
				Rootfs:   s.merged,
				Args:     []string{"/probe"},
				Env:      []string{probeEnv + "=1"},
				Stdout:   &out, Stderr: &out,
				Network:  c.network,
				Security: c.security,
			})
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("probe: exit %d, %v\n%s", res.ExitCode, err, out.String())
			}
			got := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					got[k] = v
				}
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (probe output:\n%s)", k, got[k], v, out.String())
				}
			}
		})
	}
}

func orSandbox(s sandbox.Security) sandbox.Security {
	if s == "" {
		return sandbox.SecuritySandbox
	}
	return s
}

// TestMaskedPaths: besides runc's example masks, a step cannot read what
// containerd's default spec (BuildKit's, Docker's) masks: the host's
// interrupt counts and its powercap energy counters read empty.
func TestMaskedPaths(t *testing.T) {
	if _, err := os.Stat("/proc/interrupts"); err != nil {
		t.Skipf("this kernel has no /proc/interrupts: %v", err)
	}
	s := newSnap(t)
	res, out, err := runIn(t, s, nil, `echo "interrupts=[$(cat /proc/interrupts)]"; echo "powercap=[$(ls /sys/devices/virtual/powercap 2>/dev/null)]"`)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %v, exit %d\n%s", err, res.ExitCode, out)
	}
	wantLines(t, out, "interrupts=[]", "powercap=[]")
}
