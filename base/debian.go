// Package base makes root filesystems for base images without a registry:
// Debian bootstrapped from the Debian archive with mmdebstrap.
//
// mmdebstrap runs in its "root" mode. Rootless, snapbuild's process is already
// root in its own user namespace (mapped from /etc/subuid), so files get the
// right owners directly; device nodes cannot be made there and are skipped in
// both modes (/dev stays an empty directory: the sandbox mounts its own).
package base

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DefaultMirror is the Debian archive used when none is configured. Override
// it with Debian.Mirror or the SNAPBUILD_DEBIAN_MIRROR environment variable.
const DefaultMirror = "http://deb.debian.org/debian"

// recipeVersion changes whenever the bootstrap below changes what it makes, so
// that cached bases made by an older recipe are not reused.
const recipeVersion = "debian-slim/2"

// Debian is a Debian root filesystem made by mmdebstrap.
type Debian struct {
	Suite    string   // e.g. "bookworm", "trixie"
	Packages []string // extra packages on top of the minbase variant
	Mirror   string   // archive URL; "" means $SNAPBUILD_DEBIAN_MIRROR or DefaultMirror
	// Epoch is passed to mmdebstrap as SOURCE_DATE_EPOCH, which makes its
	// output reproducible (shadow's last-change dates, logs, caches).
	Epoch time.Time
	// Python, when set, is a CPython installed into /usr/local after the
	// packages, as the official python images have theirs; nil installs
	// none. Packages should then not hold Debian's python3, which would
	// stand beside it (see SlimBuildPackages).
	Python *LocalPython
}

// LocalPython is a relocatable CPython install tree on the host, such as the
// python/ directory of a python-build-standalone "install_only" archive:
// bin/python3, lib/python3.X, include/, share/.
type LocalPython struct {
	// Dir is the tree's directory on the host. It is not part of the
	// cache identity: the same archive unpacked elsewhere makes the same base.
	Dir string
	// Digest identifies the tree's content, e.g. the archive's
	// "sha256:..." digest; it is part of Definition.
	Digest string
}

// SlimPackages is what DebianSlim adds to Debian's minbase, to match Modal's
// debian_slim: Python with pip, python -> python3, and the compilers Modal
// installs (gcc, gfortran, build-essential).
var SlimPackages = []string{
	"python3", "python3-pip", "python3-venv", "python-is-python3",
	"gcc", "gfortran", "build-essential", "ca-certificates",
}

// SlimBuildPackages is SlimPackages without Debian's Python: the base of a
// debian_slim whose Python is installed into /usr/local (Debian.Python), as
// in the official python images, which hold no Debian python3.
var SlimBuildPackages = []string{"gcc", "gfortran", "build-essential", "ca-certificates"}

func (d Debian) mirror() string {
	if d.Mirror != "" {
		return d.Mirror
	}
	if m := os.Getenv("SNAPBUILD_DEBIAN_MIRROR"); m != "" {
		return m
	}
	return DefaultMirror
}

// Definition is the part of the cache key that does not depend on the
// archive: suite, package set and recipe version.
func (d Debian) Definition() string {
	def := fmt.Sprintf("%s suite=%s packages=%s epoch=%d", recipeVersion, d.Suite, strings.Join(d.Packages, ","), d.Epoch.Unix())
	if d.Python != nil {
		def += fmt.Sprintf(" python=%s recipe=%s", d.Python.Digest, localPythonVersion)
	}
	return def
}

// customize runs inside mmdebstrap after the packages are installed ($1 is
// the rootfs): no host resolv.conf or hostname in the image, pip may install
// into the system Python as in the official python images (no PEP 668
// refusal), and debconf is noninteractive as Modal's debian_slim sets it.
const customize = `set -e
rm -f "$1/etc/resolv.conf" "$1/etc/hostname"
rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED
if [ -x "$1/usr/bin/debconf-set-selections" ]; then
  echo 'debconf debconf/frontend select Noninteractive' | chroot "$1" debconf-set-selections
fi
`

// localPythonVersion changes whenever installPython below changes what it
// makes.
const localPythonVersion = "usr-local/1"

