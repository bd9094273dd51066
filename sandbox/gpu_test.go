package sandbox_test

// End-to-end tests of GPU injection without a GPU: a fake NVIDIA host
// (gputest: real character devices made with mknod, fake libraries, a fake
// CDI spec with hooks that behave like nvidia-ctk's), a minimal rootfs made
// from the host's /bin/sh and coreutils, an overlay snapshot of it, and a
// real libcontainer sandbox. They need root (mknod, overlay, containers);
// with CI=true a missing capability fails them.

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/snapbuild/snapbuild/gpu"
	"github.com/snapbuild/snapbuild/gpu/gputest"
	"github.com/snapbuild/snapbuild/overlay"
	"github.com/snapbuild/snapbuild/sandbox"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) != "" {
		securityProbe() // inside a sandbox (security_run_test.go)
		os.Exit(0)
	}
	if addr := os.Getenv(netProbeEnv); addr != "" {
		netProbe(addr) // inside a sandbox (network_test.go)
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == "init" {
		sandbox.Init() // libcontainer's container init: never returns
	}
	if os.Geteuid() == 0 {
		// Re-executes the tests in a private mount namespace, so that no
		// overlay mount outlives them.
		sandbox.Init()
		sandbox.EnterNamespace()
	}
	code := m.Run()
	if baseDir != "" {
		os.RemoveAll(filepath.Dir(baseDir))
	}
	os.Exit(code)
}

func need(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: not skipped)", what)
	}
	t.Skip(what)
}

var (
	baseOnce sync.Once
	baseDir  string
	baseErr  error
)

// baseRootfs makes, once per test binary, a minimal rootfs with the host's
// sh, stat, cat, readlink, ls, env and chmod and the libraries they load (merged
// /usr, as Debian), an /etc/ld.so.cache of its own, and the usual empty
// directories. No /etc/resolv.conf and /etc/hosts: the sandbox makes stubs.
func baseRootfs(t *testing.T) string {
	baseOnce.Do(func() {
		dir, err := os.MkdirTemp("", "snapbuild-gpu-rootfs-")
		if err != nil {
			baseErr = err
			return
		}
		baseDir = filepath.Join(dir, "rootfs")
		baseErr = makeRootfs(baseDir)
	})
	if baseErr != nil {
		t.Fatalf("making a test rootfs: %v", baseErr)
	}
	return baseDir
}

func makeRootfs(root string) error {
	for _, d := range []string{"usr/bin", "usr/lib", "usr/sbin", "lib64", "etc", "proc", "sys", "dev", "tmp", "run", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for _, l := range []string{"bin", "lib", "sbin"} {
		if err := os.Symlink("usr/"+l, filepath.Join(root, l)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/ld.so.cache"), []byte("the image's own ld.so.cache\n"), 0o644); err != nil {
		return err
	}
	libs := map[string]bool{}
	for _, tool := range []string{"sh", "stat", "cat", "readlink", "ls", "env", "chmod"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			return err
		}
		if err := copyFile(p, filepath.Join(root, "usr/bin", tool)); err != nil {
			return err
		}
		out, err := exec.Command("ldd", p).Output()
		if err != nil {
			return fmt.Errorf("ldd %s: %w", p, err)
		}
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				libs[f] = true
			}
		}
	}
	for f := range libs {
		// Through the rootfs's own merged-/usr symlinks (relative).
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			return err
		}
		if err := copyFile(f, filepath.Join(root, f)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src) // follows symlinks
	if err != nil {
		return err
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, st.Mode().Perm())
}

// snap is an overlay snapshot of the base rootfs with a fresh upper dir.
type snap struct {
	lower, upper, work, merged string
	mounted                    bool
}

