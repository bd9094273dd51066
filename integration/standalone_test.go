package integration

import (
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// standaloneName is the python-build-standalone tarball debian_slim("3.12")
// (and add_python="3.12") look for: Modal's pin for the series.
const standaloneName = "cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz"

// TestDebianSlimStandalone builds debian_slim("3.12"), a series Debian does
// not ship, from a python-build-standalone archive: Debian bookworm without
// Debian's Python, the archive's tree in /usr/local as in Modal's
// python:3.12-slim-bookworm, PYTHON_VERSION, Modal's FROM line and CMD. The
// cache key follows the archive's content, not its directory; without the
// archive the build fails naming both ways to provide the series.
//
// No CPython 3.12 can be had offline here (the Debian archive has 3.11 in
// bookworm and 3.13 in trixie, which needs a newer glibc), so the archive is
// a stand-in made on the spot in PBS's install_only layout from Debian's
// packages as installed on this Debian 12 host: Debian's python3.11
// interpreter under the name python/bin/python3.12, its standard library in
// python/lib/python3.11 (where that interpreter looks, relative to itself),
// pip from python3-pip-whl's wheel in python/lib/python3.11/dist-packages with
// PBS-style relocatable pip3/pip3.12 scripts, and libexpat.so.1 in
// python/lib (Debian's interpreter links it, PBS's links expat statically;
// the image's ldconfig must make /usr/local/lib visible for it). So `python
// --version` prints the stand-in's real version (3.11.x) while
// PYTHON_VERSION is the archive's name's (3.12.1).
func TestDebianSlimStandalone(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "tar")
	requireMirror(t)
	const interp = "/usr/bin/python3.11"
	wheels, _ := filepath.Glob("/usr/share/python-wheels/pip-*-py3-none-any.whl")
	_, err := os.Stat(interp)
	require(t, err == nil && len(wheels) == 1, "the stand-in needs Debian's %s and one pip wheel in /usr/share/python-wheels (apt-get install python3.11 python3-pip-whl)", interp)
	verOut, err := exec.Command(interp, "-c", "import platform; print(platform.python_version())").Output()
	if err != nil {
		t.Fatal(err)
	}
	pyVersion := strings.TrimSpace(string(verOut))
	pipVersion := strings.SplitN(filepath.Base(wheels[0]), "-", 3)[1]

	dir := t.TempDir()
	pbs := filepath.Join(dir, "pbs")
	makeStandalone(t, filepath.Join(pbs, standaloneName), interp, wheels[0])

	recipe := writeRecipe(t, dir, "slim312.yaml", "- debian_slim: {python_version: \"3.12\"}\n")
	r := runner{t: t, root: rootDir, env: []string{"SNAPBUILD_PYTHON_STANDALONE_DIR=" + pbs}}

	// Without the archive: refused before any step, naming both ways.
	none := runner{t: t, root: rootDir, env: []string{"SNAPBUILD_PYTHON_STANDALONE_DIR=" + filepath.Join(dir, "empty")}}
	res := none.run("", "build", recipe, "-t", "slim312")
	if res.code == 0 || !strings.Contains(res.stderr, standaloneName) || !strings.Contains(res.stderr, "registries.conf") ||
		!strings.Contains(res.stderr, "python:3.12.10-slim-bookworm") || strings.Contains(res.stderr, "mmdebstrap") {
		t.Errorf("without the archive: exit %d\n%s", res.code, tail(res.stderr, 10))
	}

	first := r.build(recipe, "-t", "slim312")
	script := `set -e
echo "which=$(command -v python) $(command -v python3) $(command -v pip) $(command -v pip3)"
python --version; python3 --version; pip --version; pip3 --version
echo "PYTHON_VERSION=$PYTHON_VERSION"
python -c 'import sys, ssl, hashlib; print("prefix=" + sys.prefix)'
if [ -e /usr/bin/python3 ] || dpkg -s python3 >/dev/null 2>&1; then echo "debian python3 present"; fi
gcc --version | head -1; gfortran --version | head -1; make --version | head -1
`
	out := r.ok("run", "--network", "none", "slim312", "--", "sh", "-c", script).stdout
	for _, want := range []string{
		"which=/usr/local/bin/python /usr/local/bin/python3 /usr/local/bin/pip /usr/local/bin/pip3\n",
		"Python " + pyVersion + "\nPython " + pyVersion + "\n",
		"pip " + pipVersion + " from /usr/local/lib/python3.11/dist-packages/pip (python 3.11)\n",
		"PYTHON_VERSION=3.12.1\n", "prefix=/usr/local\n", "gcc (Debian", "GNU Fortran", "GNU Make",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the image lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "debian python3 present") {
		t.Errorf("Debian's python3 is in the image beside the archive's:\n%s", out)
	}

	info := inspect(t, r, "slim312")
	if h := info.Config.History; len(h) != 2 || h[0].CreatedBy != "FROM python:3.12-slim-bookworm" || h[1].CreatedBy != `CMD ["sleep", "172800"]` {
		t.Errorf("history %+v, want Modal's FROM and CMD", h)
	}
	if c := strings.Join(info.Config.Config.Cmd, " "); c != "sleep 172800" {
		t.Errorf("CMD %q", c)
	}
	env := strings.Join(info.Config.Config.Env, "\n")
	if !strings.Contains(env, "PYTHON_VERSION=3.12.1") || !strings.Contains(env, "PATH=/usr/local/sbin:/usr/local/bin:") {
		t.Errorf("env:\n%s", env)
	}

	// The same archive in another directory is the same base: cached, same image.
	moved := filepath.Join(dir, "elsewhere")
	os.MkdirAll(moved, 0o755)
	if err := os.Rename(filepath.Join(pbs, standaloneName), filepath.Join(moved, standaloneName)); err != nil {
		t.Fatal(err)
	}
	r.env = []string{"SNAPBUILD_PYTHON_STANDALONE_DIR=" + moved}
	again := r.build(recipe, "-t", "slim312")
	// (CMD changes only the config: it never counts as cached.)
	if again.ID != first.ID || again.Stats.Cached != 1 || again.Stats.Steps != 2 || first.Stats.Cached != 0 {
		t.Errorf("moved archive: %s (%d/%d cached), want %s with its base cached (first build: %d cached)",
			again.ID, again.Stats.Cached, again.Stats.Steps, first.ID, first.Stats.Cached)
	}
}

