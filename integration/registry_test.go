package integration

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startRegistry runs Debian's docker-registry (distribution 2.8) over plain
// HTTP on 127.0.0.1 with its storage in a temporary directory, and returns
// its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	requireTools(t, "docker-registry")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n  secret: snapbuild-it\n", dir, host)
	cfgFile := filepath.Join(dir, "config.yml")
	os.WriteFile(cfgFile, []byte(cfg), 0o644)
	var log bytes.Buffer
	cmd := exec.Command("docker-registry", "serve", cfgFile)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			return host
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not start: %v\n%s", err, log.String())
		}
	}
}

// TestRegistryRoundTrip: a base with a non-root USER, WORKDIR, ENV and
// ENTRYPOINT is pushed to a real registry; a fresh store builds on it with
// from_registry (as root and rootless), honouring its config; the result is
// pushed, read back by skopeo and run by podman; a docker-archive export is
// loaded by podman; save/load moves a base to another store offline.
func TestRegistryRoundTrip(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "skopeo", "podman", "runc")
	requireMirror(t)
	host := startRegistry(t)
	insecure := "--insecure-registry=" + host
	dir := t.TempDir()
	r := runner{t: t, root: rootDir}
	base := writeRecipe(t, dir, "regbase.yaml", `
- debian_slim: {}
- dockerfile_commands:
    - "RUN mkdir -p /srv/app && chown nobody /srv/app"
    - "ENV BASE_VAR=from-base"
    - "WORKDIR /srv/app"
    - "USER nobody"
    - 'ENTRYPOINT ["/bin/sh", "-c"]'
`)
	r.build(base)
	r.ok("push", "regbase", "docker://"+host+"/team/base:1", insecure)
	out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "--config", "docker://"+host+"/team/base:1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"User": "nobody"`) || !strings.Contains(string(out), "BASE_VAR=from-base") {
		t.Fatalf("skopeo inspect of the pushed base: %v\n%s", err, out)
	}

	// Without the opt-in, plain HTTP is refused with a way out.
	app := writeRecipe(t, dir, "onreg.yaml", `
- from_registry: `+host+`/team/base:1
- run_commands: ["id -u > /srv/app/uid && pwd > /srv/app/wd && echo $BASE_VAR > /srv/app/env"]
`)
	fresh := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	res := fresh.run("", "build", app, "--progress", "plain")
	if res.code == 0 || !strings.Contains(res.stderr, "--insecure-registry") {
		t.Errorf("plain HTTP without opt-in: exit %d\n%s", res.code, tail(res.stderr, 6))
	}
	s := fresh.build(app, insecure)
	// The base's ENTRYPOINT is sh -c: the command is one shell string.
	out2 := fresh.ok("run", "onreg", "--", "cat /srv/app/uid /srv/app/wd /srv/app/env").stdout
	if out2 != "65534\n/srv/app\nfrom-base\n" {
		t.Errorf("the step did not run with the base's USER, WORKDIR and ENV: %q", out2)
	}
	// Cached: the reference is not pulled again (the registry may be gone).
	if again := fresh.build(app); again.ID != s.ID || again.Stats.ContainersStarted != 0 {
		t.Errorf("rebuild: %s (was %s), %d containers", again.ID, s.ID, again.Stats.ContainersStarted)
	}

	// Registry references wherever an image is named: a Dockerfile's FROM
	// and COPY --from pull what the store lacks.
	dockerfile := filepath.Join(dir, "Dockerfile.reg")
	os.WriteFile(dockerfile, []byte("FROM "+host+"/team/base:1\nUSER root\nCOPY --from="+host+"/team/base:1 /etc/os-release /copied-os-release\n"), 0o644)
	viaDockerfile := writeRecipe(t, dir, "viadockerfile.yaml", "- from_dockerfile: {path: Dockerfile.reg}\n")
	other := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	other.build(viaDockerfile, insecure)
	if got := other.ok("run", "viadockerfile", "--", "id -u; head -c 4 /copied-os-release").stdout; got != "0\nPRET" {
		t.Errorf("Dockerfile FROM/COPY --from a registry image: %q", got)
	}

	// Push the result; skopeo reads it back and podman runs it (as the base's user).
	fresh.ok("push", "onreg", "docker://"+host+"/team/app:1", insecure, "--compression", "gzip")
	layout := filepath.Join(t.TempDir(), "layout")
	if out, err := exec.Command("skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+host+"/team/app:1", "oci:"+layout+":app").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	ref := "localhost/snapbuild-it/regapp:latest"
	if out, err := exec.Command("skopeo", "copy", "--quiet", "oci:"+layout+":app", "containers-storage:"+ref).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy to podman: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", ref).Run() })
	got, err := exec.Command("podman", "--runtime", "runc", "run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
		"--network", "none", ref, "id -u; cat /srv/app/wd").CombinedOutput()
	if err != nil || string(got) != "65534\n/srv/app\n" {
		t.Errorf("podman runs the pushed image (entrypoint sh -c) as: %v %q", err, got)
	}
	// Without :REF, a docker-archive is tagged with the image's name.
	untagged := filepath.Join(t.TempDir(), "onreg.tar")
	fresh.ok("export", "onreg", "docker-archive:"+untagged)
	if out, err := exec.Command("tar", "-xOf", untagged, "manifest.json").CombinedOutput(); err != nil || !strings.Contains(string(out), `"RepoTags":["onreg:latest"]`) {
		t.Errorf("docker-archive without :REF: manifest.json %s %v", out, err)
	}
	// A destination without a transport is refused, not pushed to Docker Hub.
	if res := fresh.run("", "export", "onreg", "app.tar"); res.code == 0 || !strings.Contains(res.stderr, "give the destination's transport") {
		t.Errorf("export without a transport: exit %d\n%s", res.code, tail(res.stderr, 4))
	}
	// docker-archive: gzip layers, loadable by podman load.
	archive := filepath.Join(t.TempDir(), "app.tar")
	fresh.ok("export", "onreg", "docker-archive:"+archive+":snapbuild-it/app:1")
	if out, err := exec.Command("podman", "load", "-i", archive).CombinedOutput(); err != nil || !strings.Contains(string(out), "snapbuild-it/app:1") {
		t.Errorf("podman load: %v\n%s", err, out)
	} else {
		exec.Command("podman", "rmi", "-f", "localhost/snapbuild-it/app:1").Run()
	}

	// Air-gapped: save the base from one store, load it into another, and
	// build on it there with from_registry(NAME), with no registry involved.
	saved := filepath.Join(t.TempDir(), "saved")
	r.ok("save", saved, "regbase")
	offline := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	offline.ok("load", saved)
	onSaved := writeRecipe(t, dir, "onsaved.yaml", "- from_registry: regbase\n- dockerfile_commands: [\"USER root\", \"RUN echo offline > /offline\"]\n")
	offline.build(onSaved)
	if got := offline.ok("run", "onsaved", "--", "cat /offline").stdout; got != "offline\n" {
		t.Errorf("built on a loaded base: %q", got)
	}

	// debian_slim through a Docker Hub mirror (an offline site's): the
	// python image comes from the mirror and Modal's commands complete it;
	// no Debian bootstrap. Our own debian_slim stands in for Docker Hub's.
	py := writeRecipe(t, dir, "pybase.yaml", "- debian_slim: {}\n")
	r.build(py)
	r.ok("push", "pybase", "docker://"+host+"/library/python:3.11.12-slim-bookworm", insecure)
	conf := filepath.Join(dir, "registries.conf")
	os.WriteFile(conf, []byte("[[registry]]\nprefix = \"docker.io\"\n[[registry.mirror]]\nlocation = \""+host+"\"\ninsecure = true\n"), 0o644)
	slim := writeRecipe(t, dir, "slimmirror.yaml", "- debian_slim: {}\n- run_commands: [\"gcc --version | head -n 1 > /gcc-version\"]\n")
	mirrored := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	res = mirrored.run("", "build", slim, "--progress", "plain", "--registries-conf", conf)
	if res.code != 0 || !strings.Contains(res.stderr, "pulling docker.io/library/python:3.11.12-slim-bookworm") || strings.Contains(res.stderr, "mmdebstrap") {
		t.Errorf("debian_slim through a mirror: exit %d\n%s", res.code, tail(res.stderr, 15))
	} else {
		if got := mirrored.ok("run", "slimmirror", "--", "cat", "/gcc-version").stdout; !strings.HasPrefix(got, "gcc") {
			t.Errorf("/gcc-version: %q", got)
		}
		if h := strings.Join(func() []string {
			var s []string
			for _, e := range inspect(t, mirrored, "slimmirror").Config.History {
				s = append(s, e.CreatedBy)
			}
			return s
		}(), "\n"); !strings.Contains(h, "RUN apt-get install -y gcc gfortran build-essential") {
			t.Errorf("history lacks Modal's debian_slim commands:\n%s", h)
		}
	}
	// A series Debian does not ship comes through the mirror too: with no
	// python-build-standalone archive in the store, the mirror's image is
	// the only way, decided at build time.
	r.ok("push", "pybase", "docker://"+host+"/library/python:3.12.10-slim-bookworm", insecure)
	slim312 := writeRecipe(t, dir, "slim312mirror.yaml", "- debian_slim: {python_version: \"3.12\"}\n")
	res = mirrored.run("", "build", slim312, "--progress", "plain", "--registries-conf", conf)
	if res.code != 0 || !strings.Contains(res.stderr, "pulling docker.io/library/python:3.12.10-slim-bookworm") || strings.Contains(res.stderr, "mmdebstrap") {
		t.Errorf("debian_slim 3.12 through a mirror: exit %d\n%s", res.code, tail(res.stderr, 15))
	}

	// With the mirror, a Dockerfile's FROM python:3.11-slim-bookworm is
	// pulled too, not bootstrapped.
	r.ok("push", "pybase", "docker://"+host+"/library/python:3.11-slim-bookworm", insecure)
	os.WriteFile(filepath.Join(dir, "Dockerfile.py"), []byte("FROM python:3.11-slim-bookworm\nRUN echo mirrored > /mirrored\n"), 0o644)
	pyDockerfile := writeRecipe(t, dir, "pydockerfile.yaml", "- from_dockerfile: {path: Dockerfile.py}\n")
	res = mirrored.run("", "build", pyDockerfile, "--progress", "plain", "--registries-conf", conf)
	if res.code != 0 || !strings.Contains(res.stderr, "pulling python:3.11-slim-bookworm") || strings.Contains(res.stderr, "CACHED FROM python") {
		t.Errorf("Dockerfile FROM python through a mirror: exit %d\n%s", res.code, tail(res.stderr, 15))
	}

	// Rootless: the same from_registry build as an unprivileged user.
	u := ensureTestUser(t)
	home := userDir(t, u)
	rl := runner{t: t, user: u.Username, root: filepath.Join(home, "store")}
	userApp := filepath.Join(home, "onreg.yaml")
	os.WriteFile(userApp, []byte(mustRead(t, app)), 0o644)
	rl.build(userApp, insecure)
	if got := rl.ok("run", "onreg", "--", "cat /srv/app/uid").stdout; got != "65534\n" {
		t.Errorf("rootless from_registry: %q", got)
	}
	// ... and its push and docker-archive export, read back by skopeo.
	rl.ok("push", "onreg", "docker://"+host+"/team/rootless:1", insecure)
	rl.ok("export", "onreg", "docker-archive:"+filepath.Join(home, "onreg.tar")+":rootless:1")
	for _, src := range []string{"docker://" + host + "/team/rootless:1", "docker-archive:" + filepath.Join(home, "onreg.tar")} {
		out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "--config", src).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"User": "nobody"`) {
			t.Errorf("skopeo inspect %s: %v\n%s", src, err, out)
		}
	}
}
