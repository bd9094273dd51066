package gpu

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	oci "github.com/opencontainers/runtime-spec/specs-go"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

type (
	cdiDeviceNode = cdispec.DeviceNode
	cdiEdits      = cdispec.ContainerEdits
)

// Options says where Resolve looks.
type Options struct {
	// Root is the host's root directory: "/" in production (the default
	// when empty), a fake tree in tests. Device nodes, driver files and
	// /proc/driver/nvidia are looked up under it, and the paths in the plan
	// are the paths below it (a node found at Root/dev/nvidia0 is
	// Device{Path: "/dev/nvidia0", HostPath: Root+"/dev/nvidia0"}). The host
	// paths in CDI specs are used as they are written: CDI specs name real
	// host paths.
	Root string
	// CDISpecDirs are the directories holding CDI specs, in increasing
	// priority (a device in a later directory overrides one of the same name
	// in an earlier one). Default: Root/etc/cdi and Root/var/run/cdi.
	// Missing directories are fine.
	CDISpecDirs []string
}

// CDI vendor and class of NVIDIA GPUs, as nvidia-ctk writes them.
const (
	cdiVendor = "nvidia.com"
	cdiClass  = "gpu"
)

// Injection is what one step's sandbox needs for its GPUs: the plan that
// Resolve returns. Every path in it is absolute.
type Injection struct {
	// Request is the request that was served (the first of a fallback list
	// that the host could serve).
	Request Request
	// GPUs are the GPUs given to the step, by device minor.
	GPUs []GPU
	// CDIDevices are the qualified CDI devices injected
	// ("nvidia.com/gpu=0"); empty when the driver files were found without
	// CDI.
	CDIDevices []string
	// Devices are character device nodes to bind-mount (never mknod) into
	// the sandbox. Read-write: a GPU is driven by ioctls on its nodes.
	Devices []Device
	// Mounts are bind mounts of host files and directories (driver
	// libraries, tools, sockets), always read-only: a build step must
	// never change the host's driver.
	Mounts []Mount
	// Env are "KEY=value" entries that the step's environment gets,
	// overriding the image's (NVIDIA_VISIBLE_DEVICES,
	// NVIDIA_DRIVER_CAPABILITIES, or what the CDI spec sets).
	Env []string
	// Hooks are OCI hooks from the CDI spec (nvidia-ctk's update-ldcache,
	// create-symlinks, ...), in the order the spec lists them. Only the
	// stages that run before the step's process starts occur (prestart,
	// createRuntime, createContainer, poststart): what they change in the
	// rootfs can then be told apart from what the step changes.
	Hooks []Hook
	// Description says in one line what the step gets, for progress output:
	// "1 GPU: NVIDIA H200 (0000:1a:00.0) via CDI nvidia.com/gpu=0".
	Description string
}

// Mount is a read-only bind mount of a host path.
type Mount struct {
	HostPath      string // absolute path on the host (file, directory or socket)
	ContainerPath string // absolute path inside the sandbox
}

// Hook is an OCI runtime hook (runtime-spec "hooks"): the runtime runs Path
// with Args (Args[0] is the program name, as in execve) and exactly Env,
// giving it the container's state as JSON on stdin.
type Hook struct {
	// Stage is the OCI name of the hook point: "prestart", "createRuntime",
	// "createContainer" or "poststart".
	Stage   string
	Path    string
	Args    []string
	Env     []string
	Timeout time.Duration // 0: none
}

// Hook stages, as the OCI runtime spec and CDI name them.
const (
	StagePrestart        = "prestart"
	StageCreateRuntime   = "createRuntime"
	StageCreateContainer = "createContainer"
	StageStartContainer  = "startContainer"
	StagePoststart       = "poststart"
	StagePoststop        = "poststop"
)