// makeStandalone writes a python-build-standalone-shaped install_only
// tarball at file from Debian's interpreter and pip wheel (see
// TestDebianSlimStandalone).
func makeStandalone(t *testing.T, file, interp, pipWheel string) {
	t.Helper()
	stage := t.TempDir()
	py := filepath.Join(stage, "python")
	for _, d := range []string{"bin", "lib/python3.11/dist-packages"} {
		if err := os.MkdirAll(filepath.Join(py, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, interp, filepath.Join(py, "bin/python3.12"), 0o755)
	os.Symlink("python3.12", filepath.Join(py, "bin/python3"))
	expat, err := filepath.EvalSymlinks("/lib/x86_64-linux-gnu/libexpat.so.1")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, expat, filepath.Join(py, "lib/libexpat.so.1"), 0o644)
	// The standard library, without caches, the Debian-only
	// EXTERNALLY-MANAGED marker and links into the rest of the host.
	std := "/usr/lib/python3.11"
	err = filepath.WalkDir(std, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(std, p)
		switch {
		case d.IsDir() && (d.Name() == "__pycache__" || d.Name() == "test" || strings.HasPrefix(rel, "config-")):
			return filepath.SkipDir
		case rel == "EXTERNALLY-MANAGED" || rel == "sitecustomize.py":
			return nil
		}
		to := filepath.Join(py, "lib/python3.11", rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil || filepath.IsAbs(link) {
				return err
			}
			return os.Symlink(link, to)
		default:
			copyFile(t, p, to, fi.Mode().Perm())
			return nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(interp, "-m", "zipfile", "-e", pipWheel, filepath.Join(py, "lib/python3.11/dist-packages")).CombinedOutput(); err != nil {
		t.Fatalf("unzip %s: %v\n%s", pipWheel, err, out)
	}
	// PBS's console scripts find the interpreter beside themselves.
	pipScript := `#!/bin/sh
'''exec' "$(dirname -- "$(realpath -- "$0")")"/'python3.12' "$0" "$@"
' '''
import re
import sys
from pip._internal.cli.main import main
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(main())
`
	for _, name := range []string{"pip3", "pip3.12"} {
		if err := os.WriteFile(filepath.Join(py, "bin", name), []byte(pipScript), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Dir(file), 0o755)
	if out, err := exec.Command("tar", "-C", stage, "--owner=0", "--group=0", "-czf", file, "python").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
