// Package scripts_test tests scripts/deps.sh, scripts/go and scripts/lib.sh
// with fake apt-get, apt-cache, dpkg-query and go commands: nothing is
// installed and nothing is fetched.
package scripts_test

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// want is go.mod's go line, read the way the scripts read it.
func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go line")
	return ""
}

// lib runs a shell snippet after sourcing lib.sh.
func lib(t *testing.T, env []string, snippet string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", ". ./lib.sh && "+snippet)
	cmd.Env = append(os.Environ(), append([]string{"snapbuild_dir=" + absParent(t)}, env...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func absParent(t *testing.T) string {
	d, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestVersionGE(t *testing.T) {
	for _, c := range []struct {
		have, want string
		ok         bool
	}{
		{"1.26.7", "1.26.8", false},
		{"1.26.8", "1.26.8", true},
		{"1.26.9", "1.26.8", true},
		{"1.26.10", "1.26.8", true}, // not a string comparison
		{"1.27.0", "1.26.8", true},
		{"1.27", "1.26.8", true},
		{"1.26", "1.26.8", false},
		{"1.3", "1.26.8", false}, // the old `1.[3-9]*` glob took it
		{"1.100", "1.26.8", true},
		{"1.19.8", "1.26.8", false},
		{"2.0", "1.26.8", true},
		{"1.27rc1", "1.26.8", true},
		{"1.26rc2", "1.26.8", false},
		{"go1.26.8", "1.26.8", true},
		{"1.23.4", "1.21", true},
		{"1.20.14", "1.21", false},
	} {
		_, err := lib(t, nil, fmt.Sprintf("version_ge %s %s", c.have, c.want))
		if got := err == nil; got != c.ok {
			t.Errorf("version_ge %s %s = %v, want %v (%v)", c.have, c.want, got, c.ok, err)
		}
	}
}

func TestGoModVersion(t *testing.T) {
	got, err := lib(t, nil, "gomod_go")
	if want := goModVersion(t); err != nil || got != want {
		t.Errorf("gomod_go = %q, %v; want %q", got, err, want)
	}
	dir := t.TempDir()
	mod := filepath.Join(dir, "go.mod")
	os.WriteFile(mod, []byte("module x\n\ngo 1.27.3 // comment\n\ntoolchain go1.28.0\n"), 0o644)
	if got, err := lib(t, []string{"SNAPBUILD_GOMOD=" + mod}, "gomod_go"); err != nil || got != "1.27.3" {
		t.Errorf("gomod_go of %s = %q, %v; want 1.27.3", mod, got, err)
	}
}

func TestFreeSubIDStart(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, subuid, subgid string
		want                 string
	}{
		{"no files", "", "", "131072"},
		// Debian's useradd gives the first user 100000-165535: the
		// instruction the README had gave a second user the same range.
		{"one user", "alice:100000:65536\n", "alice:100000:65536\n", "196608"},
		{"gid file higher", "alice:100000:65536\n", "alice:100000:65536\nbob:165536:65536\n", "262144"},
		{"aligned end", "alice:131072:65536\n", "", "196608"},
		{"comments and junk", "# x\nalice:100000:65536\nbroken\n", "", "196608"},
		{"large", "svc:4000000000:65536\n", "", "4000120832"},
	} {
		uid, gid := filepath.Join(dir, c.name+".uid"), filepath.Join(dir, c.name+".gid")
		if c.subuid != "" {
			os.WriteFile(uid, []byte(c.subuid), 0o644)
		}
		if c.subgid != "" {
			os.WriteFile(gid, []byte(c.subgid), 0o644)
		}
		got, err := lib(t, nil, fmt.Sprintf("free_subid_start '%s' '%s'", uid, gid))
		if err != nil || got != c.want {
			t.Errorf("%s: free_subid_start = %q, %v; want %s", c.name, got, err, c.want)
		}
	}
}

// fakeEnv is a PATH with the tools deps.sh uses but no go, fake apt-get,
// apt-cache, dpkg-query and sudo that record their arguments in log, and
// an empty APT directory. apt-get install golang-1.N-go "installs" a fake
// Go 1.N.4 under root/usr/lib/go-1.N/bin, where SNAPBUILD_GO_SEARCH looks.
type fakeEnv struct {
	root, bin, log string
	env            []string
}

func newFakeEnv(t *testing.T) *fakeEnv {
	t.Helper()
	f := &fakeEnv{root: t.TempDir()}
	f.bin = filepath.Join(f.root, "bin")
	f.log = filepath.Join(f.root, "log")
	os.MkdirAll(f.bin, 0o755)
	os.MkdirAll(filepath.Join(f.root, "apt", "sources.list.d"), 0o755)
	for _, tool := range []string{"sh", "sed", "awk", "grep", "cat", "tee", "tr", "head", "dirname", "id", "env", "mkdir", "ln", "chmod"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(f.bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	script := func(name, body string) {
		if err := os.WriteFile(filepath.Join(f.bin, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script("dpkg-query", "echo 'install ok installed'\n")
	script("sudo", `[ "$1" = -n ] && exit 0; exec "$@"`+"\n")
	script("apt-cache", `echo "apt-cache $*" >> "$FAKE_LOG"
[ "$1" = pkgnames ] && printf '%s\n' golang-1.19 golang-1.19-go golang-1.21-go golang-1.22-go golang-1.23 golang-1.23-go golang-1.23-src golang-1.9-go
`)
	script("apt-get", `echo "apt-get $*" >> "$FAKE_LOG"
for a; do
	case $a in golang-1.*-go)
		v=${a#golang-}; v=${v%-go}
		d=$FAKE_ROOT/usr/lib/go-$v/bin
		mkdir -p "$d"
		printf '#!/bin/sh\nif [ "$1 $2" = "env GOVERSION" ]; then echo go%s.4; exit; fi\necho "fake go%s.4 GOTOOLCHAIN=$GOTOOLCHAIN $*"\n' "$v" "$v" > "$d/go"
		chmod +x "$d/go"
	esac
done
`)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	ids := filepath.Join(f.root, "subid")
	os.WriteFile(ids, []byte(u.Username+":100000:65536\n"), 0o644)
	osr := filepath.Join(f.root, "os-release")
	os.WriteFile(osr, []byte("ID=debian\nVERSION_CODENAME=bookworm\n"), 0o644)
	f.env = []string{
		"PATH=" + f.bin, "HOME=" + f.root, "FAKE_LOG=" + f.log, "FAKE_ROOT=" + f.root,
		"SNAPBUILD_GO_SEARCH=" + f.root + "/usr/lib/go-1.*/bin/go",
		"SNAPBUILD_APT_DIR=" + filepath.Join(f.root, "apt"),
		"SNAPBUILD_OS_RELEASE=" + osr,
		"SNAPBUILD_SUBUID=" + ids, "SNAPBUILD_SUBGID=" + ids,
	}
	return f
}

func (f *fakeEnv) deps(t *testing.T) (string, error) {
	t.Helper()
	cmd := exec.Command("./deps.sh")
	cmd.Env = f.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (f *fakeEnv) logged(t *testing.T) string {
	b, err := os.ReadFile(f.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// TestDepsInstallsBackportedGo runs deps.sh where there is no Go: it adds
// bookworm-backports, installs the newest golang-1.N-go there, and runs
// that Go with GOTOOLCHAIN set so that it fetches go.mod's version.
func TestDepsInstallsBackportedGo(t *testing.T) {
	f := newFakeEnv(t)
	out, err := f.deps(t)
	if err != nil {
		t.Fatalf("deps.sh: %v\n%s", err, out)
	}
	log := f.logged(t)
	if !strings.Contains(log, "apt-get install -y -qq -t bookworm-backports golang-1.23-go\n") {
		t.Errorf("deps.sh did not install golang-1.23-go from bookworm-backports; commands:\n%s\noutput:\n%s", log, out)
	}
	if strings.Index(log, "apt-get update") > strings.Index(log, "apt-cache pkgnames") {
		t.Errorf("apt-cache ran before apt-get update:\n%s", log)
	}
	src, err := os.ReadFile(filepath.Join(f.root, "apt", "sources.list.d", "bookworm-backports.list"))
	if err != nil || string(src) != "deb http://deb.debian.org/debian bookworm-backports main\n" {
		t.Errorf("backports source = %q, %v", src, err)
	}
	want := goModVersion(t)
	if !strings.Contains(out, "fake go1.23.4 GOTOOLCHAIN=go"+want+"+auto version") {
		t.Errorf("deps.sh did not run the installed Go with GOTOOLCHAIN=go%s+auto; output:\n%s", want, out)
	}

	// Now a Go that can fetch the toolchain is there: nothing is installed
	// again, and scripts/go runs it the same way.
	os.Remove(f.log)
	if out, err := f.deps(t); err != nil || strings.Contains(f.logged(t), "apt-get") {
		t.Errorf("second deps.sh: %v; commands:\n%s\noutput:\n%s", err, f.logged(t), out)
	}
	cmd := exec.Command("./go", "build", "./...")
	cmd.Env = f.env
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "fake go1.23.4 GOTOOLCHAIN=go"+want+"+auto build ./...") {
		t.Errorf("scripts/go build: %v\n%s", err, b)
	}
}

// TestDepsKeepsBackportsSource: a suite already listed (as in a deb822
// .sources file) is not added again.
func TestDepsKeepsBackportsSource(t *testing.T) {
	f := newFakeEnv(t)
	srcs := filepath.Join(f.root, "apt", "sources.list.d", "debian.sources")
	os.WriteFile(srcs, []byte("Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates bookworm-backports\nComponents: main\n"), 0o644)
	if out, err := f.deps(t); err != nil {
		t.Fatalf("deps.sh: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(f.root, "apt", "sources.list.d", "bookworm-backports.list")); err == nil {
		t.Error("bookworm-backports.list written although debian.sources lists the suite")
	}
}

// TestDepsGoNewEnough: a Go at go.mod's version (here on PATH) is used as it
// is, and an older one that cannot switch (1.19, Debian 12's own) is not.
func TestDepsGoNewEnough(t *testing.T) {
	want := goModVersion(t)
	for _, c := range []struct {
		version string
		install bool
	}{
		{want, false},
		{"1.19.8", true},
	} {
		f := newFakeEnv(t)
		body := fmt.Sprintf("#!/bin/sh\nif [ \"$1 $2\" = \"env GOVERSION\" ]; then echo go%s; exit; fi\necho \"path go GOTOOLCHAIN=${GOTOOLCHAIN:-unset} $*\"\n", c.version)
		os.WriteFile(filepath.Join(f.bin, "go"), []byte(body), 0o755)
		out, err := f.deps(t)
		if err != nil {
			t.Fatalf("Go %s: deps.sh: %v\n%s", c.version, err, out)
		}
		if got := strings.Contains(f.logged(t), "apt-get install"); got != c.install {
			t.Errorf("Go %s on PATH: installed = %v, want %v; commands:\n%s", c.version, got, c.install, f.logged(t))
		}
		cmd := exec.Command("./go", "vet")
		cmd.Env = f.env
		b, _ := cmd.CombinedOutput()
		if !c.install && !strings.Contains(string(b), "path go GOTOOLCHAIN=unset vet") {
			t.Errorf("Go %s on PATH: scripts/go vet ran %q", c.version, b)
		}
	}
}

// TestSubIDCommand: a user without a range gets a usermod line with a range
// past every range in use, only for the file that lacks one.
func TestSubIDCommand(t *testing.T) {
	dir := t.TempDir()
	uid, gid := filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")
	os.WriteFile(uid, []byte("alice:100000:65536\n"), 0o644)
	os.WriteFile(gid, []byte("alice:100000:65536\nbob:165536:65536\n"), 0o644)
	for _, c := range []struct{ user, want string }{
		{"alice", ""},
		{"bob", "usermod --add-subuids 262144-327679 bob"},
		{"carol", "usermod --add-subuids 262144-327679 --add-subgids 262144-327679 carol"},
	} {
		got, err := lib(t, nil, fmt.Sprintf("subid_command %s '%s' '%s'", c.user, uid, gid))
		if err != nil || got != c.want {
			t.Errorf("subid_command %s = %q, %v; want %q", c.user, got, err, c.want)
		}
	}
}
