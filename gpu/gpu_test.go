package gpu

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Request
		err  string
	}{
		{"T4", Request{"T4", 1}, ""},
		{"a100:2", Request{"A100", 2}, ""},
		{"a100-80gb:8", Request{"A100-80GB", 8}, ""},
		{"any", Request{"ANY", 1}, ""},
		{"h100:x", Request{}, "Invalid GPU count: x. Value must be an integer."},
		{"h100:0", Request{}, "Invalid GPU count: 0. Value must be at least 1."},
		{"", Request{}, `empty GPU type in "": use e.g. "T4", "A100:2" or "any"`},
	} {
		got, err := ParseRequest(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseRequest(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRequest(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if s := (Request{"A100", 2}).String(); s != "A100:2" {
		t.Errorf("String = %q", s)
	}
	if s := (Request{"T4", 1}).String(); s != "T4" {
		t.Errorf("String = %q", s)
	}
}

// TestDevices makes a fake /dev with real character device nodes (needs root
// for mknod) and checks discovery.
func TestDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("mknod needs root (CI=true)")
		}
		t.Skip("mknod needs root")
	}
	root := t.TempDir()
	if _, err := Devices(root); err == nil {
		t.Fatal("no /dev: want an error")
	}
	dev := filepath.Join(root, "dev")
	if err := os.MkdirAll(filepath.Join(dev, "nvidia-caps"), 0o755); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, major, minor uint32) {
		if err := unix.Mknod(filepath.Join(dev, name), unix.S_IFCHR|0o666, int(unix.Mkdev(major, minor))); err != nil {
			t.Fatal(err)
		}
	}
	mk("nvidia0", 195, 0)
	mk("nvidia1", 195, 1)
	mk("nvidia-uvm", 511, 0)
	if _, err := Devices(root); err == nil {
		t.Fatal("no nvidiactl: want an error")
	}
	mk("nvidiactl", 195, 255)
	mk("nvidia-caps/nvidia-cap1", 236, 1)
	if err := os.WriteFile(filepath.Join(dev, "nvidia-notadevice"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	devs, err := Devices(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{"/dev/nvidia-caps/nvidia-cap1", dev + "/nvidia-caps/nvidia-cap1", 236, 1},
		{"/dev/nvidia-uvm", dev + "/nvidia-uvm", 511, 0},
		{"/dev/nvidia0", dev + "/nvidia0", 195, 0},
		{"/dev/nvidia1", dev + "/nvidia1", 195, 1},
		{"/dev/nvidiactl", dev + "/nvidiactl", 195, 255},
	}
	if !reflect.DeepEqual(devs, want) {
		t.Errorf("Devices = %+v\nwant %+v", devs, want)
	}
	if err := Check(Request{"ANY", 2}, devs); err != nil {
		t.Error(err)
	}
	if err := Check(Request{"H100", 3}, devs); err == nil || err.Error() != `gpu="H100:3" asks for 3 GPUs, the host has 2` {
		t.Errorf("Check 3 = %v", err)
	}
}
