package gpu_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapbuild/snapbuild/gpu"
	"github.com/snapbuild/snapbuild/gpu/gputest"
)

func reqs(t *testing.T, s string) []gpu.Request {
	t.Helper()
	r, err := gpu.ParseList(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMatchesAndTypeOf(t *testing.T) {
	models := map[string]string{ // driver model name -> most exact Modal type
		"Tesla T4":                "T4",
		"NVIDIA L4":               "L4",
		"NVIDIA A10G":             "A10G",
		"NVIDIA A10":              "A10G",
		"NVIDIA A100-SXM4-40GB":   "A100-40GB",
		"NVIDIA A100-PCIE-40GB":   "A100-40GB",
		"NVIDIA A100-SXM4-80GB":   "A100-80GB",
		"NVIDIA A100 80GB PCIe":   "A100-80GB",
		"NVIDIA L40S":             "L40S",
		"NVIDIA H100 80GB HBM3":   "H100",
		"NVIDIA H100 PCIe":        "H100",
		"NVIDIA H200":             "H200",
		"NVIDIA H200 NVL":         "H200",
		"NVIDIA B200":             "B200",
		"NVIDIA GeForce RTX 4090": "",
		"NVIDIA L40":              "",
		"NVIDIA RTX A1000":        "",
		"":                        "",
	}
	for model, want := range models {
		if got := gpu.TypeOf(model); got != want {
			t.Errorf("TypeOf(%q) = %q, want %q", model, got, want)
		}
	}
	for _, tc := range []struct {
		typ    string
		accept []string
	}{
		{"any", slices.Collect(func(yield func(string) bool) {
			for m := range models {
				if !yield(m) {
					return
				}
			}
		})},
		{"T4", []string{"Tesla T4"}},
		{"L4", []string{"NVIDIA L4"}},
		{"A10G", []string{"NVIDIA A10G", "NVIDIA A10"}},
		{"A100", []string{"NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB", "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"}},
		{"A100-40GB", []string{"NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"}},
		{"a100-80gb", []string{"NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"}},
		{"L40S", []string{"NVIDIA L40S"}},
		{"H100", []string{"NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H200", "NVIDIA H200 NVL"}},
		{"H100!", []string{"NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"}},
		{"H200", []string{"NVIDIA H200", "NVIDIA H200 NVL"}},
		{"B200", []string{"NVIDIA B200"}},
	} {
		r, err := gpu.ParseRequest(tc.typ)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Validate(); err != nil {
			t.Errorf("Validate(%s) = %v", tc.typ, err)
		}
		for model := range models {
			if got, want := r.Matches(model), slices.Contains(tc.accept, model); got != want {
				t.Errorf("%s.Matches(%q) = %v, want %v", tc.typ, model, got, want)
			}
		}
	}
	for _, typ := range gpu.Types {
		r, _ := gpu.ParseRequest(typ)
		if err := r.Validate(); err != nil {
			t.Errorf("listed type %s: %v", typ, err)
		}
	}
	r, _ := gpu.ParseRequest("v100:2")
	if err := r.Validate(); err == nil || !strings.HasPrefix(err.Error(), `unknown GPU type "V100" in gpu="V100:2": use one of any, T4, L4, A10G, A100, A100-40GB, A100-80GB, L40S, H100, H100!, H200, B200`) {
		t.Errorf("Validate(V100) = %v", err)
	}
}

func TestParseListJoin(t *testing.T) {
	got, err := gpu.ParseList("h100, a100-80gb:2")
	if err != nil {
		t.Fatal(err)
	}
	want := []gpu.Request{{Type: "H100", Count: 1}, {Type: "A100-80GB", Count: 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseList = %+v", got)
	}
	if s := gpu.Join(got); s != "H100,A100-80GB:2" {
		t.Errorf("Join = %q", s)
	}
	if s := gpu.Join(reqs(t, "a100:2")); s != "A100:2" {
		t.Errorf("Join of one = %q (must stay Request.String, the cache key)", s)
	}
	for _, bad := range []string{"h100,", "t4:x", ""} {
		if _, err := gpu.ParseList(bad); err == nil {
			t.Errorf("ParseList(%q): no error", bad)
		}
	}
	if _, err := gpu.ParseRequests(nil); err == nil {
		t.Error("ParseRequests(nil): no error")
	}
}

func TestResolveNoGPU(t *testing.T) {
	root := t.TempDir()
	_, err := gpu.Resolve(reqs(t, "a100:2"), gpu.Options{Root: root})
	if err == nil || err.Error() != `gpu="A100:2": no NVIDIA GPU found (no CDI spec for nvidia.com/gpu in `+root+`/etc/cdi or `+root+`/var/run/cdi; no /dev/nvidiactl or /dev/nvidiaN under `+root+`/dev): a GPU step needs the NVIDIA driver on the host` {
		t.Errorf("no GPU: %v", err)
	}
	// A broken CDI spec is named.
	if err := os.MkdirAll(filepath.Join(root, "etc/cdi"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/cdi/broken.yaml"), []byte("cdiVersion: \"0.6.0\"\nkind: nvidia.com/gpu\ndevices: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := gpu.Resolve(reqs(t, "any"), gpu.Options{Root: root}); err == nil || !strings.Contains(err.Error(), "CDI spec errors:") || !strings.Contains(err.Error(), "broken.yaml") {
		t.Errorf("broken CDI spec: %v", err)
	}
	if _, err := gpu.Resolve(reqs(t, "k80"), gpu.Options{Root: root}); err == nil || !strings.HasPrefix(err.Error(), `unknown GPU type "K80"`) {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := gpu.Resolve(nil, gpu.Options{Root: root}); err == nil {
		t.Error("no request: no error")
	}
}

func twoH200(t *testing.T) *gputest.Host {
	h := gputest.NewHost(t)
	h.AddGPU(0, "NVIDIA H200", "0000:1a:00.0", "GPU-aaaa")
	h.AddGPU(1, "NVIDIA H200", "0000:1b:00.0", "GPU-bbbb")
	return h
}

// TestResolveFound: no CDI spec, the driver's files are found as
// nvidia-container-cli finds them.
func TestResolveFound(t *testing.T) {
	h := twoH200(t)
	o := gpu.Options{Root: h.Root}
	inj, err := gpu.Resolve(reqs(t, "h200"), o)
	if err != nil {
		t.Fatal(err)
	}
	dev := func(p string, major, minor uint32) gpu.Device {
		return gpu.Device{Path: p, HostPath: h.Path(p), Major: major, Minor: minor}
	}
	wantDevs := []gpu.Device{
		dev("/dev/nvidia-caps/nvidia-cap1", gputest.MajorCaps, 1),
		dev("/dev/nvidia-caps/nvidia-cap2", gputest.MajorCaps, 2),
		dev("/dev/nvidia-modeset", 195, 254),
		dev("/dev/nvidia-uvm", gputest.MajorUVM, 0),
		dev("/dev/nvidia-uvm-tools", gputest.MajorUVM, 1),
		dev("/dev/nvidia0", 195, 0), // not nvidia1: one GPU asked for
		dev("/dev/nvidiactl", 195, 255),
	}
	if !reflect.DeepEqual(inj.Devices, wantDevs) {
		t.Errorf("Devices =\n%+v\nwant\n%+v", inj.Devices, wantDevs)
	}
	var wantMounts []gpu.Mount
	for _, f := range []string{"libcuda.so", "libcuda.so.1", "libcuda.so." + gputest.DriverVersion,
		"libnvidia-ml.so.1", "libnvidia-ml.so." + gputest.DriverVersion,
		"libnvidia-ptxjitcompiler.so.1", "libnvidia-ptxjitcompiler.so." + gputest.DriverVersion} {
		p := filepath.Join(h.LibDir, f)
		wantMounts = append(wantMounts, gpu.Mount{HostPath: h.Path(p), ContainerPath: p})
	}
	wantMounts = append(wantMounts, gpu.Mount{HostPath: h.Path("/usr/bin/nvidia-smi"), ContainerPath: "/usr/bin/nvidia-smi"})
	if !reflect.DeepEqual(inj.Mounts, wantMounts) {
		t.Errorf("Mounts =\n%+v\nwant (no libfoo, nothing twice through /lib/<triplet>)\n%+v", inj.Mounts, wantMounts)
	}
	if want := []string{"NVIDIA_VISIBLE_DEVICES=GPU-aaaa", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"}; !reflect.DeepEqual(inj.Env, want) {
		t.Errorf("Env = %q, want %q", inj.Env, want)
	}
	if len(inj.Hooks) != 0 || len(inj.CDIDevices) != 0 {
		t.Errorf("hooks %v, CDI devices %v without a CDI spec", inj.Hooks, inj.CDIDevices)
	}
	if want := "1 GPU: NVIDIA H200 (0000:1a:00.0) via 8 driver files from the host"; inj.Description != want {
		t.Errorf("Description = %q, want %q", inj.Description, want)
	}
	if inj.Request != (gpu.Request{Type: "H200", Count: 1}) || len(inj.GPUs) != 1 || inj.GPUs[0].UUID != "GPU-aaaa" || inj.GPUs[0].Minor != 0 {
		t.Errorf("Request %+v, GPUs %+v", inj.Request, inj.GPUs)
	}

	// Both GPUs: both nodes, NVIDIA_VISIBLE_DEVICES=all.
	inj, err = gpu.Resolve(reqs(t, "any:2"), o)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, d := range inj.Devices {
		nodes = append(nodes, d.Path)
	}
	if !slices.Contains(nodes, "/dev/nvidia0") || !slices.Contains(nodes, "/dev/nvidia1") || inj.Env[0] != "NVIDIA_VISIBLE_DEVICES=all" {
		t.Errorf("any:2: nodes %v env %v", nodes, inj.Env)
	}

	// Fallbacks: the first request the host can serve wins; H100 may run
	// on an H200 (Modal's upgrade), H100! may not.
	inj, err = gpu.Resolve(reqs(t, "b200,h100!,h100:2,any"), o)
	if err != nil {
		t.Fatal(err)
	}
	if inj.Request != (gpu.Request{Type: "H100", Count: 2}) || len(inj.GPUs) != 2 {
		t.Errorf("fallback chose %+v with %d GPUs", inj.Request, len(inj.GPUs))
	}

	for list, want := range map[string]string{
		"a100:2":     `gpu="A100:2": this machine has 2 GPUs: NVIDIA H200 (0000:1a:00.0), NVIDIA H200 (0000:1b:00.0); ask for "H200:2" or "any:2"`,
		"h200:3":     `gpu="H200:3": this machine has 2 GPUs: NVIDIA H200 (0000:1a:00.0), NVIDIA H200 (0000:1b:00.0); ask for "H200:2", "any:2" or fewer`,
		"b200,h100!": `gpu=["B200", "H100!"]: this machine has 2 GPUs: NVIDIA H200 (0000:1a:00.0), NVIDIA H200 (0000:1b:00.0); ask for "H200:2" or "any:2"`,
	} {
		if _, err := gpu.Resolve(reqs(t, list), o); err == nil || err.Error() != want {
			t.Errorf("Resolve(%s) error =\n%v\nwant\n%s", list, err, want)
		}
	}
}

func TestResolveRefusalOneGPU(t *testing.T) {
	h := gputest.NewHost(t)
	h.AddGPU(0, "NVIDIA H200", "0000:1a:00.0", "GPU-aaaa")
	_, err := gpu.Resolve(reqs(t, "A100:2"), gpu.Options{Root: h.Root})
	if want := `gpu="A100:2": this machine has 1 GPU: NVIDIA H200 (0000:1a:00.0); ask for "H200", "any" or fewer`; err == nil || err.Error() != want {
		t.Errorf("error =\n%v\nwant\n%s", err, want)
	}
	// A GPU without an information file has an unknown model: only "any"
	// takes it.
	h.Mknod("/dev/nvidia3", 195, 3)
	_, err = gpu.Resolve(reqs(t, "H200:2"), gpu.Options{Root: h.Root})
	if want := `gpu="H200:2": this machine has 2 GPUs: NVIDIA H200 (0000:1a:00.0), unknown NVIDIA GPU (/dev/nvidia3); ask for "H200", "any:2" or fewer`; err == nil || err.Error() != want {
		t.Errorf("error =\n%v\nwant\n%s", err, want)
	}
	if inj, err := gpu.Resolve(reqs(t, "any:2"), gpu.Options{Root: h.Root}); err != nil || len(inj.GPUs) != 2 {
		t.Errorf("any:2 = %+v, %v", inj, err)
	}
}

// TestResolveCDI: with a CDI spec, the plan is the spec's edits for the
// chosen GPUs, applied by the CDI library.
func TestResolveCDI(t *testing.T) {
	h := twoH200(t)
	h.WriteCDISpec(map[int]string{0: "GPU-aaaa", 1: "GPU-bbbb"})
	o := gpu.Options{Root: h.Root}
	inj, err := gpu.Resolve(reqs(t, "H200"), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nvidia.com/gpu=0"}; !reflect.DeepEqual(inj.CDIDevices, want) {
		t.Errorf("CDIDevices = %v, want %v (the index name, not the UUID one)", inj.CDIDevices, want)
	}
	dev := func(p string, major, minor uint32) gpu.Device {
		return gpu.Device{Path: p, HostPath: h.Path(p), Major: major, Minor: minor}
	}
	wantDevs := []gpu.Device{
		dev("/dev/nvidiactl", 195, 255),
		dev("/dev/nvidia-uvm", gputest.MajorUVM, 0),
		dev("/dev/nvidia-uvm-tools", gputest.MajorUVM, 1),
		dev("/dev/nvidia0", 195, 0),
	}
	if !reflect.DeepEqual(inj.Devices, wantDevs) {
		t.Errorf("Devices =\n%+v\nwant (major/minor from the host nodes)\n%+v", inj.Devices, wantDevs)
	}
	lib := filepath.Join(h.LibDir, "libcuda.so."+gputest.DriverVersion)
	wantMounts := []gpu.Mount{
		{HostPath: h.Path("/usr/bin/nvidia-smi"), ContainerPath: "/usr/bin/nvidia-smi"},
		{HostPath: h.Path(lib), ContainerPath: lib},
	}
	if !slices.Equal(sortedMounts(inj.Mounts), sortedMounts(wantMounts)) {
		t.Errorf("Mounts = %+v, want %+v", inj.Mounts, wantMounts)
	}
	if want := []string{"NVIDIA_VISIBLE_DEVICES=void"}; !reflect.DeepEqual(inj.Env, want) {
		t.Errorf("Env = %q, want %q", inj.Env, want)
	}
	wantHooks := []gpu.Hook{
		{Stage: "createContainer", Path: h.Path("/hooks/create-symlinks"),
			Args: []string{"nvidia-cdi-hook", "create-symlinks", "--link", "libcuda.so." + gputest.DriverVersion + "::" + h.LibDir + "/libcuda.so.1"}},
		{Stage: "createContainer", Path: h.Path("/hooks/update-ldcache"),
			Args: []string{"nvidia-cdi-hook", "update-ldcache", "--folder", h.LibDir}, Env: []string{"NVIDIA_CTK_DEBUG=false"}},
	}
	if !reflect.DeepEqual(inj.Hooks, wantHooks) {
		t.Errorf("Hooks =\n%+v\nwant\n%+v", inj.Hooks, wantHooks)
	}
	if want := "1 GPU: NVIDIA H200 (0000:1a:00.0) via CDI nvidia.com/gpu=0"; inj.Description != want {
		t.Errorf("Description = %q", inj.Description)
	}

	inj, err = gpu.Resolve(reqs(t, "any:2"), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nvidia.com/gpu=0", "nvidia.com/gpu=1"}; !reflect.DeepEqual(inj.CDIDevices, want) {
		t.Errorf("any:2: CDIDevices = %v", inj.CDIDevices)
	}
	if n := len(inj.Devices); n != 5 || len(inj.Hooks) != 2 {
		t.Errorf("any:2: %d devices, %d hooks (spec-wide edits once)", n, len(inj.Hooks))
	}
	if _, err := gpu.Resolve(reqs(t, "T4"), o); err == nil || !strings.Contains(err.Error(), `this machine has 2 GPUs: NVIDIA H200 (0000:1a:00.0), NVIDIA H200 (0000:1b:00.0)`) {
		t.Errorf("T4 with CDI: %v", err)
	}

	// A spec with a hook at a stage whose changes could not be told apart
	// from the step's is refused.
	spec, _ := os.ReadFile(h.Path("/etc/cdi/nvidia.yaml"))
	bad := strings.Replace(string(spec), "hookName: createContainer", "hookName: startContainer", 1)
	h.WriteFile("/etc/cdi/nvidia.yaml", bad, 0o644)
	if _, err := gpu.Resolve(reqs(t, "H200"), o); err == nil || !strings.Contains(err.Error(), "at stage startContainer is not supported") {
		t.Errorf("startContainer hook: %v", err)
	}
	// A stale spec (host node gone) fails before running.
	h.WriteFile("/etc/cdi/nvidia.yaml", string(spec), 0o644)
	if err := os.Remove(h.Path("/dev/nvidia-uvm-tools")); err != nil {
		t.Fatal(err)
	}
	if _, err := gpu.Resolve(reqs(t, "H200"), o); err == nil || !strings.Contains(err.Error(), "nvidia-uvm-tools") {
		t.Errorf("missing host node: %v", err)
	}
	// Spec dirs are options; the timeout of a hook is kept.
	dir := t.TempDir()
	withTimeout := strings.Replace(string(spec), "env: [NVIDIA_CTK_DEBUG=false]", "env: [NVIDIA_CTK_DEBUG=false]\n    timeout: 7", 1)
	withTimeout = strings.ReplaceAll(withTimeout, "    hostPath: "+h.Path("/dev/nvidia-uvm-tools")+"\n", "    hostPath: "+h.Path("/dev/nvidia-uvm")+"\n")
	if err := os.WriteFile(filepath.Join(dir, "x.yaml"), []byte(withTimeout), 0o644); err != nil {
		t.Fatal(err)
	}
	inj, err = gpu.Resolve(reqs(t, "H200"), gpu.Options{Root: h.Root, CDISpecDirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if inj.Hooks[1].Timeout != 7*time.Second {
		t.Errorf("hook timeout = %v", inj.Hooks[1].Timeout)
	}
}

func sortedMounts(m []gpu.Mount) []gpu.Mount {
	m = slices.Clone(m)
	slices.SortFunc(m, func(a, b gpu.Mount) int { return strings.Compare(a.ContainerPath, b.ContainerPath) })
	return m
}