func newSnap(t *testing.T) *snap {
	t.Helper()
	need(t, "overlay mounts need root", os.Geteuid() == 0)
	dir := t.TempDir()
	s := &snap{lower: baseRootfs(t), upper: filepath.Join(dir, "upper"), work: filepath.Join(dir, "work"), merged: filepath.Join(dir, "merged")}
	for _, d := range []string{s.upper, s.work, s.merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := overlay.Mount{Lowers: []string{s.lower}, Upper: s.upper, Work: s.work}.Mount(s.merged)
	need(t, fmt.Sprintf("overlay mount: %v", err), err == nil)
	s.mounted = true
	t.Cleanup(s.unmount)
	return s
}

func (s *snap) unmount() {
	if s.mounted {
		_ = overlay.Unmount(s.merged)
		s.mounted = false
	}
}

// layer unmounts the snapshot, removes the stubs as the builder does, and
// returns the names in the layer that the upper dir makes.
func (s *snap) layer(t *testing.T, stubs []string) []string {
	t.Helper()
	s.unmount()
	if err := overlay.RemoveStubs(s.upper, []string{s.lower}, stubs, false); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := overlay.Diff(context.Background(), &buf, s.upper, overlay.DiffOptions{Lowers: []string{s.lower}}); err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	return names
}

var seq int

// runIn runs sh -c script in the snapshot with the GPU plan applied and
// returns the result and the output.
func runIn(t *testing.T, s *snap, inj *gpu.Injection, script string) (sandbox.Result, string, error) {
	t.Helper()
	seq++
	var out bytes.Buffer
	spec := sandbox.Spec{
		ID:       fmt.Sprintf("gputest-%d-%d", os.Getpid(), seq),
		StateDir: filepath.Join(t.TempDir(), "state"),
		Rootfs:   s.merged,
		UpperDir: s.upper,
		Args:     []string{"/bin/sh", "-c", script},
		Env:      []string{"PATH=/usr/bin", "NVIDIA_VISIBLE_DEVICES=all", "KEEP=1"},
		Stdout:   &out, Stderr: &out,
		Network: sandbox.NetworkNone,
	}
	if inj != nil {
		inj.Apply(&spec)
	}
	res, err := sandbox.Run(context.Background(), spec)
	return res, out.String(), err
}

// checkScript prints what the step sees of the GPU injection.
const checkScript = `
for n in /dev/nvidia0 /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia1; do
  if [ -e $n ]; then echo "node $n $(stat -c '%F %t:%T' $n)"; else echo "node $n absent"; fi
done
echo "env NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES KEEP=$KEEP"
echo "libcuda.so.1: $(cat /usr/lib/x86_64-linux-gnu/libcuda.so.1)"
echo "ld.so.cache: $(cat /etc/ld.so.cache)"
nvidia-smi > /gpus.txt
echo "smi: $(cat /gpus.txt)"
`

func hostWithGPUs(t *testing.T) *gputest.Host {
	h := gputest.NewHost(t)
	if h.LibDir != "/usr/lib/x86_64-linux-gnu" {
		t.Skipf("the test script expects x86_64 library paths, not %s", h.LibDir)
	}
	h.AddGPU(0, "NVIDIA H200", "0000:1a:00.0", "GPU-aaaa")
	h.AddGPU(1, "NVIDIA H200", "0000:1b:00.0", "GPU-bbbb")
	return h
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	got := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if !slices.Contains(got, l) {
			t.Errorf("output lacks %q; output:\n%s", l, out)
		}
	}
}

// TestGPUFoundInSandbox: without CDI, the step sees the chosen GPU's node
// (and not the other one), the control nodes, the driver library and
// nvidia-smi, and the layer holds only what the step wrote.
func TestGPUFoundInSandbox(t *testing.T) {
	h := hostWithGPUs(t)
	s := newSnap(t)
	inj, err := gpu.Resolve([]gpu.Request{{Type: "H200", Count: 1}}, gpu.Options{Root: h.Root})
	if err != nil {
		t.Fatal(err)
	}
	res, out, err := runIn(t, s, inj, checkScript)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %v, exit %d\n%s", err, res.ExitCode, out)
	}
	wantLines(t, out,
		"node /dev/nvidia0 character special file c3:0",
		"node /dev/nvidiactl character special file c3:ff",
		fmt.Sprintf("node /dev/nvidia-uvm character special file %x:0", gputest.MajorUVM),
		"node /dev/nvidia1 absent",
		"env NVIDIA_VISIBLE_DEVICES=GPU-aaaa KEEP=1",
		"libcuda.so.1: fake libcuda.so."+gputest.DriverVersion,
		"ld.so.cache: the image's own ld.so.cache",
		"smi: GPU 0: fake",
	)
	if !slices.Contains(res.Stubs, "usr/lib/x86_64-linux-gnu/libcuda.so.1") || !slices.Contains(res.Stubs, "usr/bin/nvidia-smi") {
		t.Errorf("Stubs = %q: the library and tool mount targets are missing", res.Stubs)
	}
	if names := s.layer(t, res.Stubs); !slices.Equal(names, []string{"gpus.txt"}) {
		t.Errorf("layer = %q, want only gpus.txt", names)
	}
}