// installPython is the customize hook that installs a LocalPython ($1 is the
// rootfs, the tree's directory is appended quoted): the tree copied into
// /usr/local, the unversioned names the official python images link (python,
// pip, pydoc, idle, python-config) where the tree lacks them, and ld.so's
// cache renewed by the image's own ldconfig so that /usr/local/lib is found.
const installPython = `set -e
cp -a "$PYTHON_TREE/." "$1/usr/local/"
cd "$1/usr/local/bin"
for src in idle3 pip3 pydoc3 python3 python3-config; do
  dst=$(echo "$src" | tr -d 3)
  if [ -e "$src" ] && [ ! -e "$dst" ] && [ ! -L "$dst" ]; then ln -s "$src" "$dst"; fi
done
[ -e python ] || { echo "the Python tree has no bin/python3" >&2; exit 1; }
chroot "$1" /sbin/ldconfig
`

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Bootstrap fills the empty directory rootfs with the Debian system, streaming
// mmdebstrap's --verbose output (its own, apt's and dpkg's, about 1500
// lines for SlimPackages) to log; BootstrapPhases reads it. It needs
// mmdebstrap and apt on the host.
func (d Debian) Bootstrap(ctx context.Context, rootfs string, log io.Writer) error {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return fmt.Errorf("making a Debian base needs mmdebstrap: install it (apt-get install mmdebstrap)")
	}
	args := []string{
		// --verbose: apt's and dpkg's output, from which
		// BootstrapPhases tells the phases (package counts included).
		"--verbose",
		"--mode=root", "--variant=minbase", "--format=directory",
		"--skip=output/mknod", "--skip=check/empty",
		// "slim": no documentation or translations, as Docker's debian:slim.
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/lintian/*",
		"--customize-hook=" + customize,
	}
	if d.Python != nil {
		args = append(args, "--customize-hook=PYTHON_TREE="+shellQuote(d.Python.Dir)+"\n"+installPython)
	}
	if len(d.Packages) > 0 {
		args = append(args, "--include="+strings.Join(d.Packages, ","))
	}
	args = append(args, d.Suite, rootfs, d.mirror())
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = log, log
	// mmdebstrap runs as the init of its own pid and mount namespaces: when
	// it dies (cancelled, or its parent-death signal when the builder is
	// killed), the kernel kills apt, dpkg and every maintainer script with
	// it, and the mounts it made in the target vanish.
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	cmd.WaitDelay = 5 * time.Second
	// mmdebstrap's chroot must not inherit a proxy meant for the host only,
	// nor our locale; keep the environment minimal and predictable.
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "HOME=/root",
		fmt.Sprintf("SOURCE_DATE_EPOCH=%d", d.Epoch.Unix())}
	for _, k := range []string{"http_proxy", "https_proxy", "no_proxy", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("mmdebstrap %s from %s failed: %w", d.Suite, d.mirror(), err)
	}
	return emptyDev(rootfs)
}

// emptyDev leaves /dev an empty directory. As real root mmdebstrap makes
// device nodes and /dev/fd-style links even with output/mknod skipped; the
// sandbox (and every runtime) mounts its own /dev, and a rootless build could
// not make them, so the same base is made either way.
func emptyDev(rootfs string) error {
	dev := filepath.Join(rootfs, "dev")
	ents, err := os.ReadDir(dev)
	if err != nil {
		return fmt.Errorf("debian base: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dev, e.Name())); err != nil {
			return fmt.Errorf("debian base: %w", err)
		}
	}
	return nil
}

// Env is the base image's environment, as in the official python images.
func (d Debian) Env() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8",
	}
}

// PythonVersion reads the full Python version from the bootstrapped rootfs
// (Debian's python3 package version), or "" when it cannot tell.
func PythonVersion(rootfs string) string {
	f, err := os.Open(rootfs + "/var/lib/dpkg/status")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	inPy := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "Package: python3":
			inPy = true
		case line == "":
			inPy = false
		case inPy && strings.HasPrefix(line, "Version: "):
			v := strings.TrimPrefix(line, "Version: ")
			v, _, _ = strings.Cut(v, "-")
			return v
		}
	}
	return ""
}