// Resolve plans the GPUs of one step. reqs are fallbacks: the first request
// that the host can serve wins; each request's type must be known (see
// Types) and its count at most the number of matching GPUs.
//
// The host is read once per call: CDI specs for nvidia.com/gpu in
// o.CDISpecDirs first; when there is none, the device nodes (/dev/nvidia*,
// /dev/nvidia-caps/*), driver libraries (DriverLibraries, in the host's
// library directories, symlinks included), tools (DriverBinaries) and the
// persistenced socket under o.Root. GPU models come from CDI device
// annotations or /proc/driver/nvidia/gpus/*/information.
//
// Errors, each starting with the requests as `gpu="A100:2": `:
//   - no request, or an unknown type (Request.Validate);
//   - no NVIDIA GPU on the host: `... no NVIDIA GPU found (...)`;
//   - no request can be served: `gpu="A100:2": this machine has 1 GPU:
//     NVIDIA H200 (0000:1a:00.0); ask for "H200", "any" or fewer`;
//   - a CDI spec that cannot be applied (unresolvable device, a missing host
//     device node, a non-bind mount, a non-character device, a hook at the
//     startContainer or poststop stage, whose rootfs changes could not be
//     kept out of the layer).
func Resolve(reqs []Request, o Options) (*Injection, error) {
	if len(reqs) == 0 {
		return nil, errors.New("no GPU request")
	}
	q := quote(reqs)
	for _, r := range reqs {
		if err := r.Validate(); err != nil {
			return nil, err
		}
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.CDISpecDirs == nil {
		o.CDISpecDirs = []string{filepath.Join(o.Root, "etc/cdi"), filepath.Join(o.Root, "var/run/cdi")}
	}
	h, err := inspect(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	for _, r := range reqs {
		var chosen []GPU
		for _, g := range h.gpus {
			if len(chosen) < r.Count && r.Matches(g.Model) {
				chosen = append(chosen, g)
			}
		}
		if len(chosen) < r.Count {
			continue
		}
		var inj *Injection
		if h.cdi != nil {
			inj, err = h.injectCDI(chosen)
		} else {
			inj, err = h.injectFound(chosen)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		inj.Request, inj.GPUs = r, chosen
		inj.Description = describe(chosen, inj)
		return inj, nil
	}
	return nil, fmt.Errorf("%s: %s", q, h.refusal(reqs))
}

// host is what inspect found.
type host struct {
	o    Options
	gpus []GPU // by minor
	// CDI mode
	cdi    *cdi.Cache
	cdiAll string // the qualified "all" device, if any
	// discovery mode
	nodes []Device // every NVIDIA node (Devices)
}

func inspect(o Options) (*host, error) {
	info := procGPUs(o.Root)
	h := &host{o: o}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(o.CDISpecDirs...), cdi.WithAutoRefresh(false))
	if err != nil {
		return nil, fmt.Errorf("reading CDI specs: %w", err)
	}
	var cdiNames []string
	for _, name := range cache.ListDevices() {
		if vendor, class, _, err := parser.ParseQualifiedName(name); err == nil && vendor == cdiVendor && class == cdiClass {
			cdiNames = append(cdiNames, name)
		}
	}
	if len(cdiNames) > 0 {
		h.cdi = cache
		byMinor := map[int]GPU{}
		for _, name := range cdiNames {
			d := cache.GetDevice(name)
			if d.Name == "all" {
				h.cdiAll = name
			}
			minor, ok := singleGPU(d.ContainerEdits.DeviceNodes)
			if !ok {
				continue
			}
			g, seen := byMinor[minor]
			if seen && !betterName(name, g.CDIDevice) {
				continue
			}
			if !seen {
				g = info[minor]
				g.Minor = minor
			}
			g.CDIDevice = name
			if m := annotatedModel(d.Annotations); g.Model == "" && m != "" {
				g.Model = m
			}
			byMinor[minor] = g
		}
		if len(byMinor) == 0 && h.cdiAll != "" {
			// Only an "all" device: its GPU nodes are the GPUs.
			for _, n := range cache.GetDevice(h.cdiAll).ContainerEdits.DeviceNodes {
				if minor, ok := gpuMinor(n.Path); ok {
					g := info[minor]
					g.Minor = minor
					byMinor[minor] = g
				}
			}
		}
		for _, g := range byMinor {
			h.gpus = append(h.gpus, g)
		}
		sort.Slice(h.gpus, func(i, j int) bool { return h.gpus[i].Minor < h.gpus[j].Minor })
		if len(h.gpus) == 0 {
			return nil, fmt.Errorf("no NVIDIA GPU found: the CDI specs in %s name devices %s but none with a GPU node /dev/nvidiaN", strings.Join(o.CDISpecDirs, ", "), strings.Join(cdiNames, ", "))
		}
		return h, nil
	}
	nodes, err := Devices(o.Root)
	if err != nil {
		why := ""
		if errs := cache.GetErrors(); len(errs) > 0 {
			var msgs []string
			for _, list := range errs {
				for _, e := range list {
					msgs = append(msgs, e.Error())
				}
			}
			sort.Strings(msgs)
			why = "; CDI spec errors: " + strings.Join(msgs, "; ")
		}
		return nil, fmt.Errorf("no NVIDIA GPU found (no CDI spec for %s/%s in %s; no /dev/nvidiactl or /dev/nvidiaN under %s%s): a GPU step needs the NVIDIA driver on the host",
			cdiVendor, cdiClass, strings.Join(o.CDISpecDirs, " or "), filepath.Join(o.Root, "dev"), why)
	}
	h.nodes = nodes
	for _, n := range nodes {
		if minor, ok := gpuMinor(n.Path); ok {
			g := info[minor]
			g.Minor = minor
			h.gpus = append(h.gpus, g)
		}
	}
	sort.Slice(h.gpus, func(i, j int) bool { return h.gpus[i].Minor < h.gpus[j].Minor })
	return h, nil
}

// singleGPU reports the minor of a CDI device that stands for one whole
// GPU: exactly one /dev/nvidiaN node and no /dev/nvidia-caps node (those are
// MIG devices).
func singleGPU(nodes []*cdiDeviceNode) (int, bool) {
	minor, n := 0, 0
	for _, d := range nodes {
		if strings.HasPrefix(path.Clean(d.Path), "/dev/nvidia-caps/") {
			return 0, false
		}
		if m, ok := gpuMinor(d.Path); ok {
			minor = m
			n++
		}
	}
	return minor, n == 1
}

// betterName prefers index names ("nvidia.com/gpu=0") to UUID names for
// the same GPU, then the smaller name.
func betterName(a, b string) bool {
	_, _, an, _ := parser.ParseQualifiedName(a)
	_, _, bn, _ := parser.ParseQualifiedName(b)
	_, aerr := strconv.Atoi(an)
	_, berr := strconv.Atoi(bn)
	if (aerr == nil) != (berr == nil) {
		return aerr == nil
	}
	return a < b
}

// annotatedModel finds a GPU model in CDI device annotations (no key is
// standard: any key ending in "model" or "product").
func annotatedModel(ann map[string]string) string {
	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		l := strings.ToLower(k)
		if strings.HasSuffix(l, "model") || strings.HasSuffix(l, "product") {
			return ann[k]
		}
	}
	return ""
}

// injectCDI applies the chosen GPUs' CDI devices to a scratch OCI spec with
// the CDI library and reads the edits back.
func (h *host) injectCDI(chosen []GPU) (*Injection, error) {
	var names []string
	for _, g := range chosen {
		if g.CDIDevice == "" {
			names = nil
			break
		}
		names = append(names, g.CDIDevice)
	}
	if names == nil {
		if h.cdiAll == "" || len(chosen) != len(h.gpus) {
			return nil, fmt.Errorf("the CDI specs in %s have no device for GPU %s alone", strings.Join(h.o.CDISpecDirs, ", "), chosen[0])
		}
		names = []string{h.cdiAll}
	}
	spec := &oci.Spec{Process: &oci.Process{}, Linux: &oci.Linux{}}
	if _, err := h.cdi.InjectDevices(spec, names...); err != nil {
		return nil, fmt.Errorf("CDI: %w", err)
	}
	// OCI linux.devices have no host path: take it from the specs.
	hostPaths := map[string]string{}
	for _, name := range names {
		d := h.cdi.GetDevice(name)
		for _, edits := range []*cdiEdits{&d.GetSpec().ContainerEdits, &d.ContainerEdits} {
			for _, n := range edits.DeviceNodes {
				if n.HostPath != "" {
					hostPaths[path.Clean(n.Path)] = n.HostPath
				}
			}
		}
	}
	inj := &Injection{CDIDevices: names}
	for _, d := range spec.Linux.Devices {
		if d.Type != "c" {
			return nil, fmt.Errorf("CDI device node %s has type %q: only character devices can be bound", d.Path, d.Type)
		}
		hp := hostPaths[path.Clean(d.Path)]
		if hp == "" {
			hp = d.Path
		}
		inj.Devices = append(inj.Devices, Device{Path: d.Path, HostPath: hp, Major: uint32(d.Major), Minor: uint32(d.Minor)})
	}
	for _, m := range spec.Mounts {
		if m.Type != "" && m.Type != "bind" && !slices.Contains(m.Options, "bind") && !slices.Contains(m.Options, "rbind") {
			return nil, fmt.Errorf("CDI mount of %s on %s has type %q: only bind mounts are supported", m.Source, m.Destination, m.Type)
		}
		if !path.IsAbs(m.Source) || !path.IsAbs(m.Destination) {
			return nil, fmt.Errorf("CDI mount of %q on %q: both paths must be absolute", m.Source, m.Destination)
		}
		inj.Mounts = append(inj.Mounts, Mount{HostPath: m.Source, ContainerPath: m.Destination})
	}
	inj.Env = slices.Clone(spec.Process.Env)
	if hk := spec.Hooks; hk != nil {
		for _, st := range []struct {
			stage string
			hooks []oci.Hook
		}{
			{StagePrestart, hk.Prestart}, //nolint:staticcheck // CDI still allows prestart hooks
			{StageCreateRuntime, hk.CreateRuntime},
			{StageCreateContainer, hk.CreateContainer},
			{StagePoststart, hk.Poststart},
			{StageStartContainer, hk.StartContainer},
			{StagePoststop, hk.Poststop},
		} {
			for _, x := range st.hooks {
				if st.stage == StageStartContainer || st.stage == StagePoststop {
					return nil, fmt.Errorf("CDI hook %s at stage %s is not supported: it runs while or after the step runs, so its changes to the rootfs could not be kept out of the layer", x.Path, st.stage)
				}
				hook := Hook{Stage: st.stage, Path: x.Path, Args: slices.Clone(x.Args), Env: slices.Clone(x.Env)}
				if x.Timeout != nil {
					hook.Timeout = time.Duration(*x.Timeout) * time.Second
				}
				inj.Hooks = append(inj.Hooks, hook)
			}
		}
	}
	return inj, nil
}

// injectFound plans the chosen GPUs from what Devices and driverFiles found.
func (h *host) injectFound(chosen []GPU) (*Injection, error) {
	want := map[int]bool{}
	for _, g := range chosen {
		want[g.Minor] = true
	}
	inj := &Injection{}
	root := h.o.Root
	for _, n := range h.nodes {
		if minor, ok := gpuMinor(n.Path); ok && !want[minor] {
			continue
		}
		n.HostPath = filepath.Join(root, n.Path)
		inj.Devices = append(inj.Devices, n)
	}
	for _, f := range driverFiles(root) {
		inj.Mounts = append(inj.Mounts, Mount{HostPath: filepath.Join(root, f), ContainerPath: f})
	}
	visible := "all"
	if len(chosen) < len(h.gpus) {
		ids := make([]string, len(chosen))
		for i, g := range chosen {
			ids[i] = strconv.Itoa(g.Minor)
			if g.UUID != "" {
				ids[i] = g.UUID
			}
		}
		visible = strings.Join(ids, ",")
	}
	inj.Env = []string{"NVIDIA_VISIBLE_DEVICES=" + visible, "NVIDIA_DRIVER_CAPABILITIES=compute,utility"}
	return inj, nil
}

func describe(chosen []GPU, inj *Injection) string {
	parts := make([]string, len(chosen))
	for i, g := range chosen {
		parts[i] = g.String()
	}
	noun := "GPU"
	if len(chosen) != 1 {
		noun = "GPUs"
	}
	how := fmt.Sprintf("%d driver files from the host", len(inj.Mounts))
	if len(inj.CDIDevices) > 0 {
		how = "CDI " + strings.Join(inj.CDIDevices, ", ")
	}
	return fmt.Sprintf("%d %s: %s via %s", len(chosen), noun, strings.Join(parts, ", "), how)
}

// refusal says why no request could be served and what to ask for instead.
func (h *host) refusal(reqs []Request) string {
	noun := "GPU"
	if len(h.gpus) != 1 {
		noun = "GPUs"
	}
	have := make([]string, len(h.gpus))
	perType := map[string]int{}
	var types []string
	for i, g := range h.gpus {
		have[i] = g.String()
		if t := TypeOf(g.Model); t != "" {
			if perType[t] == 0 {
				types = append(types, t)
			}
			perType[t]++
		}
	}
	withCount := func(t string, n int) string {
		if n == 1 {
			return fmt.Sprintf("%q", t)
		}
		return fmt.Sprintf("%q", fmt.Sprintf("%s:%d", t, n))
	}
	var ask []string
	for _, t := range types {
		ask = append(ask, withCount(t, perType[t]))
	}
	ask = append(ask, withCount("any", len(h.gpus)))
	fewer := false
	for _, r := range reqs {
		matching := 0
		for _, g := range h.gpus {
			if r.Matches(g.Model) {
				matching++
			}
		}
		if r.Count > len(h.gpus) || (matching > 0 && r.Count > matching) {
			fewer = true
		}
	}
	if fewer {
		ask = append(ask, "fewer")
	}
	last := ask[len(ask)-1]
	list := last
	if len(ask) > 1 {
		list = strings.Join(ask[:len(ask)-1], ", ") + " or " + last
	}
	return fmt.Sprintf("this machine has %d %s: %s; ask for %s", len(h.gpus), noun, strings.Join(have, ", "), list)
}
