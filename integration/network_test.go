package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// privateProbe is a shell script that prints, one "name=value" line each,
// what a step in --network private reaches of the HTTP server on the host's
// 127.0.0.1:PORT (its /ok answers "host-ok"; "fail" when unreachable):
// through the gateway 10.0.2.2, through its name host.containers.internal
// (from /etc/hosts: no DNS is needed) and through the step's own
// 127.0.0.1; then its nameservers and its network interfaces
// (/proc/net/dev, which is per network namespace).
func privateProbe(port int) string {
	return fmt.Sprintf(`get() { python3 -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())" "$1" 2>/dev/null || echo fail; }; `+
		`echo "gateway=$(get http://10.0.2.2:%[1]d/ok)"; `+
		`echo "alias=$(get http://host.containers.internal:%[1]d/ok)"; `+
		`echo "loopback=$(get http://127.0.0.1:%[1]d/ok)"; `+
		`echo "nameservers=$(awk '$1 == "nameserver" {print $2}' /etc/resolv.conf | paste -sd, -)"; `+
		`echo "interfaces=$(awk -F: 'NR > 2 {gsub(/ /, "", $1); print $1}' /proc/net/dev | sort | paste -sd, -)"`, port)
}

// hostOK serves "host-ok" at /ok on the host's 127.0.0.1 and returns the
// port.
func hostOK(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "host-ok") })
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// slirpProcs returns the running slirp4netns processes: pid -> the pid of
// the process whose network namespace it serves (its next-to-last
// argument).
func slirpProcs() map[int]int {
	procs := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 3 || filepath.Base(args[0]) != "slirp4netns" {
			continue
		}
		target, _ := strconv.Atoi(args[len(args)-2])
		procs[pid] = target
	}
	return procs
}

// newSlirps returns the pids of slirp4netns processes running now that
// were not in before.
func newSlirps(before map[int]int) []int {
	var pids []int
	for pid := range slirpProcs() {
		if _, ok := before[pid]; !ok {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// requireTun checks that slirp4netns can open /dev/net/tun as any user
// (mode 0666, as Debian's udev rules and .ci/run make it).
func requireTun(t *testing.T) {
	t.Helper()
	fi, err := os.Stat("/dev/net/tun")
	require(t, err == nil && fi.Mode()&0o006 == 0o006, "/dev/net/tun must exist with mode 0666 for --network private rootless (as Debian's udev makes it; .ci/run does `chmod 0666 /dev/net/tun`): %v %v", fi.Mode(), err)
}

// testNetworkPrivate builds, with --network private, an image whose steps
// install a wheel with pip from a package index on the host's 127.0.0.1
// through the gateway 10.0.2.2 and probe the network: the host's loopback
// server answers through the gateway and host.containers.internal only,
// the only nameserver is 10.0.2.3 and the interfaces are lo and tap0. A
// second build is taken from the cache; `snapbuild run --network private`
// sees the same, and `snapbuild run` with the host network the opposite.
// No slirp4netns outlives a build or a run.
func testNetworkPrivate(t *testing.T, r runner, dir string) {
	t.Helper()
	requireTools(t, "slirp4netns")
	requireTun(t)
	port := hostOK(t)
	whl := t.TempDir()
	dep := wheel(t, whl, "snapdep", "1.0", "dep-ok")
	index := strings.Replace(packageIndex(t, map[string][]string{"snapdep": {filepath.Join(whl, dep)}}), "127.0.0.1", "10.0.2.2", 1)
	recipe := writeRecipe(t, dir, "privnet.yaml", fmt.Sprintf(`
- debian_slim: {}
- pip_install: {packages: [snapdep], index_url: %q, extra_options: "--trusted-host 10.0.2.2"}
- run_commands: [%q]
`, index, "("+privateProbe(port)+") > /probe.txt"))
	private := []string{"gateway=host-ok", "alias=host-ok", "loopback=fail", "nameservers=10.0.2.3", "interfaces=lo,tap0"}

	before := slirpProcs()
	first := r.build(recipe, "--network", "private")
	if left := newSlirps(before); len(left) > 0 {
		t.Errorf("slirp4netns left running after the build: pids %v", left)
	}
	checkProbe(t, "private step", r.ok("run", "privnet", "cat", "/probe.txt").stdout, private...)
	if out := r.ok("run", "privnet", "python3", "-c", "import snapdep; print(snapdep.VALUE)").stdout; out != "dep-ok\n" {
		t.Errorf("snapdep from the index through the gateway: %q, want dep-ok", out)
	}
	again := r.build(recipe, "--network", "private")
	if again.Stats.ContainersStarted != 0 || again.ID != first.ID {
		t.Errorf("private rebuild: %d containers started, image %s; want 0 and %s", again.Stats.ContainersStarted, again.ID, first.ID)
	}
	checkProbe(t, "snapbuild run --network private", r.ok("run", "--network", "private", "privnet", "sh", "-c", privateProbe(port)).stdout, private...)
	checkProbe(t, "snapbuild run (host network)", r.ok("run", "privnet", "sh", "-c", privateProbe(port)).stdout,
		"gateway=fail", "loopback=host-ok")
	if left := newSlirps(before); len(left) > 0 {
		t.Errorf("slirp4netns left running after snapbuild run: pids %v", left)
	}
}

func TestNetworkPrivateRoot(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	testNetworkPrivate(t, runner{t: t, root: rootDir}, t.TempDir())
}

func TestNetworkPrivateRootless(t *testing.T) {
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	u := ensureTestUser(t)
	home := userDir(t, u)
	testNetworkPrivate(t, runner{t: t, user: u.Username, root: filepath.Join(home, "store")}, home)
}

// TestNetworkPrivateKilled: SIGKILL of snapbuild while a --network private
// step runs takes the step's slirp4netns with it.
func TestNetworkPrivateKilled(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "slirp4netns")
	requireMirror(t)
	r := runner{t: t, root: rootDir}
	marker := "sleep 263.5"
	recipe := writeRecipe(t, t.TempDir(), "privkill.yaml", `
- debian_slim: {}
- run_commands: ["`+marker+`"]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := r.cmd(ctx, "build", recipe, "--network", "private", "--progress", "plain")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
		}
	}()
	// The step's slirp4netns: the one whose target runs the marker.
	slirp := 0
	for deadline := time.Now().Add(5 * time.Minute); slirp == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for pid, target := range slirpProcs() {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", target)); err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), marker) {
				slirp = pid
			}
		}
	}
	if slirp == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("no slirp4netns serving the step was seen")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	gone := func() bool { _, ok := slirpProcs()[slirp]; return !ok }
	for deadline := time.Now().Add(10 * time.Second); !gone() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if !gone() {
		t.Errorf("slirp4netns (pid %d) outlived the killed build", slirp)
	}
	for deadline := time.Now().Add(10 * time.Second); sleeping(marker) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if sleeping(marker) {
		t.Errorf("the step %q outlived the killed build", marker)
	}
}
