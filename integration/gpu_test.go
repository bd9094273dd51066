package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/gpu/gputest"
)

// TestGPUStepWithCDISpec runs gpu= steps against a fake NVIDIA host: device
// nodes made with mknod in a temporary directory and a CDI spec naming them
// (as `nvidia-ctk cdi generate` writes one), with a driver library mount and
// two createContainer hooks that behave like nvidia-ctk's create-symlinks and
// update-ldcache (they write into the container's rootfs). The step must see
// the node, the library, the env and the hooks' work; the layer must hold
// only what the step wrote, and a step that runs `true` adds no layer.
func TestGPUStepWithCDISpec(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	h := gputest.NewHost(t)
	h.AddGPU(0, "NVIDIA H200", "0000:1a:00.0", "GPU-11111111-2222-3333-4444-555555555555")
	h.AddGPU(1, "NVIDIA H200", "0000:1b:00.0", "GPU-66666666-7777-8888-9999-000000000000")
	specPath := h.WriteCDISpec(map[int]string{0: "GPU-11111111-2222-3333-4444-555555555555", 1: "GPU-66666666-7777-8888-9999-000000000000"})
	lib := h.LibDir
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "gpucdi.yaml", `
- debian_slim: {}
- run_commands:
    commands:
      - >-
        stat -c '%F %t:%T' /dev/nvidia0 > /gpu.txt;
        test -e /dev/nvidia1 || echo one-gpu >> /gpu.txt;
        echo "$NVIDIA_VISIBLE_DEVICES" >> /gpu.txt;
        cat `+lib+`/libcuda.so.`+gputest.DriverVersion+` >> /gpu.txt;
        readlink `+lib+`/libcuda.so.1 >> /gpu.txt;
        cat /etc/ld.so.cache >> /gpu.txt
    gpu: any
- run_commands: {commands: ["true"], gpu: any}
`)
	r := runner{t: t, root: rootDir}
	res := r.run("", "build", recipe, "--progress", "plain", "--cdi-spec-dir", filepath.Dir(specPath))
	if res.code != 0 {
		t.Fatalf("build: exit %d\n%s", res.code, tail(res.stderr, 30))
	}
	if !strings.Contains(res.stderr, "gpu: ") {
		t.Errorf("the build output does not say which GPU it used:\n%s", tail(res.stderr, 20))
	}
	want := "character special file c3:0\none-gpu\nvoid\nfake libcuda.so." + gputest.DriverVersion + "\nlibcuda.so." + gputest.DriverVersion +
		"\nfake ld.so.cache: " + lib + " NVIDIA_CTK_DEBUG=false\n"
	out := r.ok("run", "gpucdi", "sh", "-c", "cat /gpu.txt; test -e "+lib+"/libcuda.so.1 && echo LINK-LEAKED; grep -c 'fake ld.so.cache' /etc/ld.so.cache; ls /etc/ld.so.conf.d")
	if !strings.HasPrefix(out.stdout, want) {
		t.Errorf("the GPU step saw:\n%s\nwant:\n%s", out.stdout, want)
	}
	if rest := strings.TrimPrefix(out.stdout, want); strings.Contains(rest, "LEAKED") || !strings.HasPrefix(rest, "0\n") || strings.Contains(rest, "nvcr") {
		t.Errorf("hook work reached the image:\n%s", rest)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	r.ok("export", "gpucdi", "oci:"+layout+":gpucdi")
	created, entries := layerEntries(t, layout)
	last := entries[len(entries)-1]
	var names []string
	for _, h := range last {
		names = append(names, h.Name)
	}
	if !strings.Contains(created[len(created)-1], "/gpu.txt") || strings.Join(names, " ") != "gpu.txt" {
		t.Errorf("the last layer (%s) holds %q, want only gpu.txt (and the `true` step no layer)", created[len(created)-1], names)
	}
	if _, err := os.Stat(specPath); err != nil {
		t.Fatal(err)
	}
}
