// Package gpu parses GPU requests as Modal's gpu= argument takes them and
// plans how a build step's sandbox gets the host's NVIDIA GPUs.
//
// Resolve turns requests ("T4", "A100:2", "any", or a list of fallbacks)
// into an Injection: the device nodes to bind, the driver files to mount
// read-only, the environment and the OCI hooks. It prefers the host's CDI
// specs (Container Device Interface, tags.cncf.io/container-device-interface,
// as written by `nvidia-ctk cdi generate` to /etc/cdi or /var/run/cdi) and
// otherwise finds the driver's device nodes, libraries and tools itself, as
// nvidia-container-cli does. A request the host cannot serve (type or count)
// fails before anything runs, with an error that says what the host has.
//
// Devices are bound, never created (no mknod), so this works rootless.
package gpu

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Request is a parsed gpu= value: "T4", "a100:2", "any".
type Request struct {
	Type  string // upper-cased, as Modal sends it ("T4", "A100-80GB", "ANY")
	Count int    // at least 1
}

// String renders the request in Modal's gpu_config form, "TYPE" or "TYPE:N".
func (r Request) String() string {
	if r.Count == 1 {
		return r.Type
	}
	return fmt.Sprintf("%s:%d", r.Type, r.Count)
}

// ParseRequest parses a gpu= value. As Modal: the type is upper-cased and an
// optional ":N" count must be an integer ("Invalid GPU count: X. Value must
// be an integer.").
func ParseRequest(s string) (Request, error) {
	typ, count, hasCount := strings.Cut(strings.TrimSpace(s), ":")
	if typ == "" {
		return Request{}, fmt.Errorf("empty GPU type in %q: use e.g. \"T4\", \"A100:2\" or \"any\"", s)
	}
	r := Request{Type: strings.ToUpper(typ), Count: 1}
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil {
			return Request{}, fmt.Errorf("Invalid GPU count: %s. Value must be an integer.", count)
		}
		if n < 1 {
			return Request{}, fmt.Errorf("Invalid GPU count: %d. Value must be at least 1.", n)
		}
		r.Count = n
	}
	return r, nil
}

// Device is a host character device node to bind into a sandbox.
type Device struct {
	Path         string // absolute path in the sandbox ("/dev/nvidia0")
	HostPath     string // absolute path on the host; "" means Path
	Major, Minor uint32
}

// Devices lists the NVIDIA device nodes under root ("/" on a real host):
// /dev/nvidia[0-9]*, /dev/nvidiactl, /dev/nvidia-uvm*, /dev/nvidia-modeset and
// /dev/nvidia-caps/*, sorted by path. Only character devices count. Path is
// the node's path below root ("/dev/nvidia0"), HostPath the path found
// (root joined with Path). It returns an error when there is no
// /dev/nvidiactl or no GPU node: the host has no usable NVIDIA driver.
func Devices(root string) ([]Device, error) {
	var paths []string
	for _, pat := range []string{"dev/nvidia*", "dev/nvidia-caps/*"} {
		m, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			return nil, err
		}
		paths = append(paths, m...)
	}
	sort.Strings(paths)
	var devs []Device
	gpus, ctl := 0, false
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
			continue
		}
		rel, _ := filepath.Rel(root, p)
		d := Device{Path: "/" + filepath.ToSlash(rel), HostPath: p, Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
		devs = append(devs, d)
		base := filepath.Base(p)
		switch {
		case base == "nvidiactl":
			ctl = true
		case strings.HasPrefix(base, "nvidia") && len(base) > 6 && base[6] >= '0' && base[6] <= '9':
			gpus++
		}
	}
	if !ctl || gpus == 0 {
		return nil, fmt.Errorf("no NVIDIA GPU found (no /dev/nvidiactl or /dev/nvidiaN under %s): a GPU step needs the NVIDIA driver on the host", filepath.Join(root, "dev"))
	}
	return devs, nil
}

// Check reports whether devs can serve r: enough GPU nodes for r.Count. The
// GPU type is not checked.
//
// Deprecated: Resolve checks type and count and plans the whole injection.
func Check(r Request, devs []Device) error {
	n := 0
	for _, d := range devs {
		b := filepath.Base(d.Path)
		if strings.HasPrefix(b, "nvidia") && len(b) > 6 && b[6] >= '0' && b[6] <= '9' {
			n++
		}
	}
	if n < r.Count {
		return fmt.Errorf("gpu=%q asks for %d GPUs, the host has %d", r.String(), r.Count, n)
	}
	return nil
}
