// Package gpu parses GPU requests as Modal's gpu= argument takes them and
// finds the host's NVIDIA device nodes that a sandbox needs for them.
//
// This is the device-node half of GPU support: the nodes are bind-mounted
// into the step's sandbox (no mknod, so it works rootless). Driver libraries
// and CDI specs (tags.cncf.io/container-device-interface) come with
// run_function support.
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

// Device is a host device node to bind into a sandbox.
type Device struct {
	Path         string // absolute host path, also its path in the sandbox
	Major, Minor uint32
}

// Devices lists the NVIDIA device nodes under root ("/" on a real host):
// /dev/nvidia[0-9]*, /dev/nvidiactl, /dev/nvidia-uvm*, /dev/nvidia-modeset and
// /dev/nvidia-caps/*, sorted by path. Only character devices count. It returns
// an error when there is no /dev/nvidiactl or no GPU node: the host has no
// usable NVIDIA driver.
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
		d := Device{Path: "/" + filepath.ToSlash(rel), Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
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
// GPU type is not checked (snapbuild uses the host's GPUs as they are).
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
