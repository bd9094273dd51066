// Package integration builds real images with the snapbuild binary, as root
// and as an unprivileged user, and checks them with tools snapbuild did not
// write: skopeo, podman (runc) and the kernel's own overlayfs.
//
// The tests need root (to create the unprivileged test user and to run
// podman), mmdebstrap with a reachable Debian mirror, uidmap, skopeo, podman
// and runc; the Dockerfile conformance suite also needs umoci, setcap and
// getcap, xz and Debian's docker.io (dockerd with BuildKit, the ground truth). When one is missing a test skips, except with CI=true, where a
// missing capability is a failure.
//
// SNAPBUILD_BIN names the binary under test; without it the tests build one.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	bin     string // the snapbuild binary, readable and executable by everyone
	binDir  string
	rootDir string // the store shared by the root tests
	// registriesConf blocks blockedRegistries for every snapbuild run.
	registriesConf string
)

const testUser = "snapbuild-it"

// blockedRegistries are registry prefixes no test may contact.
var blockedRegistries = []string{"docker.io", "ghcr.io", "quay.io", "gcr.io", "registry.k8s.io", "public.ecr.aws", "registry.example", "mcr.microsoft.com", "nvcr.io"}

func TestMain(m *testing.M) {
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration setup:", err)
		os.Exit(2)
	}
	if code == 0 {
		code = m.Run()
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if rootDir != "" {
		os.RemoveAll(rootDir)
	}
	os.Exit(code)
}

func setup() (int, error) {
	var err error
	binDir, err = os.MkdirTemp("", "snapbuild-it-bin-")
	if err != nil {
		return 1, err
	}
	if err := os.Chmod(binDir, 0o755); err != nil {
		return 1, err
	}
	bin = filepath.Join(binDir, "snapbuild")
	if src := os.Getenv("SNAPBUILD_BIN"); src != "" {
		data, err := os.ReadFile(src)
		if err != nil {
			return 1, fmt.Errorf("SNAPBUILD_BIN: %w", err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			return 1, err
		}
	} else {
		cmd := exec.Command("go", "build", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper seccomp", "-o", bin, "../cmd/snapbuild")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 1, fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	// No test may reach a registry but the ones it starts on 127.0.0.1:
	// the public ones are blocked for every snapbuild the tests run.
	var conf strings.Builder
	conf.WriteString("# written by the integration tests\n")
	for _, p := range blockedRegistries {
		fmt.Fprintf(&conf, "[[registry]]\nprefix = %q\nblocked = true\n", p)
	}
	registriesConf = filepath.Join(binDir, "registries.conf")
	if err := os.WriteFile(registriesConf, []byte(conf.String()), 0o644); err != nil {
		return 1, err
	}
	os.Setenv("CONTAINERS_REGISTRIES_CONF", registriesConf)
	rootDir, err = os.MkdirTemp("", "snapbuild-it-root-")
	return 0, err
}

// require fails (CI=true) or skips the test when ok is false.
func require(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing capability (CI=true makes this a failure): %s", msg)
	}
	t.Skip("missing capability: " + msg)
}

func have(tool string) bool { _, err := exec.LookPath(tool); return err == nil }

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		require(t, have(tool), "%s not found on PATH (install it: see scripts/deps.sh)", tool)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	require(t, os.Geteuid() == 0, "the test needs root")
}

// requireMirror checks that the Debian mirror debian_slim bootstraps from
// answers.
func requireMirror(t *testing.T) {
	t.Helper()
	mirror := os.Getenv("SNAPBUILD_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	c := http.Client{Timeout: 15 * time.Second}
	resp, err := c.Head(strings.TrimRight(mirror, "/") + "/dists/bookworm/InRelease")
	ok := err == nil && resp.StatusCode == 200
	if resp != nil {
		resp.Body.Close()
	}
	require(t, ok, "Debian mirror %s unreachable: %v", mirror, err)
}

// result is the outcome of one snapbuild invocation.
type result struct {
	code           int
	stdout, stderr string
}

// runner runs snapbuild as root or as the unprivileged test user.
type runner struct {
	t    *testing.T
	user string // "" = the current user
	root string // --root
	env  []string
	dir  string // working directory; "" = the test's
}

func (r runner) cmd(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{bin}, args...)
	full = append(full, "--root", r.root)
	if len(args) > 0 && args[0] == "run" {
		// run takes the command after "--": put --root before it.
		full = append([]string{bin, "run", "--root", r.root}, args[1:]...)
	}
	var cmd *exec.Cmd
	if r.user != "" {
		u, err := user.Lookup(r.user)
		if err != nil {
			r.t.Fatal(err)
		}
		envArgs := append([]string{"env", "-i", "HOME=" + u.HomeDir, "USER=" + r.user, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"CONTAINERS_REGISTRIES_CONF=" + registriesConf}, r.env...)
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", r.user, "--"}, append(envArgs, full...)...)...)
	} else {
		cmd = exec.CommandContext(ctx, full[0], full[1:]...)
		cmd.Env = append(os.Environ(), r.env...)
	}
	cmd.Dir = r.dir
	return cmd
}

// run runs snapbuild and returns its result; stdin may be nil.
func (r runner) run(stdin string, args ...string) result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := r.cmd(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("snapbuild %v: %v", args, err)
	}
	return res
}

