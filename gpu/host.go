package gpu

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// GPU is one of the host's GPUs.
type GPU struct {
	// Minor is the device minor number: the GPU's node is /dev/nvidia<Minor>.
	Minor int
	// Model is the driver's name for it ("NVIDIA H200", "Tesla T4"); ""
	// when unknown.
	Model string
	// UUID is the driver's GPU UUID ("GPU-5c1d…"); "" when unknown.
	UUID string
	// PCIBusID is its PCI address ("0000:1a:00.0"); "" when unknown.
	PCIBusID string
	// CDIDevice is the qualified CDI device that stands for this GPU alone
	// ("nvidia.com/gpu=0"); "" without one.
	CDIDevice string
}

// String renders the GPU for messages: "NVIDIA H200 (0000:1a:00.0)".
func (g GPU) String() string {
	model := g.Model
	if model == "" {
		model = "unknown NVIDIA GPU"
	}
	where := g.PCIBusID
	if where == "" {
		where = fmt.Sprintf("/dev/nvidia%d", g.Minor)
	}
	return fmt.Sprintf("%s (%s)", model, where)
}

// procGPUs reads root/proc/driver/nvidia/gpus/<pci>/information, the
// driver's description of each GPU, keyed by device minor. Files that cannot
// be read or carry no "Device Minor" are skipped: the information is only
// used to name GPUs.
func procGPUs(root string) map[int]GPU {
	dirs, _ := filepath.Glob(filepath.Join(root, "proc/driver/nvidia/gpus/*/information"))
	out := map[int]GPU{}
	for _, f := range dirs {
		fields, err := readInformation(f)
		if err != nil {
			continue
		}
		minor, err := strconv.Atoi(fields["Device Minor"])
		if err != nil {
			continue
		}
		g := GPU{Minor: minor, Model: fields["Model"], UUID: fields["GPU UUID"], PCIBusID: fields["Bus Location"]}
		if g.PCIBusID == "" {
			g.PCIBusID = filepath.Base(filepath.Dir(f))
		}
		out[minor] = g
	}
	return out
}

// readInformation parses "Key:   value" lines (the driver pads with tabs
// and spaces).
func readInformation(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fields := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return fields, sc.Err()
}

var gpuNode = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^/dev/nvidia([0-9]+)$`) })

// gpuMinor returns N for a GPU node path "/dev/nvidiaN".
func gpuMinor(path string) (int, bool) {
	m := gpuNode().FindStringSubmatch(filepath.Clean(path))
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil
}

// DriverLibraries are the driver libraries that a compute step gets without
// CDI (nvidia-container-cli's "utility" and "compute" sets): each name
// stands for name* ("libcuda.so" takes libcuda.so, libcuda.so.1 and
// libcuda.so.550.54.15).
var DriverLibraries = []string{
	// utility
	"libnvidia-ml.so", "libnvidia-cfg.so", "libnvidia-nscq.so",
	// compute
	"libcuda.so", "libcudadebugger.so", "libnvidia-opencl.so", "libnvidia-gpucomp.so",
	"libnvidia-ptxjitcompiler.so", "libnvidia-fatbinaryloader.so", "libnvidia-allocator.so",
	"libnvidia-compiler.so", "libnvidia-pkcs11.so", "libnvidia-pkcs11-openssl3.so", "libnvidia-nvvm.so",
}

// DriverBinaries are the driver tools a step gets without CDI, from /usr/bin.
var DriverBinaries = []string{"nvidia-smi", "nvidia-debugdump", "nvidia-persistenced", "nvidia-cuda-mps-control", "nvidia-cuda-mps-server"}

// LibraryDirs are the host library directories searched for
// DriverLibraries, in this order: /usr/lib/<multiarch triplet>, /usr/lib64,
// /lib/<triplet>, /lib64, /usr/lib.
func LibraryDirs() []string {
	triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "ppc64le": "powerpc64le-linux-gnu"}[runtime.GOARCH]
	var dirs []string
	if triplet != "" {
		dirs = append(dirs, "/usr/lib/"+triplet)
	}
	dirs = append(dirs, "/usr/lib64")
	if triplet != "" {
		dirs = append(dirs, "/lib/"+triplet)
	}
	return append(dirs, "/lib64", "/usr/lib")
}

// driverFiles finds the driver libraries (with their symlinks), tools and
// the persistenced socket under root. Paths are absolute and relative to
// root ("/usr/lib/x86_64-linux-gnu/libcuda.so.1"), sorted by directory
// search order and then name. A library name found in an earlier directory
// is not taken again from a later one (on merged-/usr hosts /lib/<triplet>
// is /usr/lib/<triplet>).
func driverFiles(root string) []string {
	var out []string
	type fileID struct{ dev, ino uint64 }
	seenDir := map[fileID]bool{}
	seenName := map[string]bool{}
	for _, dir := range LibraryDirs() {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(root, dir), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		id := fileID{uint64(st.Dev), uint64(st.Ino)}
		if seenDir[id] {
			continue
		}
		seenDir[id] = true
		var found []string
		for _, lib := range DriverLibraries {
			matches, _ := filepath.Glob(filepath.Join(root, dir, lib+"*"))
			for _, m := range matches {
				name := filepath.Base(m)
				if seenName[name] || !isRegular(m) {
					continue
				}
				seenName[name] = true
				found = append(found, filepath.Join(dir, name))
			}
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	for _, bin := range DriverBinaries {
		p := "/usr/bin/" + bin
		if isRegular(filepath.Join(root, p)) {
			out = append(out, p)
		}
	}
	var st unix.Stat_t
	if sock := "/run/nvidia-persistenced/socket"; unix.Stat(filepath.Join(root, sock), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
		out = append(out, sock)
	}
	return out
}

// isRegular reports whether path is a regular file or a symlink that
// resolves to one.
func isRegular(path string) bool {
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
}
