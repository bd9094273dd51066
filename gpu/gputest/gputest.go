// Package gputest makes fake NVIDIA hosts for tests: a directory tree with
// the driver's device nodes (real character devices, made with mknod, so it
// needs root), libraries with their symlinks, nvidia-smi, the driver's
// /proc/driver/nvidia/gpus information files and, on request, a CDI spec
// with hooks that behave like nvidia-ctk's.
package gputest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/gpu"
	"golang.org/x/sys/unix"
)

// Fake device numbers. 195 is the NVIDIA driver's real major; the others
// are made up (the uvm and caps majors are dynamic on real hosts).
const (
	MajorNVIDIA = 195
	MajorUVM    = 509
	MajorCaps   = 508
	MinorCtl    = 255
)

// DriverVersion is the version in the fake library names.
const DriverVersion = "550.54.15"

// Host is a fake NVIDIA host under Root.
type Host struct {
	t    testing.TB
	Root string
	// LibDir is the library directory below Root ("/usr/lib/x86_64-linux-gnu").
	LibDir string
}

// RequireRoot skips the test when not run as root (mknod needs it), or
// fails it when CI=true.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("making device nodes needs root (CI=true: not skipped)")
		}
		t.Skip("making device nodes needs root")
	}
}

// NewHost makes a fake host in a temporary directory with /dev/nvidiactl,
// /dev/nvidia-uvm, /dev/nvidia-uvm-tools, /dev/nvidia-modeset,
// /dev/nvidia-caps/nvidia-cap1 and /dev/nvidia-caps/nvidia-cap2, the driver
// libraries libcuda, libnvidia-ml and libnvidia-ptxjitcompiler (each a small
// file "fake NAME" with its SONAME and, for libcuda, its .so symlink), a
// library that is not the driver's (libfoo.so.1), /usr/bin/nvidia-smi (a
// shell script printing "GPU N: MODEL" lines from the information files),
// and /lib/<triplet> as a symlink to /usr/lib/<triplet> (merged /usr). It
// has no GPU: add them with AddGPU. It needs root.
func NewHost(t testing.TB) *Host {
	t.Helper()
	RequireRoot(t)
	h := &Host{t: t, Root: t.TempDir(), LibDir: gpu.LibraryDirs()[0]}
	h.Mknod("/dev/nvidiactl", MajorNVIDIA, MinorCtl)
	h.Mknod("/dev/nvidia-modeset", MajorNVIDIA, 254)
	h.Mknod("/dev/nvidia-uvm", MajorUVM, 0)
	h.Mknod("/dev/nvidia-uvm-tools", MajorUVM, 1)
	h.Mknod("/dev/nvidia-caps/nvidia-cap1", MajorCaps, 1)
	h.Mknod("/dev/nvidia-caps/nvidia-cap2", MajorCaps, 2)
	h.WriteFile("/dev/nvidia-notadevice", "", 0o644)
	for _, lib := range []string{"libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so"} {
		real := lib + "." + DriverVersion
		h.WriteFile(filepath.Join(h.LibDir, real), "fake "+real+"\n", 0o755)
		h.Symlink(real, filepath.Join(h.LibDir, lib+".1"))
	}
	h.Symlink("libcuda.so.1", filepath.Join(h.LibDir, "libcuda.so"))
	h.WriteFile(filepath.Join(h.LibDir, "libfoo.so.1"), "not a driver library\n", 0o755)
	if strings.HasPrefix(h.LibDir, "/usr/lib/") {
		h.Symlink("../usr/lib/"+filepath.Base(h.LibDir), "/lib/"+filepath.Base(h.LibDir))
	}
	h.WriteFile("/usr/bin/nvidia-smi", `#!/bin/sh
# fake nvidia-smi -L: one line per GPU whose node this sandbox can open
for n in /dev/nvidia[0-9]*; do
  [ -c "$n" ] && echo "GPU ${n#/dev/nvidia}: fake"
done
`, 0o755)
	return h
}

// AddGPU adds /dev/nvidia<minor> and the driver's information file for it
// under /proc/driver/nvidia/gpus/<pci>/.
func (h *Host) AddGPU(minor int, model, pci, uuid string) {
	h.t.Helper()
	h.Mknod(fmt.Sprintf("/dev/nvidia%d", minor), MajorNVIDIA, uint32(minor))
	h.WriteFile(filepath.Join("/proc/driver/nvidia/gpus", pci, "information"), fmt.Sprintf(
		"Model: \t\t %s\nIRQ:   \t\t 42\nGPU UUID: \t %s\nVideo BIOS: \t 96.00.74.00.01\nBus Type: \t PCIe\n"+
			"DMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\nBus Location: \t %s\nDevice Minor: \t %d\nGPU Excluded:\t No\n",
		model, uuid, pci, minor), 0o444)
}

// Path returns the host path of p, a path below Root.
func (h *Host) Path(p string) string { return filepath.Join(h.Root, p) }

// Mknod makes a character device at p below Root.
func (h *Host) Mknod(p string, major, minor uint32) {
	h.t.Helper()
	full := h.Path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := unix.Mknod(full, unix.S_IFCHR|0o666, int(unix.Mkdev(major, minor))); err != nil {
		h.t.Fatalf("mknod %s: %v", full, err)
	}
}

// WriteFile writes a file at p below Root, making its parents.
func (h *Host) WriteFile(p, content string, mode os.FileMode) {
	h.t.Helper()
	full := h.Path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil {
		h.t.Fatal(err)
	}
}

// Symlink makes a symlink at p below Root pointing to target (as given).
func (h *Host) Symlink(target, p string) {
	h.t.Helper()
	full := h.Path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Symlink(target, full); err != nil {
		h.t.Fatal(err)
	}
}

