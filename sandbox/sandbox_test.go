package sandbox

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func mountByDest(spec *specs.Spec, dest string) *specs.Mount {
	for i := range spec.Mounts {
		if spec.Mounts[i].Destination == dest {
			return &spec.Mounts[i]
		}
	}
	return nil
}

func TestRuntimeSpec(t *testing.T) {
	s := Spec{ID: "x", StateDir: "/tmp/state", Rootfs: "/tmp/rootfs", Args: []string{"true"},
		Mounts:  []BindMount{{Source: "/src", Destination: "/data", ReadOnly: true}},
		Devices: []Device{{Path: "/dev/nvidia0", Major: 195, Minor: 0}}}
	spec, err := runtimeSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Process.Terminal || spec.Process.NoNewPrivileges || spec.Hostname != "snapbuild" {
		t.Errorf("process/hostname: %+v %q", spec.Process, spec.Hostname)
	}
	if !reflect.DeepEqual(spec.Process.Capabilities.Bounding, defaultCaps) || len(defaultCaps) != 14 {
		t.Errorf("capabilities = %v", spec.Process.Capabilities.Bounding)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range spec.Linux.Namespaces {
		ns = append(ns, n.Type)
	}
	if !reflect.DeepEqual(ns, []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace}) {
		t.Errorf("namespaces = %v (host network: no network or user namespace)", ns)
	}
	if m := mountByDest(spec, "/sys"); m == nil || m.Type != "bind" || !slices.Contains(m.Options, "ro") {
		t.Errorf("/sys = %+v, want a read-only bind of the host's", m)
	}
	if m := mountByDest(spec, "/sys/fs/cgroup"); m != nil {
		t.Errorf("cgroup mount present: %+v", m)
	}
	if _, err := os.Stat("/etc/resolv.conf"); err == nil {
		if m := mountByDest(spec, "/etc/resolv.conf"); m == nil || !slices.Contains(m.Options, "ro") {
			t.Errorf("resolv.conf = %+v", m)
		}
	}
	if m := mountByDest(spec, "/data"); m == nil || m.Source != "/src" || !reflect.DeepEqual(m.Options, []string{"rbind", "ro"}) {
		t.Errorf("/data = %+v", m)
	}
	if m := mountByDest(spec, "/dev/nvidia0"); m == nil || m.Source != "/dev/nvidia0" {
		t.Errorf("device mount = %+v", m)
	}
	if spec.Linux.Resources == nil || len(spec.Linux.Resources.Devices) != 1 {
		t.Fatalf("device cgroup rules = %+v", spec.Linux.Resources)
	}
	if r := spec.Linux.Resources.Devices[0]; !r.Allow || r.Type != "c" || *r.Major != 195 || *r.Minor != 0 || r.Access != "rwm" {
		t.Errorf("device rule = %+v", r)
	}
	if spec.Linux.Seccomp != nil {
		t.Error("seccomp profile set")
	}

	s.Network, s.Devices = NetworkNone, nil
	spec, err = runtimeSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Linux.Namespaces[len(spec.Linux.Namespaces)-1].Type != specs.NetworkNamespace {
		t.Errorf("network none: namespaces %v", spec.Linux.Namespaces)
	}
	if m := mountByDest(spec, "/etc/resolv.conf"); m != nil {
		t.Errorf("network none still binds resolv.conf")
	}
	if spec.Linux.Resources != nil {
		t.Errorf("resources without devices: %+v", spec.Linux.Resources)
	}
}

func TestRuntimeSpecErrors(t *testing.T) {
	for name, s := range map[string]Spec{
		"no id":           {StateDir: "/s", Rootfs: "/r", Args: []string{"x"}},
		"no args":         {ID: "x", StateDir: "/s", Rootfs: "/r"},
		"relative mount":  {ID: "x", StateDir: "/s", Rootfs: "/r", Args: []string{"x"}, Mounts: []BindMount{{Source: "/a", Destination: "rel"}}},
		"relative device": {ID: "x", StateDir: "/s", Rootfs: "/r", Args: []string{"x"}, Devices: []Device{{Path: "nvidia0"}}},
	} {
		if _, err := runtimeSpec(s); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestMissingTargets(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "proc", "dev"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "hosts"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := []specs.Mount{
		{Destination: "/proc"}, {Destination: "/dev"}, {Destination: "/dev/pts"}, {Destination: "/dev/nvidia0"},
		{Destination: "/sys"}, {Destination: "/etc/resolv.conf"}, {Destination: "/etc/hosts"},
		{Destination: "/data/in/deep"}, {Destination: "/data/in/deep"},
	}
	got := missingTargets(root, mounts)
	want := []string{"sys", "etc/resolv.conf", "data"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("missingTargets = %q, want %q (mounts under /dev are in its tmpfs)", got, want)
	}
}

func TestSubIDCount(t *testing.T) {
	f := filepath.Join(t.TempDir(), "subuid")
	if err := os.WriteFile(f, []byte("alice:100000:65536\n1001:200000:1000\nbob:300000:65536\nbad line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := subIDCount(f, "alice", "1001"); err != nil || n != 66536 {
		t.Errorf("alice = %d, %v; want 66536 (by name and by uid)", n, err)
	}
	if n, _ := subIDCount(f, "carol", "1002"); n != 0 {
		t.Errorf("carol = %d", n)
	}
	if n, err := subIDCount(filepath.Join(t.TempDir(), "missing"), "alice", "1"); err != nil || n != 0 {
		t.Errorf("missing file = %d, %v", n, err)
	}
}
