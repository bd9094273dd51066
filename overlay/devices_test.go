package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"go.podman.io/storage/pkg/unshare"
	"golang.org/x/sys/unix"
)

// devicesLayer has two device nodes among other entries.
func devicesLayer() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "./dev/loop0", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 7},
		{Name: "etc/hostname", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4},
	} {
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
	}
	if _, err := tw.Write([]byte("box\n")); err != nil {
		panic(err)
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

const devicesChildEnv = "OVERLAY_TEST_DEVICES_CHILD"

// TestMain runs applyDevicesChild in the child process that
// TestApplySkippedDevicesRootless starts in a user namespace.
func TestMain(m *testing.M) {
	if dir := os.Getenv(devicesChildEnv); dir != "" {
		os.Exit(applyDevicesChild(dir))
	}
	os.Exit(m.Run())
}

// applyDevicesChild applies devicesLayer as a rootless build does and
// prints the devices Apply reports, one a line.
func applyDevicesChild(dir string) int {
	var out strings.Builder
	_, err := Apply(context.Background(), dir, bytes.NewReader(devicesLayer()), ApplyOptions{UserXattr: true, SkippedDevice: func(name string) {
		out.WriteString(name + "\n")
	}})
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 2
	}
	os.Stdout.WriteString(out.String())
	return 0
}

// Rootless, the unpacker cannot create device nodes: Apply names each one
// it skipped, and the rest of the layer is there.
func TestApplySkippedDevicesRootless(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), devicesChildEnv+"="+dir, unshare.UsernsEnvName+"=done")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot start a process in a user namespace (CI=true: not skipping): %v", err)
		}
		t.Skipf("cannot start a process in a user namespace: %v", err)
	}
	if err != nil {
		t.Fatalf("child: %v: %s%s", err, out, ee.Stderr)
	}
	if got, want := string(out), "dev/null\ndev/loop0\n"; got != want {
		t.Errorf("skipped devices %q, want %q", got, want)
	}
	if b, err := os.ReadFile(dir + "/etc/hostname"); err != nil || string(b) != "box\n" {
		t.Errorf("etc/hostname: %q, %v", b, err)
	}
	for _, p := range []string{"dev/null", "dev/loop0"} {
		if _, err := os.Lstat(dir + "/" + p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want it skipped", p, err)
		}
	}
}

// As root the devices are created and none is reported.
func TestApplyDevicesRoot(t *testing.T) {
	needRoot(t)
	if unshare.IsRootless() {
		t.Skip("rootless: TestApplySkippedDevicesRootless covers it")
	}
	dir := t.TempDir()
	var skipped []string
	_, err := Apply(t.Context(), dir, bytes.NewReader(devicesLayer()), ApplyOptions{SkippedDevice: func(name string) { skipped = append(skipped, name) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) > 0 {
		t.Errorf("skipped %q as root", skipped)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir+"/dev/null", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("dev/null: mode %o, %v; want a character device", st.Mode, err)
	}
}
