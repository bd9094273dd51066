package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFailingStep: a step that exits non-zero fails the build with the step,
// its exit code and its last lines of output, and leaves the store usable.
func TestFailingStep(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	r := runner{t: t, root: rootDir}
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "fail.yaml", `
- debian_slim: {}
- run_commands:
  - echo fine > /ok
  - "echo about to fail; echo boom >&2; exit 7"
`)
	res := r.run("", "build", recipe, "--progress", "plain")
	if res.code == 0 {
		t.Fatalf("build of a failing step succeeded:\n%s", res.stderr)
	}
	for _, want := range []string{
		// Steps count the entries: 1 debian_slim, 2 run_commands (its
		// second RUN fails).
		"#2 [2/2] run_commands([",
		"#2 RUN echo fine > /ok",
		"step 2 (run_commands) failed: RUN echo about to fail; echo boom >&2; exit 7: exit code 7",
		"  | about to fail",
		"  | boom",
		"#2 ERROR",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, tail(res.stderr, 30))
		}
	}
	if m := storeMounts(t, rootDir); len(m) > 0 {
		t.Errorf("mounts left under the store: %v", m)
	}
	if l := leftovers(t, rootDir); len(l) > 0 {
		t.Errorf("temporary files left in the store: %v", l)
	}
	// The step before the failure was cached; the store still builds.
	fixed := writeRecipe(t, dir, "fixed.yaml", `
- debian_slim: {}
- run_commands:
  - echo fine > /ok
  - "echo recovered > /recovered"
`)
	s := r.build(fixed)
	if s.Stats.ContainersStarted != 1 {
		t.Errorf("rebuild after the failure started %d containers, want 1 (the first RUN is cached)", s.Stats.ContainersStarted)
	}
	out := r.ok("run", "fixed", "--", "cat", "/ok", "/recovered")
	if out.stdout != "fine\nrecovered\n" {
		t.Errorf("run: %q", out.stdout)
	}
}

