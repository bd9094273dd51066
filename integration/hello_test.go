package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// helloRecipe is examples/hello/hello.yaml.
func helloRecipe(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../examples/hello/hello.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// podmanRun copies the OCI layout image src into podman's storage and runs
// script in it with podman and runc, returning the output.
func podmanRun(t *testing.T, src, name, script string) string {
	t.Helper()
	ref := "localhost/snapbuild-it/" + name + ":latest"
	if out, err := exec.Command("skopeo", "copy", "--quiet", src, "containers-storage:"+ref).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy %s: %v\n%s", src, err, out)
	}
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", ref).Run() })
	out, err := exec.Command("podman", "--runtime", "runc", "run", "--rm",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
		"--network", "none", ref, "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("podman run %s: %v\n%s", ref, err, out)
	}
	return string(out)
}

// checkHelloExport exports the hello image to an OCI layout, checks it with
// skopeo, and runs it with podman.
func checkHelloExport(t *testing.T, r runner, exportDir, podmanName string) {
	t.Helper()
	dest := "oci:" + exportDir + ":hello"
	r.ok("export", "hello", dest)

	raw, err := exec.Command("skopeo", "inspect", "--raw", dest).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --raw: %v", err)
	}
	var m struct {
		MediaType string                       `json:"mediaType"`
		Config    struct{ MediaType string }   `json:"config"`
		Layers    []struct{ MediaType string } `json:"layers"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("manifest: %v\n%s", err, raw)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("manifest media types: %+v", m)
	}
	// base, apt-get update, apt-get install, git --version, WORKDIR /work
	if len(m.Layers) != 5 {
		t.Errorf("got %d layers, want 5 (base, apt-get update, apt-get install, run, workdir)", len(m.Layers))
	}
	for i, l := range m.Layers {
		if l.MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
			t.Errorf("layer %d media type %q, want zstd", i, l.MediaType)
		}
	}
	info, err := exec.Command("skopeo", "inspect", dest).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var cfg struct {
		Env          []string
		Architecture string
		Os           string
	}
	if err := json.Unmarshal(info, &cfg); err != nil {
		t.Fatal(err)
	}
	if !contains(cfg.Env, "GREETING=hello") || cfg.Os != "linux" {
		t.Errorf("skopeo inspect: env %q os %q", cfg.Env, cfg.Os)
	}

	out := podmanRun(t, dest, podmanName, `cat /git-version; echo "greeting=$GREETING"; echo "pwd=$(pwd)"; `+
		`stat -c 'shadow=%u:%g' /etc/shadow; stat -c 'gitver=%u:%g:%a' /git-version; `+
		`python --version; test ! -e /etc/resolv.conf.snapbuild; sleep 0; cat /proc/1/cmdline | tr '\0' ' '; echo; `+
		`python -c 'import sys; print("py-ok", sys.version_info[:2])'`)
	for _, want := range []string{"git version 2.", "greeting=hello", "pwd=/work", "shadow=0:42", "gitver=0:0:644", "Python 3.11", "py-ok (3, 11)"} {
		if !strings.Contains(out, want) {
			t.Errorf("podman run output lacks %q:\n%s", want, out)
		}
	}
}

// checkOwner asserts that path belongs to host uid.
func checkOwner(t *testing.T, path, uid string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(st.Sys().(*syscall.Stat_t).Uid); got != uid {
		t.Errorf("%s is owned by uid %s, want %s", path, got, uid)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkCachedRebuild rebuilds and asserts that no container was started and
// the image is the same.
func checkCachedRebuild(t *testing.T, r runner, first buildSummary) {
	t.Helper()
	again := r.build(helloRecipe(t))
	if again.Stats.ContainersStarted != 0 {
		t.Errorf("cached rebuild started %d containers, want 0", again.Stats.ContainersStarted)
	}
	if again.Manifest != first.Manifest || again.ID != first.ID {
		t.Errorf("cached rebuild gave %s %s, want %s %s", again.ID, again.Manifest, first.ID, first.Manifest)
	}
	if again.Stats.Cached < 5 {
		t.Errorf("cached rebuild: %d steps cached, want >= 5 (%+v)", again.Stats.Cached, again.Stats)
	}
}

// checkRun runs commands in the built image with `snapbuild run`.
func checkRun(t *testing.T, r runner) {
	t.Helper()
	res := r.ok("run", "hello", "--", "sh", "-c", `cat /git-version; echo "$GREETING from $(pwd)"; id -u`)
	if !strings.Contains(res.stdout, "git version 2.") || !strings.Contains(res.stdout, "hello from /work") || !strings.Contains(res.stdout, "\n0\n") {
		t.Errorf("snapbuild run output:\n%s", res.stdout)
	}
	// With -i, stdin passes through (as docker run -i); the exit status always does.
	res = r.run("ping\n", "run", "-i", "hello", "--", "sh", "-c", "read x; echo got-$x; exit 7")
	if res.code != 7 || !strings.Contains(res.stdout, "got-ping") {
		t.Errorf("snapbuild run: exit %d, stdout %q, want exit 7 and got-ping; stderr:\n%s", res.code, res.stdout, res.stderr)
	}
	// Nothing a run writes is kept.
	r.ok("run", "hello", "--", "sh", "-c", "echo x > /scratch")
	if res := r.run("", "run", "hello", "--", "test", "-e", "/scratch"); res.code != 1 {
		t.Errorf("a file written by an earlier run is visible (exit %d)", res.code)
	}
}

func TestHelloRoot(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "skopeo", "podman", "runc")
	requireMirror(t)
	// An empty store of its own: other tests share steps with hello's
	// (apt-get update on the same base), which would be cached here.
	r := runner{t: t, root: filepath.Join(t.TempDir(), "store")}

	first := r.build(helloRecipe(t))
	if first.Stats.ContainersStarted != 3 {
		t.Errorf("first build started %d containers, want 3 (apt-get update, apt-get install, git --version)", first.Stats.ContainersStarted)
	}
	if !strings.HasPrefix(first.ID, "im-") || len(first.ID) != 25 {
		t.Errorf("image ID %q is not im- + 22 characters", first.ID)
	}
	checkCachedRebuild(t, r, first)
	checkRun(t, r)
	checkHelloExport(t, r, filepath.Join(t.TempDir(), "layout"), "hello-root")
	if m := storeMounts(t, r.root); len(m) > 0 {
		t.Errorf("mounts left under the store: %v", m)
	}
	if l := leftovers(t, r.root); len(l) > 0 {
		t.Errorf("temporary files left in the store: %v", l)
	}
}

func TestHelloRootless(t *testing.T) {
	requireTools(t, "mmdebstrap", "skopeo", "podman", "runc")
	requireMirror(t)
	u := ensureTestUser(t)
	home := userDir(t, u)
	r := runner{t: t, user: u.Username, root: filepath.Join(home, "store")}

	first := r.build(helloRecipe(t))
	if first.Stats.ContainersStarted != 3 {
		t.Errorf("first build started %d containers, want 3", first.Stats.ContainersStarted)
	}
	// The store belongs to the user, not to root or a subordinate ID.
	checkOwner(t, filepath.Join(home, "store", "blobs"), u.Uid)
	checkCachedRebuild(t, r, first)
	checkRun(t, r)
	checkHelloExport(t, r, filepath.Join(home, "layout"), "hello-rootless")
	if l := leftovers(t, r.root); len(l) > 0 {
		t.Errorf("temporary files left in the store: %v", l)
	}
}
