package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// podUID is the user the unprivileged container runs snapbuild as, as a
// Kubernetes pod's runAsUser: no passwd entry, no /etc/subuid entry.
const podUID = "1000:1000"

// podSnapbuild runs script with sh in a podman container shaped like a
// Kubernetes pod under the "restricted" pod security standard: user 1000,
// no capabilities at all (--cap-drop=all), no_new_privs
// (allowPrivilegeEscalation: false), a read-only root filesystem with a
// tmpfs /tmp (readOnlyRootFilesystem: true), the runtime's default seccomp
// profile and masked /proc, empty /etc/subuid and /etc/subgid. The snapbuild
// binary, the base image's OCI layout (/base) and the recipes (/work) are
// bound read-only, the store (/store) is a directory of the host's, as an
// emptyDir. It returns the combined output and whether the script
// succeeded.
func podSnapbuild(t *testing.T, image, base, work, store, script string) (string, bool) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty")
	must(t, os.WriteFile(empty, nil, 0o644))
	args := []string{"--runtime", "runc", "run", "--rm",
		"--user", podUID, "--cap-drop=all", "--security-opt", "no-new-privileges", "--read-only",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
		"-v", bin + ":/usr/local/bin/snapbuild:ro",
		"-v", base + ":/base:ro",
		"-v", work + ":/work:ro",
		"-v", store + ":/store",
		"-v", empty + ":/etc/subuid:ro",
		"-v", empty + ":/etc/subgid:ro",
		"-e", "HOME=/tmp",
		image, "sh", "-c", script}
	out, err := exec.Command("podman", args...).CombinedOutput()
	return string(out), err == nil
}