// TestKilledBuild: SIGKILL of snapbuild in the middle of a step leaves no
// mount, no running sandbox, and a store that the next build cleans and uses.
func TestKilledBuild(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	r := runner{t: t, root: rootDir}
	dir := t.TempDir()
	marker := "sleep 271.5"
	recipe := writeRecipe(t, dir, "killed.yaml", `
- debian_slim: {}
- run_commands: ["echo started; `+marker+`"]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := r.cmd(ctx, "build", recipe, "--progress", "plain")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	started := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "#2 started") { // 1 debian_slim, 2 run_commands
			started = true
			break
		}
	}
	if !started {
		cmd.Wait()
		t.Fatal("the step never started")
	}
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	cmd.Wait()

	// The sandboxed process dies with the builder (parent-death signal).
	deadline := time.Now().Add(10 * time.Second)
	for sleeping(marker) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if sleeping(marker) {
		t.Errorf("the step's process %q outlived the killed build", marker)
	}
	if m := storeMounts(t, rootDir); len(m) > 0 {
		t.Errorf("mounts left under the store: %v", m)
	}
	// The next build clears what the killed one left and succeeds.
	ok := writeRecipe(t, dir, "after.yaml", `
- debian_slim: {}
- run_commands: ["echo after > /after"]
`)
	r.build(ok)
	if l := leftovers(t, rootDir); len(l) > 0 {
		t.Errorf("temporary files left in the store after the next build: %v", l)
	}
	if out := r.ok("run", "after", "--", "cat", "/after"); out.stdout != "after\n" {
		t.Errorf("run: %q", out.stdout)
	}
}

// sleeping reports whether a process whose command line contains marker runs.
func sleeping(marker string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), marker) {
			return true
		}
	}
	return false
}

// TestForceBuild: MODAL_FORCE_BUILD, its alias SNAPBUILD_FORCE_BUILD, and
// force_build on one step rebuild instead of using the cache.
func TestForceBuild(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "force.yaml", `
- debian_slim: {}
- run_commands: ["echo one > /one", "echo two > /two"]
`)
	r := runner{t: t, root: rootDir}
	r.build(recipe)
	if s := r.build(recipe); s.Stats.ContainersStarted != 0 {
		t.Fatalf("cached build started %d containers", s.Stats.ContainersStarted)
	}
	for _, env := range []string{"MODAL_FORCE_BUILD=1", "SNAPBUILD_FORCE_BUILD=true"} {
		fr := runner{t: t, root: rootDir, env: []string{env}}
		if s := fr.build(recipe); s.Stats.ContainersStarted != 2 {
			t.Errorf("%s: started %d containers, want 2", env, s.Stats.ContainersStarted)
		}
	}
	if s := (runner{t: t, root: rootDir, env: []string{"MODAL_FORCE_BUILD=0"}}).build(recipe); s.Stats.ContainersStarted != 0 {
		t.Errorf("MODAL_FORCE_BUILD=0 rebuilt (%d containers)", s.Stats.ContainersStarted)
	}
	one := writeRecipe(t, dir, "force-one.yaml", `
- debian_slim: {}
- run_commands: {commands: ["echo one > /one", "echo two > /two"], force_build: true}
- run_commands: ["echo three > /three"]
`)
	r.build(one)
	// The forced layer's steps rerun. They make the same layers again
	// (mtimes are clamped to the epoch), so the dependent step, keyed by its
	// parent's content, stays cached; a rebuild that changed content would
	// cascade, as Modal's new image ID does.
	if s := r.build(one); s.Stats.ContainersStarted != 2 {
		t.Errorf("force_build on one layer: started %d containers, want 2 (its 2 steps; the dependent one is cached)", s.Stats.ContainersStarted)
	}
	cascade := writeRecipe(t, dir, "force-cascade.yaml", `
- debian_slim: {}
- run_commands: {commands: ["date +%s%N > /stamp"], force_build: true}
- run_commands: ["echo three > /three"]
`)
	r.build(cascade)
	if s := r.build(cascade); s.Stats.ContainersStarted != 2 {
		t.Errorf("a forced step with new content: started %d containers, want 2 (it and its dependent)", s.Stats.ContainersStarted)
	}
}

// TestAddLocal copies local files and directories into the image
// (add_local_file / add_local_dir with copy=True) and rebuilds when their
// content changes.
func TestAddLocal(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for p, content := range map[string]string{
		"app/main.py":             "print('hi')\n",
		"app/pkg/util.py":         "X = 1\n",
		"app/__pycache__/x.pyc":   "junk",
		"app/notes.txt":           "notes\n",
		"config/settings.toml":    "a = 1\n",
		"config/secret/token.txt": "s3cret\n",
	} {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "app/main.py"), 0o755); err != nil {
		t.Fatal(err)
	}
	recipe := writeRecipe(t, dir, "local.yaml", `
- debian_slim: {}
- add_local_dir: {local_path: src/app, remote_path: /opt/app, copy: true, ignore: ["**/__pycache__", "*.txt"]}
- add_local_file: {local_path: src/config/settings.toml, remote_path: /etc/myapp/, copy: true}
`)
	r := runner{t: t, root: rootDir}
	r.build(recipe)
	out := r.ok("run", "local", "--", "sh", "-c", "cd /opt/app && find . -type f | sort && stat -c '%a %u' main.py pkg/util.py /etc/myapp/settings.toml && cat /etc/myapp/settings.toml")
	want := "./main.py\n./pkg/util.py\n755 0\n640 0\n640 0\na = 1\n"
	if out.stdout != want {
		t.Errorf("image content:\n%s\nwant:\n%s", out.stdout, want)
	}
	// FROM and the two COPY steps are cached; CMD only sets the config.
	if s := r.build(recipe); s.Stats.Cached != 3 || s.Stats.Steps != 4 {
		t.Errorf("unchanged local files: %+v, want the 3 filesystem steps of 4 cached", s.Stats)
	}
	if err := os.WriteFile(filepath.Join(src, "app/pkg/util.py"), []byte("X = 2\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	r.build(recipe)
	if out := r.ok("run", "local", "--", "cat", "/opt/app/pkg/util.py"); out.stdout != "X = 2\n" {
		t.Errorf("after a change: %q", out.stdout)
	}
	missing := writeRecipe(t, dir, "missing.yaml", `
- debian_slim: {}
- add_local_file: {local_path: nope.txt, remote_path: /x, copy: true}
`)
	res := r.run("", "build", missing)
	if res.code == 0 || !strings.Contains(res.stderr, "local file "+filepath.Join(dir, "nope.txt")+" does not exist") {
		t.Errorf("missing local file: exit %d, stderr:\n%s", res.code, tail(res.stderr, 5))
	}
}

// TestGPUStepWithoutGPU: a step that asks for a GPU on a host without an
// NVIDIA driver fails before starting, with a message that says so.
func TestGPUStepWithoutGPU(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	if _, err := os.Stat("/dev/nvidiactl"); err == nil {
		t.Skip("this host has an NVIDIA GPU; the test is for hosts without one")
	}
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "gpu.yaml", `
- debian_slim: {}
- run_commands: {commands: ["nvidia-smi"], gpu: "a100:2"}
`)
	res := (runner{t: t, root: rootDir}).run("", "build", recipe, "--progress", "json")
	if res.code == 0 || !strings.Contains(res.stderr, `gpu=\"A100:2\": no NVIDIA GPU found`) && !strings.Contains(res.stderr, `gpu="A100:2": no NVIDIA GPU found`) {
		t.Errorf("exit %d, stderr:\n%s", res.code, tail(res.stderr, 5))
	}
	if strings.Contains(res.stdout, `"containersStarted"`) {
		t.Errorf("a summary was printed for a failed build: %s", res.stdout)
	}
}