// hookPrelude finds the container's rootfs as nvidia-ctk's hooks do: the OCI
// state on stdin names the bundle, whose config.json has root.path.
const hookPrelude = `#!/bin/sh
set -eu
state=$(cat)
bundle=$(printf '%s' "$state" | sed -n 's/.*"bundle": *"\([^"]*\)".*/\1/p')
[ -n "$bundle" ] || { echo "hook: no bundle in the state: $state" >&2; exit 1; }
root=$(sed -n 's/.*"root": *{"path": *"\([^"]*\)".*/\1/p' "$bundle/config.json")
case "$root" in /*) ;; *) root="$bundle/$root" ;; esac
[ "$root" != / ] && [ -d "$root" ] || { echo "hook: bad container root $root" >&2; exit 1; }
`

// WriteCDISpec writes a CDI spec for nvidia.com/gpu to Root/etc/cdi/nvidia.yaml,
// as `nvidia-ctk cdi generate` would for the GPUs given (minor -> UUID):
// devices named by index and by UUID with their /dev/nvidiaN node, "all",
// and spec-wide edits: the control and uvm nodes, the libcuda and
// nvidia-smi mounts, NVIDIA_VISIBLE_DEVICES=void and two createContainer
// hooks, shell scripts under Root/hooks:
//
//   - create-symlinks (args "--link TARGET::LINK"): makes the symlink LINK
//     -> TARGET in the container's rootfs, as nvidia-cdi-hook does; the spec
//     links <LibDir>/libcuda.so.1 -> libcuda.so.<DriverVersion> (the
//     mounted library);
//   - update-ldcache (args "--folder DIR"): writes /etc/ld.so.cache (text:
//     "fake ld.so.cache: DIR ... NVIDIA_CTK_DEBUG=<its env>") and a
//     /etc/ld.so.conf.d/00-nvcr-<pid>.conf listing the folders, as
//     nvidia-cdi-hook update-ldcache does (with ldconfig).
//
// Both find the rootfs from the state's bundle config.json, as nvidia-ctk's
// hooks do. The spec's host paths point into Root. It returns the spec's path.
func (h *Host) WriteCDISpec(gpus map[int]string) string {
	h.t.Helper()
	h.WriteFile("/hooks/create-symlinks", hookPrelude+`
shift # the program name is $0; args: create-symlinks --link T::L ...
while [ $# -gt 0 ]; do
  case "$1" in
  --link) target=${2%%::*}; link=${2#*::}; mkdir -p "$root$(dirname "$link")"; ln -sfn "$target" "$root$link"; shift 2 ;;
  *) shift ;;
  esac
done
`, 0o755)
	h.WriteFile("/hooks/update-ldcache", hookPrelude+`
shift
folders=
while [ $# -gt 0 ]; do
  case "$1" in
  --folder) folders="$folders $2"; shift 2 ;;
  *) shift ;;
  esac
done
mkdir -p "$root/etc/ld.so.conf.d"
for f in $folders; do echo "$f"; done > "$root/etc/ld.so.conf.d/00-nvcr-$$.conf"
echo "fake ld.so.cache:$folders NVIDIA_CTK_DEBUG=${NVIDIA_CTK_DEBUG:-unset}" > "$root/etc/ld.so.cache"
`, 0o755)
	var b strings.Builder
	fmt.Fprintf(&b, "cdiVersion: \"0.6.0\"\nkind: nvidia.com/gpu\ndevices:\n")
	node := func(indent string, p string) {
		fmt.Fprintf(&b, "%s- path: %s\n%s  hostPath: %s\n", indent, p, indent, h.Path(p))
	}
	var minors []int
	for m := range gpus {
		minors = append(minors, m)
	}
	sort.Ints(minors)
	for _, m := range minors {
		for _, name := range []string{fmt.Sprint(m), gpus[m]} {
			if name == "" {
				continue
			}
			fmt.Fprintf(&b, "- name: %q\n  containerEdits:\n    deviceNodes:\n", name)
			node("    ", fmt.Sprintf("/dev/nvidia%d", m))
		}
	}
	fmt.Fprintf(&b, "- name: all\n  containerEdits:\n    deviceNodes:\n")
	for _, m := range minors {
		node("    ", fmt.Sprintf("/dev/nvidia%d", m))
	}
	lib := filepath.Join(h.LibDir, "libcuda.so."+DriverVersion)
	fmt.Fprintf(&b, "containerEdits:\n  env:\n  - NVIDIA_VISIBLE_DEVICES=void\n  deviceNodes:\n")
	node("  ", "/dev/nvidiactl")
	node("  ", "/dev/nvidia-uvm")
	node("  ", "/dev/nvidia-uvm-tools")
	fmt.Fprintf(&b, "  mounts:\n")
	for _, p := range []string{lib, "/usr/bin/nvidia-smi"} {
		fmt.Fprintf(&b, "  - hostPath: %s\n    containerPath: %s\n    options: [ro, nosuid, nodev, bind]\n", h.Path(p), p)
	}
	fmt.Fprintf(&b, `  hooks:
  - hookName: createContainer
    path: %s
    args: [nvidia-cdi-hook, create-symlinks, --link, "libcuda.so.%s::%s/libcuda.so.1"]
  - hookName: createContainer
    path: %s
    args: [nvidia-cdi-hook, update-ldcache, --folder, %s]
    env: [NVIDIA_CTK_DEBUG=false]
`, h.Path("/hooks/create-symlinks"), DriverVersion, h.LibDir, h.Path("/hooks/update-ldcache"), h.LibDir)
	h.WriteFile("/etc/cdi/nvidia.yaml", b.String(), 0o644)
	return h.Path("/etc/cdi/nvidia.yaml")
}