// ok runs snapbuild and fails the test unless it exits 0.
func (r runner) ok(args ...string) result {
	r.t.Helper()
	res := r.run("", args...)
	if res.code != 0 {
		r.t.Fatalf("snapbuild %v: exit %d\nstdout:\n%s\nstderr (tail):\n%s", args, res.code, res.stdout, tail(res.stderr, 40))
	}
	return res
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// buildSummary is the last stdout line of `snapbuild build --progress=json`.
type buildSummary struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	ID       string `json:"id"`
	Manifest string `json:"manifest"`
	Stats    struct {
		Steps             int `json:"steps"`
		Cached            int `json:"cached"`
		ContainersStarted int `json:"containersStarted"`
	} `json:"stats"`
	PeakRSSKiB int64 `json:"peakRSSKiB"`
}

// build builds recipe (a file path) with JSON progress and returns the
// summary of the last image.
func (r runner) build(recipe string, extra ...string) buildSummary {
	r.t.Helper()
	res := r.ok(append([]string{"build", recipe, "--progress", "json"}, extra...)...)
	return lastSummary(r.t, res.stdout)
}

func lastSummary(t *testing.T, stdout string) buildSummary {
	t.Helper()
	var s buildSummary
	sc := bufio.NewScanner(strings.NewReader(stdout))
	found := false
	for sc.Scan() {
		if err := json.Unmarshal(sc.Bytes(), &s); err == nil && s.Kind == "image" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no image summary in build output:\n%s", stdout)
	}
	return s
}

// writeRecipe writes a recipe into dir and returns its path.
func writeRecipe(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ensureTestUser creates the unprivileged test user with a subordinate ID
// range, once.
func ensureTestUser(t *testing.T) *user.User {
	t.Helper()
	requireRoot(t)
	requireTools(t, "newuidmap", "newgidmap", "runuser", "useradd")
	if _, err := user.Lookup(testUser); err != nil {
		if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", testUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v\n%s", err, out)
		}
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), "\n"+testUser+":") && !strings.HasPrefix(string(b), testUser+":") {
			flag := "--add-subuids"
			if f == "/etc/subgid" {
				flag = "--add-subgids"
			}
			if out, err := exec.Command("usermod", flag, "300000-365535", testUser).CombinedOutput(); err != nil {
				t.Fatalf("usermod %s: %v\n%s", flag, err, out)
			}
		}
	}
	u, err := user.Lookup(testUser)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// userDir makes a temporary directory owned by u.
func userDir(t *testing.T, u *user.User) string {
	t.Helper()
	d, err := os.MkdirTemp("", "snapbuild-it-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if out, err := exec.Command("chown", u.Uid+":"+u.Gid, d).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	return d
}

// storeMounts lists the mounts of the host's mount namespace that lie under
// dir: a finished or killed build must leave none.
func storeMounts(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// leftovers lists temporary entries left in the store.
func leftovers(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, d := range []string{"snapshots/.tmp", "tmp", "worker/tmp", "worker/run"} {
		ents, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range ents {
			out = append(out, filepath.Join(d, e.Name()))
		}
	}
	blobs, _ := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
	for _, e := range blobs {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			out = append(out, "blobs/sha256/"+e.Name())
		}
	}
	return out
}

// imageInfo is what `snapbuild inspect` prints.
type imageInfo struct {
	ID       string `json:"id"`
	Manifest struct {
		Digest string `json:"digest"`
	} `json:"manifest"`
	Config struct {
		Config struct {
			Cmd []string `json:"Cmd"`
			Env []string `json:"Env"`
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
		History []struct {
			CreatedBy string `json:"created_by"`
		} `json:"history"`
	} `json:"config"`
}

func inspect(t *testing.T, r runner, name string) imageInfo {
	t.Helper()
	var info imageInfo
	if err := json.Unmarshal([]byte(r.ok("inspect", name).stdout), &info); err != nil {
		t.Fatal(err)
	}
	return info
}