// TestGPUCDIInSandbox: with a CDI spec, the hooks run (before the step, with
// their args and env, finding the rootfs through the bundle as nvidia-ctk's
// do), and nothing they made reaches the layer.
func TestGPUCDIInSandbox(t *testing.T) {
	h := hostWithGPUs(t)
	h.WriteCDISpec(map[int]string{0: "GPU-aaaa", 1: "GPU-bbbb"})
	s := newSnap(t)
	inj, err := gpu.Resolve([]gpu.Request{{Type: "ANY", Count: 1}}, gpu.Options{Root: h.Root})
	if err != nil {
		t.Fatal(err)
	}
	if len(inj.Hooks) != 2 {
		t.Fatalf("plan has %d hooks", len(inj.Hooks))
	}
	res, out, err := runIn(t, s, inj, checkScript+`
echo "link: $(readlink /usr/lib/x86_64-linux-gnu/libcuda.so.1)"
echo "conf: $(cat /etc/ld.so.conf.d/00-nvcr-*.conf)"
`)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %v, exit %d\n%s", err, res.ExitCode, out)
	}
	wantLines(t, out,
		"node /dev/nvidia0 character special file c3:0",
		"node /dev/nvidiactl character special file c3:ff",
		"node /dev/nvidia1 absent",
		"env NVIDIA_VISIBLE_DEVICES=void KEEP=1", // the CDI spec's env wins
		"libcuda.so.1: fake libcuda.so."+gputest.DriverVersion,
		"link: libcuda.so."+gputest.DriverVersion,
		"ld.so.cache: fake ld.so.cache: /usr/lib/x86_64-linux-gnu NVIDIA_CTK_DEBUG=false",
		"conf: /usr/lib/x86_64-linux-gnu",
		"smi: GPU 0: fake",
	)
	for _, want := range []string{"etc/ld.so.cache", "usr/lib/x86_64-linux-gnu/libcuda.so.1", "etc/ld.so.conf.d",
		"usr/lib/x86_64-linux-gnu/libcuda.so." + gputest.DriverVersion, "usr/bin/nvidia-smi"} {
		if !slices.Contains(res.Stubs, want) {
			t.Errorf("Stubs lack %s: %q", want, res.Stubs)
		}
	}
	if slices.Contains(res.Stubs, "gpus.txt") {
		t.Errorf("the step's own file is a stub: %q", res.Stubs)
	}
	if names := s.layer(t, res.Stubs); !slices.Equal(names, []string{"gpus.txt"}) {
		t.Errorf("layer = %q, want only gpus.txt", names)
	}
	if _, err := os.Stat(filepath.Join(s.upper, "etc")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upper/etc still there (%v): the hooks' copy-up of /etc was not undone", err)
	}
}