// TestRootlessInPod builds and runs a recipe of the hello example's shape
// (a debian_slim base given as an OCI layout, for a container with no other
// image source; apt_install, run_commands, env, workdir) inside an
// unprivileged podman container, as a CI runner pod would: user 1000 with
// no capabilities and no subordinate IDs, so snapbuild enters a single-ID
// user namespace (with a warning) and apt runs without its _apt sandbox
// user. A step that needs another ID fails with the one error that names
// the mode and the fix: the hello example itself (a package's postinst
// chgrp), a chown, a USER.
func TestRootlessInPod(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "podman", "runc", "skopeo")
	requireMirror(t)
	r := runner{t: t, root: rootDir}
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o755))

	// The base: Modal's debian_slim, built here as root, written as an OCI
	// layout and loaded into podman as the container's image too (it has
	// the C library snapbuild links).
	r.build(writeRecipe(t, dir, "podbase.yaml", "- debian_slim: {python_version: \"3.11\"}\n"))
	base := filepath.Join(dir, "base")
	r.ok("export", "podbase", "oci:"+base+":base")
	// An image whose USER is not root, made here, for run in the pod.
	r.build(writeRecipe(t, dir, "podnobody.yaml", "- from_registry: \"oci:"+base+":base\"\n- dockerfile_commands: [\"USER nobody\"]\n"))
	r.ok("export", "podnobody", "oci:"+base+":nobody")
	image := "localhost/snapbuild-it/podbase:latest"
	if out, err := exec.Command("skopeo", "copy", "--quiet", "oci:"+base+":base", "containers-storage:"+image).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", image).Run() })
	must(t, exec.Command("chmod", "-R", "a+rX", base).Run())

	// The hello recipe (its base swapped for the layout) needs another
	// ID: git recommends openssh-client, whose postinst gives
	// ssh-agent the group _ssh. The same shape with a package that needs
	// none builds.
	hello, err := os.ReadFile(helloRecipe(t))
	must(t, err)
	helloPod := strings.Replace(string(hello), `- debian_slim: {python_version: "3.11"}`, `- from_registry: "oci:/base:base"`, 1)
	if helloPod == string(hello) {
		t.Fatalf("examples/hello/hello.yaml has no debian_slim line to replace:\n%s", hello)
	}
	work := filepath.Join(dir, "work")
	must(t, os.MkdirAll(work, 0o755))
	writeRecipe(t, work, "hello.yaml", helloPod)
	writeRecipe(t, work, "greet.yaml", `- from_registry: "oci:/base:base"
- apt_install: [hello]
- run_commands: ["hello > /greeting"]
- env: {GREETING: hello}
- workdir: /work
`)
	writeRecipe(t, work, "chown.yaml", "- from_registry: \"oci:/base:base\"\n- run_commands: [\"touch /owned && chown 42:42 /owned\"]\n")
	writeRecipe(t, work, "user.yaml", "- from_registry: \"oci:/base:base\"\n- dockerfile_commands: [\"USER nobody\", \"RUN id\"]\n")
	writeRecipe(t, work, "nobody.yaml", "- from_registry: \"oci:/base:nobody\"\n")
	writeRecipe(t, work, "slim.yaml", "- debian_slim: {python_version: \"3.11\"}\n")
	store := filepath.Join(dir, "store")
	must(t, os.MkdirAll(store, 0o755))
	must(t, exec.Command("chown", podUID, store).Run())

	out, ok := podSnapbuild(t, image, base, work, store, `
grep -E '^(CapEff|NoNewPrivs)' /proc/self/status
snapbuild build /work/greet.yaml --root /store --progress plain &&
snapbuild run --root /store greet -- sh -c 'cat /greeting; echo "$GREETING from $(pwd)"'`)
	if !ok {
		t.Fatalf("build and run in the container failed:\n%s", tail(out, 60))
	}
	for _, want := range []string{
		// The container really is unprivileged.
		"CapEff:\t0000000000000000", "NoNewPrivs:\t1",
		"snapbuild: warning: single-ID mode",
		// The masked /proc refuses a procfs of the step's own.
		"snapbuild: warning: the kernel refused a /proc of the sandbox's own",
		"Hello, world!",
		"hello from /work",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, tail(out, 60))
		}
	}
	// The store, a directory of the host's as an emptyDir is, is left
	// clean: no temporary snapshot, no sandbox state, no apt
	// configuration of single-ID mode.
	if l := leftovers(t, store); len(l) > 0 {
		t.Errorf("temporary files left in the store: %v", l)
	}
	// apt ran as root: no privilege drop to _apt was tried.
	if strings.Contains(out, "setgroups") || strings.Contains(out, "seteuid") {
		t.Errorf("apt tried its sandbox user:\n%s", tail(out, 60))
	}

	for _, c := range []struct{ recipe, what string }{
		{"hello", `the step's "chgrp: changing group of '/usr/bin/ssh-agent': Invalid argument"`},
		{"chown", `the step's "chown: changing ownership of '/owned': Invalid argument"`},
		{"user", "USER nobody (uid 65534, gid 65534)"},
	} {
		out, ok := podSnapbuild(t, image, base, work, store, "snapbuild build /work/"+c.recipe+".yaml --root /store --progress plain")
		if ok {
			t.Errorf("%s: a step needing another ID built in single-ID mode:\n%s", c.recipe, tail(out, 30))
			continue
		}
		if n := strings.Count(out, "snapbuild runs in single-ID mode (no usable subordinate ID range)"); n != 1 {
			t.Errorf("%s: the single-ID error appears %d times, want once:\n%s", c.recipe, n, tail(out, 30))
		}
		for _, want := range []string{c.what, "usermod --add-subuids", "SNAPBUILD_USERNS=auto or subids"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", c.recipe, want, tail(out, 30))
			}
		}
	}

	// run of an image whose USER is not root is refused before it starts,
	// with the same error and none of runc's own log lines.
	if out, ok := podSnapbuild(t, image, base, work, store, "snapbuild build /work/nobody.yaml --root /store --progress plain"); !ok {
		t.Fatalf("a from_registry build of a USER nobody image failed:\n%s", tail(out, 30))
	}
	out, ok = podSnapbuild(t, image, base, work, store, "snapbuild run --root /store nobody -- id")
	if ok {
		t.Errorf("run of a USER nobody image succeeded in single-ID mode:\n%s", tail(out, 30))
	}
	for _, want := range []string{"snapbuild: warning: single-ID mode", "run nobody: USER nobody (uid 65534, gid 65534)", "snapbuild runs in single-ID mode", "usermod --add-subuids"} {
		if !strings.Contains(out, want) {
			t.Errorf("run of a USER nobody image: output lacks %q:\n%s", want, tail(out, 30))
		}
	}
	for _, bad := range []string{"level=", "cannot setgid", "building"} {
		if strings.Contains(out, bad) {
			t.Errorf("run of a USER nobody image: output has %q (runc's log lines or a build's words):\n%s", bad, tail(out, 30))
		}
	}

	// A Debian base cannot be made in single-ID mode: refused before
	// mmdebstrap, naming the ways out.
	out, ok = podSnapbuild(t, image, base, work, store, "snapbuild build /work/slim.yaml --root /store --progress plain")
	if ok {
		t.Errorf("debian_slim built in single-ID mode:\n%s", tail(out, 30))
	}
	for _, want := range []string{"bootstrapping Debian bookworm", "making a Debian base needs subordinate IDs", "--cache-from", "from_registry"} {
		if !strings.Contains(out, want) {
			t.Errorf("debian_slim in single-ID mode: output lacks %q:\n%s", want, tail(out, 30))
		}
	}
	if strings.Contains(out, "mmdebstrap failed") || strings.Contains(out, "needs mmdebstrap") {
		t.Errorf("debian_slim in single-ID mode: mmdebstrap was tried:\n%s", tail(out, 30))
	}
}