// TestSecrets: a secret reaches the step's processes and nothing else: not
// the store (layers, records, configs), not the build output.
func TestSecrets(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "grep")
	requireMirror(t)
	dir := t.TempDir()
	const value = "s3cr3t-VALUE-4711"
	if err := os.WriteFile(filepath.Join(dir, "tokens.env"), []byte("FILE_TOKEN="+value+"-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	recipe := writeRecipe(t, dir, "secret.yaml", `
- debian_slim: {}
- run_commands:
    commands:
      - 'printf %s "$TOKEN:$FILE_TOKEN" | sha256sum | cut -c1-64 > /checked && echo "token is $TOKEN"'
    secrets: [{from_dict: {TOKEN: `+value+`}}, {from_dotenv: tokens.env}]
`)
	store := filepath.Join(t.TempDir(), "store")
	r := runner{t: t, root: store}
	res := r.run("", "build", recipe, "--progress", "plain")
	if res.code != 0 {
		t.Fatalf("build: exit %d\n%s", res.code, tail(res.stderr, 20))
	}
	if strings.Contains(res.stderr+res.stdout, value) {
		t.Errorf("the secret value is in the build output:\n%s", res.stderr)
	}
	if !strings.Contains(res.stderr, "token is [secret TOKEN]") {
		t.Errorf("the masked output line is missing:\n%s", tail(res.stderr, 10))
	}
	sum := sha256.Sum256([]byte(value + ":" + value + "-file"))
	if out := r.ok("run", "secret", "cat", "/checked"); out.stdout != hex.EncodeToString(sum[:])+"\n" {
		t.Errorf("the step did not see both secrets: %q", out.stdout)
	}
	out, err := exec.Command("grep", "-r", "-a", "-l", "s3cr3t-VALUE", store).CombinedOutput()
	if err == nil || len(out) > 0 {
		t.Errorf("the secret value is in the store:\n%s", out)
	}
	if out := r.ok("run", "secret", "sh", "-c", "env; cat /proc/1/environ"); strings.Contains(out.stdout, value) {
		t.Errorf("the secret is in the image's environment:\n%s", out.stdout)
	}
}

// TestAddLocalNoCopy: add_local_* with copy=False (Modal's default) adds no
// layer and keeps the image ID; snapbuild run attaches the files as they
// are when the container starts; export writes them as a last layer.
func TestAddLocalNoCopy(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "skopeo", "podman", "runc")
	requireMirror(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src", "pkg"), 0o755)
	os.WriteFile(filepath.Join(dir, "src", "pkg", "mod.py"), []byte("V = 1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src", "skip.pyc"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "conf.toml"), []byte("a = 1\n"), 0o600)
	base := writeRecipe(t, dir, "nocopy-base.yaml", "- debian_slim: {}\n- run_commands: [\"echo base > /base\"]\n")
	mounted := writeRecipe(t, dir, "nocopy.yaml", `
- debian_slim: {}
- run_commands: ["echo base > /base"]
- add_local_dir: {local_path: src, remote_path: /root/src, ignore: ["*.pyc"]}
- add_local_file: {local_path: conf.toml, remote_path: /etc/app/}
`)
	r := runner{t: t, root: rootDir}
	b := r.build(base)
	m := r.build(mounted)
	if m.ID != b.ID || m.Manifest != b.Manifest {
		t.Errorf("copy=False changed the image: %s %s vs %s %s", m.ID, m.Manifest, b.ID, b.Manifest)
	}
	show := []string{"run", "nocopy", "sh", "-c", "find /root/src -type f | sort; cat /root/src/pkg/mod.py; stat -c %a /etc/app/conf.toml"}
	if out := r.ok(show...); out.stdout != "/root/src/pkg/mod.py\nV = 1\n600\n" {
		t.Errorf("run sees:\n%s", out.stdout)
	}
	// The files are read when the container starts: no rebuild needed.
	os.WriteFile(filepath.Join(dir, "src", "pkg", "mod.py"), []byte("V = 2\n"), 0o644)
	if out := r.ok("run", "nocopy", "cat", "/root/src/pkg/mod.py"); out.stdout != "V = 2\n" {
		t.Errorf("after an edit, run sees %q", out.stdout)
	}
	if out := r.run("", "run", "nocopy-base", "test", "-e", "/root/src"); out.code != 1 {
		t.Errorf("the base image (same ID, no mounts) has /root/src (exit %d)", out.code)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	r.ok("export", "nocopy", "oci:"+layout+":nocopy")
	created, entries := layerEntries(t, layout)
	last := entries[len(entries)-1]
	var names []string
	for _, h := range last {
		names = append(names, h.Name)
	}
	if !strings.Contains(created[len(created)-1], "copy=False") || !strings.Contains(strings.Join(names, " "), "root/src/pkg/mod.py") ||
		strings.Contains(strings.Join(names, " "), "skip.pyc") {
		t.Errorf("export's last layer (%s): %q", created[len(created)-1], names)
	}
	out := podmanRun(t, "oci:"+layout+":nocopy", "nocopy", "cat /root/src/pkg/mod.py /etc/app/conf.toml")
	if out != "V = 2\na = 1\n" {
		t.Errorf("podman sees %q", out)
	}
}