// TestGPUCDIStepChangesStay: what the step itself changes among the hooks'
// files is its work and stays; a GPU step that changes nothing adds nothing.
func TestGPUCDIStepChangesStay(t *testing.T) {
	h := hostWithGPUs(t)
	h.WriteCDISpec(map[int]string{0: "GPU-aaaa"})
	inj, err := gpu.Resolve([]gpu.Request{{Type: "ANY", Count: 1}}, gpu.Options{Root: h.Root})
	if err != nil {
		t.Fatal(err)
	}
	s := newSnap(t)
	res, out, err := runIn(t, s, inj, `echo mine > /etc/ld.so.cache; echo /opt/lib > /etc/ld.so.conf.d/mine.conf`)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %v, exit %d\n%s", err, res.ExitCode, out)
	}
	if slices.Contains(res.Stubs, "etc/ld.so.cache") || slices.Contains(res.Stubs, "etc/ld.so.conf.d/mine.conf") {
		t.Errorf("Stubs = %q: files the step changed are listed", res.Stubs)
	}
	want := []string{"etc/", "etc/ld.so.cache", "etc/ld.so.conf.d/", "etc/ld.so.conf.d/mine.conf"}
	if names := s.layer(t, res.Stubs); !slices.Equal(names, want) {
		t.Errorf("layer = %q, want %q (the hook's nvcr conf file gone, the step's files kept)", names, want)
	}
	if data, _ := os.ReadFile(filepath.Join(s.upper, "etc/ld.so.cache")); string(data) != "mine\n" {
		t.Errorf("ld.so.cache in the layer = %q", data)
	}

	s = newSnap(t)
	res, out, err = runIn(t, s, inj, "true")
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("run true: %v, exit %d\n%s", err, res.ExitCode, out)
	}
	if names := s.layer(t, res.Stubs); len(names) != 0 {
		t.Errorf("a GPU step running true made a layer with %q", names)
	}
	entries, _ := os.ReadDir(s.upper)
	if len(entries) != 0 {
		t.Errorf("upper dir after removing the stubs holds %v", entries)
	}
}

// TestHookFailure: a failing or missing hook is a setup error naming the
// hook, not "command not found".
func TestHookFailure(t *testing.T) {
	s := newSnap(t)
	bad := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho broken hook >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, hook := range []string{bad, "/nonexistent/hook"} {
		inj := &gpu.Injection{Hooks: []gpu.Hook{{Stage: gpu.StageCreateContainer, Path: hook}}}
		res, out, err := runIn(t, s, inj, "echo ran > /ran")
		if err == nil || errors.Is(err, sandbox.ErrCommandNotFound) || res.ExitCode != 0 || !strings.Contains(err.Error(), "createContainer hook") {
			t.Errorf("hook %s: err %v, exit %d, output %q", hook, err, res.ExitCode, out)
		}
		if hook == bad && (err == nil || !strings.Contains(err.Error(), "broken hook")) {
			t.Errorf("the hook's stderr is not in the error: %v", err)
		}
		if _, err := os.Stat(filepath.Join(s.upper, "ran")); err == nil {
			t.Errorf("the step ran although hook %s failed", hook)
		}
	}
}

// TestDeviceBindReadOnly: a bound device opens for writing, but its host
// node cannot be changed through the bind.
func TestDeviceBindReadOnly(t *testing.T) {
	s := newSnap(t)
	node := filepath.Join(t.TempDir(), "null") // a node of our own: a failing test changes no host file
	if err := unix.Mknod(node, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(node, 0o666); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	spec := sandbox.Spec{
		ID: fmt.Sprintf("gputest-ro-%d", os.Getpid()), StateDir: filepath.Join(t.TempDir(), "state"),
		Rootfs: s.merged, UpperDir: s.upper, Network: sandbox.NetworkNone,
		Args:    []string{"/bin/sh", "-c", "echo data > /dev/sbnull && echo wrote; if chmod 600 /dev/sbnull 2>/tmp/err; then echo chmod done; else echo \"chmod refused: $(cat /tmp/err)\"; fi"},
		Env:     []string{"PATH=/usr/bin"},
		Devices: []sandbox.Device{{Path: "/dev/sbnull", HostPath: node, Major: 1, Minor: 3}},
		Stdout:  &out, Stderr: &out,
	}
	res, err := sandbox.Run(context.Background(), spec)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %v, exit %d\n%s", err, res.ExitCode, out.String())
	}
	wantLines(t, out.String(), "wrote", "chmod refused: chmod: changing permissions of '/dev/sbnull': Read-only file system")
	if st, err := os.Stat(node); err != nil || st.Mode().Perm() != 0o666 {
		t.Errorf("host node changed through the bind: %v, %v", st.Mode(), err)
	}
}
