package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildkitTools returns the directory of buildkitd and buildctl at go.mod's
// BuildKit version, built by scripts/buildkit.sh (once: into a cache
// directory kept between runs).
func buildkitTools(t *testing.T) string {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("../scripts/buildkit.sh")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require(t, err == nil, "scripts/buildkit.sh could not build buildkitd and buildctl: %v\n%s", err, stderr.String())
	dir := strings.TrimSpace(string(out))
	t.Logf("buildkitd and buildctl in %s (%.1fs)", dir, time.Since(start).Seconds())
	return dir
}

// startBuildkitd starts buildkitd as root with its runc worker, its state
// under state, on a private socket, and returns the socket's address
// (unix://PATH). Steps use the host's network (apt_install reaches the
// Debian mirror); bases come from snapbuild's store, so buildkitd pulls
// nothing.
func startBuildkitd(t *testing.T, tools, state string) string {
	t.Helper()
	runc, err := exec.LookPath("runc")
	require(t, err == nil, "runc not found on PATH (install it: see scripts/deps.sh)")
	sock := filepath.Join(t.TempDir(), "buildkitd.sock")
	addr := "unix://" + sock
	cfg := filepath.Join(t.TempDir(), "buildkitd.toml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil { // not /etc/buildkit's
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(filepath.Join(tools, "buildkitd"), "--config", cfg, "--root", state, "--addr", addr,
		"--oci-worker=true", "--containerd-worker=false", "--oci-worker-binary", runc, "--oci-worker-net", "host")
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("buildkitd's log (tail):\n%s", tail(log.String(), 30))
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := exec.Command(filepath.Join(tools, "buildctl"), "--addr", addr, "debug", "workers").CombinedOutput()
		if err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("buildkitd did not answer: %v\n%s\nbuildkitd:\n%s", err, out, log.String())
		}
	}
}

// TestBuildKitBuilder builds through --builder on a buildkitd the test
// starts: the hello recipe (its Debian base bootstrapped here, given to
// buildkitd from the store) and a multi-stage Dockerfile FROM it with a
// secret, each imported into the store, exported and run by podman; a
// second build of the recipe is cached by buildkitd (no container); the
// secret is nowhere under buildkitd's state directory, the store or the
// output.
func TestBuildKitBuilder(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "skopeo", "podman", "runc", "grep")
	requireMirror(t)
	tools := buildkitTools(t)
	state := filepath.Join(t.TempDir(), "buildkitd")
	addr := startBuildkitd(t, tools, state)
	builder := "buildkit://" + addr

	store := filepath.Join(t.TempDir(), "store")
	r := runner{t: t, root: store}
	start := time.Now()
	sum := r.build(helloRecipe(t), "--builder", builder)
	t.Logf("hello through buildkitd: %.1fs, %+v", time.Since(start).Seconds(), sum.Stats)
	if sum.Stats.ContainersStarted == 0 {
		t.Errorf("the first build through buildkitd started no container: %+v", sum.Stats)
	}
	layout := t.TempDir()
	r.ok("export", "hello", "oci:"+layout+":hello")
	out := podmanRun(t, "oci:"+layout+":hello", "bk-hello", `cat /git-version; echo "$GREETING from $(pwd)"`)
	if !strings.HasPrefix(out, "git version 2.") || !strings.HasSuffix(out, "hello from /work\n") {
		t.Errorf("podman run of hello built by buildkitd = %q, want git's version and \"hello from /work\"", out)
	}

	start = time.Now()
	again := r.build(helloRecipe(t), "--builder", builder)
	t.Logf("hello again through buildkitd: %.1fs, %+v", time.Since(start).Seconds(), again.Stats)
	if again.Stats.ContainersStarted != 0 || again.ID != sum.ID {
		t.Errorf("second build: %d containers, ID %s; want 0 containers (buildkitd's cache) and ID %s", again.Stats.ContainersStarted, again.ID, sum.ID)
	}

	const value = "bk-s3cr3t-VALUE-9817"
	dir := t.TempDir()
	df := `FROM hello AS build
RUN --mount=type=secret,id=token,env=TOKEN printf %s "$TOKEN" | sha256sum | cut -c1-64 > /token.sha && echo built by buildkitd > /made
FROM hello
COPY --from=build /token.sha /made /out/
`
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	rs := r
	rs.env = []string{"BK_TOKEN=" + value}
	host := startRegistry(t)
	pushed := "docker://" + host + "/bk/multi:1"
	res := rs.ok("build", "--builder", builder, "-t", "multi", "--secret", "id=token,env=BK_TOKEN", "--progress", "plain",
		"--push", pushed, "--insecure-registry="+host, dir)
	if strings.Contains(res.stdout+res.stderr, value) {
		t.Errorf("the secret value is in the build output:\n%s", tail(res.stderr, 30))
	}
	r.ok("export", "multi", "oci:"+layout+":multi")
	// --push sent the image built: the registry's has the diff IDs of the
	// one in the store (its layers gzip, as snapbuild push sends them).
	diffIDs := func(ref string, args ...string) []string {
		out, err := exec.Command("skopeo", append(append([]string{"inspect", "--config"}, args...), ref)...).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect --config %s: %v\n%s", ref, err, out)
		}
		var cfg struct {
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatalf("config of %s: %v\n%s", ref, err, out)
		}
		return cfg.RootFS.DiffIDs
	}
	if reg, local := diffIDs(pushed, "--tls-verify=false"), diffIDs("oci:"+layout+":multi"); !slices.Equal(reg, local) || len(reg) == 0 || !strings.Contains(res.stderr, "pushed "+pushed) {
		t.Errorf("pushed image's diff IDs %q, want the store's %q (stderr: %s)", reg, local, tail(res.stderr, 3))
	}
	h := sha256.Sum256([]byte(value))
	out = podmanRun(t, "oci:"+layout+":multi", "bk-multi", "cat /out/made /out/token.sha; cat /git-version")
	if want := "built by buildkitd\n" + hex.EncodeToString(h[:]) + "\n"; !strings.HasPrefix(out, want) || !strings.Contains(out, "git version 2.") {
		t.Errorf("podman run of the multi-stage image = %q, want it to start with %q and hold git's version", out, want)
	}
	for _, d := range []string{state, store} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		// -D skip: no FIFO or device of a snapshot is read.
		found, err := exec.CommandContext(ctx, "grep", "-r", "-a", "-l", "-s", "-D", "skip", "-F", value, d).Output()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("grep -r for the secret value under %s: %v; found in:\n%s", d, err, found)
		}
	}
}
