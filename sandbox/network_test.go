package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snapbuild/snapbuild/sandbox"
	"golang.org/x/sys/unix"
)

// netProbeEnv makes the test binary, run inside a sandbox, print what the
// network lets it reach (netProbe) instead of running tests. Its value is
// the port of the test's HTTP server on the host's 127.0.0.1.
const netProbeEnv = "SNAPBUILD_SANDBOX_NETPROBE"

// netProbe prints, one "name=value" line each, the body of a GET of the
// host's loopback server through the gateway, its address and its name in
// /etc/hosts, the outcome of the same GET through the sandbox's own
// 127.0.0.1, the nameservers of /etc/resolv.conf and the outcome of
// opening a packet socket.
func netProbe(port string) {
	c := &http.Client{Timeout: 5 * time.Second}
	get := func(host string) string {
		resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/")
		if err != nil {
			var errno unix.Errno
			if errors.As(err, &errno) {
				return unix.ErrnoName(errno)
			}
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	fmt.Printf("gateway=%s\n", get(sandbox.PrivateGateway))
	fmt.Printf("alias=%s\n", get(sandbox.HostAlias))
	fmt.Printf("loopback=%s\n", get("127.0.0.1"))
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	var ns []string
	for _, l := range strings.Split(string(resolv), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "nameserver" {
			ns = append(ns, f[1])
		}
	}
	fmt.Printf("nameservers=%s\n", strings.Join(ns, ","))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err == nil {
		unix.Close(fd)
		fmt.Println("packet=ok")
	} else {
		fmt.Printf("packet=%v\n", err)
	}
}

// slirpChildren returns the pids of the slirp4netns processes whose parent
// is this process.
func slirpChildren(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(slirp4netns") {
			continue
		}
		if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestPrivateNetwork runs the probe with NetworkPrivate: the host's
// loopback server answers through PrivateGateway and HostAlias, not
// through 127.0.0.1; PrivateDNS is the only nameserver; the process keeps
// CAP_NET_RAW in its own namespace; and no slirp4netns outlives Run, also
// when the process fails or the context is cancelled.
func TestPrivateNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from the host")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	s := newSnap(t)
	installProbe(t, s.merged)
	run := func(ctx context.Context, args []string, env ...string) (sandbox.Result, string, error) {
		seq++
		var out bytes.Buffer
		res, err := sandbox.Run(ctx, sandbox.Spec{
			ID:       fmt.Sprintf("nettest-%d-%d", os.Getpid(), seq),
			StateDir: filepath.Join(t.TempDir(), "state"),
			Rootfs:   s.merged,
			Args:     args,
			Env:      env,
			Stdout:   &out, Stderr: &out,
			Network: sandbox.NetworkPrivate,
		})
		if left := slirpChildren(t); len(left) > 0 {
			t.Errorf("slirp4netns still running after Run: pids %v", left)
		}
		return res, out.String(), err
	}

	res, out, err := run(context.Background(), []string{"/probe"}, netProbeEnv+"="+port)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("probe: exit %d, %v\n%s", res.ExitCode, err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	for k, want := range map[string]string{
		"gateway":     "hello from the host",
		"alias":       "hello from the host",
		"loopback":    "ECONNREFUSED",
		"nameservers": sandbox.PrivateDNS,
		"packet":      "ok",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q (probe output:\n%s)", k, got[k], want, out)
		}
	}

	// A command that cannot start, and a process killed by a cancelled
	// context while it waits on the host: slirp4netns goes too.
	if _, _, err := run(context.Background(), []string{"/nonexistent"}); !errors.Is(err, sandbox.ErrCommandNotFound) {
		t.Errorf("missing command: %v, want ErrCommandNotFound", err)
	}
	mute, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	mport := strconv.Itoa(mute.Addr().(*net.TCPAddr).Port)
	if _, out, err := run(ctx, []string{"/probe"}, netProbeEnv+"="+mport); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled run: %v, want context.DeadlineExceeded\n%s", err, out)
	}
}
