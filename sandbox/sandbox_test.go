package sandbox

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer/configs"
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
	if spec.Process.Terminal || !spec.Process.NoNewPrivileges || spec.Hostname != "snapbuild" {
		t.Errorf("process/hostname: %+v %q", spec.Process, spec.Hostname)
	}
	// Docker's 14 but the raw-socket one: the host network is shared.
	if c := spec.Process.Capabilities.Bounding; len(c) != 13 || slices.Contains(c, "CAP_NET_RAW") || len(defaultCaps) != 14 {
		t.Errorf("capabilities = %v", c)
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
	if spec.Linux.Seccomp == nil {
		t.Error("no seccomp profile")
	}
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/interrupts", "/sys/devices/virtual/powercap"} {
		if !slices.Contains(spec.Linux.MaskedPaths, p) {
			t.Errorf("masked paths %q lack %s (containerd's default spec masks it)", spec.Linux.MaskedPaths, p)
		}
	}

	s.Terminal = &Terminal{Size: WinSize{Width: 80, Height: 24}}
	if spec, err := runtimeSpec(s); err != nil || !spec.Process.Terminal {
		t.Errorf("Terminal set: process.terminal = %v, %v; want true", spec != nil && spec.Process.Terminal, err)
	}
	s.Terminal = nil

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
	if m := mountByDest(spec, "/etc/hosts"); m == nil || m.Source != filepath.Join(s.StateDir, s.ID+".net", "hosts") || !slices.Contains(m.Options, "ro") {
		t.Errorf("network none: /etc/hosts = %+v, want a read-only bind of the generated hosts file", m)
	}
	if spec.Linux.Resources != nil {
		t.Errorf("resources without devices: %+v", spec.Linux.Resources)
	}
}

// TestRuntimeSpecPrivate: NetworkPrivate gets a network namespace, Docker's
// full default capabilities, and the generated resolv.conf and hosts bound
// read-only from beside the container's state.
func TestRuntimeSpecPrivate(t *testing.T) {
	s := Spec{ID: "x", StateDir: "/tmp/state", Rootfs: "/tmp/rootfs", Args: []string{"true"}, Network: NetworkPrivate}
	spec, err := runtimeSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	if n := spec.Linux.Namespaces; n[len(n)-1].Type != specs.NetworkNamespace {
		t.Errorf("namespaces = %v, want a network namespace", n)
	}
	if c := spec.Process.Capabilities.Bounding; !reflect.DeepEqual(c, defaultCaps) {
		t.Errorf("capabilities = %v, want Docker's %v", c, defaultCaps)
	}
	for dst, src := range map[string]string{"/etc/resolv.conf": "/tmp/state/x.net/resolv.conf", "/etc/hosts": "/tmp/state/x.net/hosts"} {
		if m := mountByDest(spec, dst); m == nil || m.Source != src || !slices.Contains(m.Options, "ro") {
			t.Errorf("%s = %+v, want a read-only bind of %s", dst, m, src)
		}
	}
	dir := t.TempDir()
	s.StateDir, s.Hostname = dir, "box"
	if err := writeNetFiles(s); err != nil {
		t.Fatal(err)
	}
	resolv, _ := os.ReadFile(filepath.Join(dir, "x.net", "resolv.conf"))
	hosts, _ := os.ReadFile(filepath.Join(dir, "x.net", "hosts"))
	if string(resolv) != "nameserver 10.0.2.3\n" {
		t.Errorf("resolv.conf = %q", resolv)
	}
	for _, l := range []string{"127.0.0.1\tlocalhost\n", "10.0.2.100\tbox\n", "10.0.2.2\thost.containers.internal\n"} {
		if !strings.Contains(string(hosts), l) {
			t.Errorf("hosts = %q, want a line %q", hosts, l)
		}
	}
	want := []string{"--configure", "--mtu=65520", "--ready-fd=3", "--exit-fd=4", "--enable-sandbox", "--enable-seccomp", "42", "tap0"}
	if got := slirpArgs(42); !reflect.DeepEqual(got, want) {
		t.Errorf("slirpArgs(42) = %q, want %q (no --disable-host-loopback: the gateway is the host's loopback)", got, want)
	}
}

func TestNetworkCheck(t *testing.T) {
	for _, n := range []Network{"", NetworkHost, NetworkNone, NetworkPrivate} {
		if err := n.Check(); err != nil {
			t.Errorf("Check(%q) = %v", n, err)
		}
	}
	err := Network("bridge").Check()
	if err == nil || !strings.Contains(err.Error(), `"bridge"`) || !strings.Contains(err.Error(), `"private"`) {
		t.Errorf("Check(bridge) = %v, want an error naming the value and the choices", err)
	}
}

func TestRuntimeSpecErrors(t *testing.T) {
	for name, s := range map[string]Spec{
		"no id":           {StateDir: "/s", Rootfs: "/r", Args: []string{"x"}},
		"no args":         {ID: "x", StateDir: "/s", Rootfs: "/r"},
		"relative mount":  {ID: "x", StateDir: "/s", Rootfs: "/r", Args: []string{"x"}, Mounts: []BindMount{{Source: "/a", Destination: "rel"}}},
		"relative device": {ID: "x", StateDir: "/s", Rootfs: "/r", Args: []string{"x"}, Devices: []Device{{Path: "nvidia0"}}},
		"relative host":   {ID: "x", StateDir: "/s", Rootfs: "/r", Args: []string{"x"}, Devices: []Device{{Path: "/dev/nvidia0", HostPath: "dev/nvidia0"}}},
		"relative hook":   {ID: "x", StateDir: "/s", Rootfs: "/r", Args: []string{"x"}, Hooks: []Hook{{Stage: HookCreateContainer, Path: "hook"}}},
		"startContainer":  {ID: "x", StateDir: "/s", Rootfs: "/r", Args: []string{"x"}, Hooks: []Hook{{Stage: "startContainer", Path: "/hook"}}},
		"poststop":        {ID: "x", StateDir: "/s", Rootfs: "/r", Args: []string{"x"}, Hooks: []Hook{{Stage: "poststop", Path: "/hook"}}},
		"no stage":        {ID: "x", StateDir: "/s", Rootfs: "/r", Args: []string{"x"}, Hooks: []Hook{{Path: "/hook"}}},
		"network":         {ID: "x", StateDir: "/s", Rootfs: "/r", Args: []string{"x"}, Network: "bridge"},
		"security":        {ID: "x", StateDir: "/s", Rootfs: "/r", Args: []string{"x"}, Security: "privileged"},
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

func TestRuntimeSpecHooks(t *testing.T) {
	s := Spec{ID: "x", StateDir: "/tmp/state", Rootfs: "/tmp/rootfs", Args: []string{"true"},
		Devices: []Device{{Path: "/dev/nvidia0", HostPath: "/fake/dev/nvidia0", Major: 195}},
		Hooks: []Hook{
			{Stage: HookCreateContainer, Path: "/usr/bin/nvidia-cdi-hook", Args: []string{"nvidia-cdi-hook", "update-ldcache"}, Env: []string{"A=1"}, Timeout: 1500 * time.Millisecond},
			{Stage: HookCreateRuntime, Path: "/bin/rt"},
			{Stage: HookPrestart, Path: "/bin/pre"},
			{Stage: HookPoststart, Path: "/bin/post"},
		}}
	spec, err := runtimeSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	if m := mountByDest(spec, "/dev/nvidia0"); m == nil || m.Source != "/fake/dev/nvidia0" {
		t.Errorf("device bound from %+v, want the host path", m)
	}
	two := 2
	want := &specs.Hooks{
		CreateContainer: []specs.Hook{{Path: "/usr/bin/nvidia-cdi-hook", Args: []string{"nvidia-cdi-hook", "update-ldcache"}, Env: []string{"A=1"}, Timeout: &two}},
		CreateRuntime:   []specs.Hook{{Path: "/bin/rt", Args: []string{"/bin/rt"}}},
		Prestart:        []specs.Hook{{Path: "/bin/pre", Args: []string{"/bin/pre"}}},
		Poststart:       []specs.Hook{{Path: "/bin/post", Args: []string{"/bin/post"}}},
	}
	if !reflect.DeepEqual(spec.Hooks, want) {
		t.Errorf("hooks = %+v\nwant %+v", spec.Hooks, want)
	}
	s.Hooks = nil
	if spec, _ := runtimeSpec(s); spec.Hooks != nil {
		t.Errorf("hooks without hooks: %+v", spec.Hooks)
	}
}

func TestBundle(t *testing.T) {
	dir := t.TempDir()
	s := Spec{ID: "c1", StateDir: dir, Rootfs: "/some/rootfs", Args: []string{"sh", "-c", "x"}, Env: []string{"SECRET=1"}}
	spec, err := runtimeSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := writeBundle(s, spec)
	if err != nil {
		t.Fatal(err)
	}
	if b != filepath.Join(dir, "c1.bundle") {
		t.Errorf("bundle dir = %s", b)
	}
	data, err := os.ReadFile(filepath.Join(b, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got specs.Spec
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Root == nil || got.Root.Path != "/some/rootfs" || len(got.Process.Env) != 0 || !reflect.DeepEqual(got.Process.Args, s.Args) {
		t.Errorf("config.json: root %+v, process %+v", got.Root, got.Process)
	}
	cfg := &configs.Config{Labels: []string{"a=b", "bundle=/cwd", "c=d"}}
	setBundleLabel(cfg, b)
	if want := []string{"a=b", "c=d", "bundle=" + b}; !reflect.DeepEqual(cfg.Labels, want) {
		t.Errorf("labels = %q, want %q", cfg.Labels, want)
	}
}

// TestUpperTracker: entries made between the first scan and started() and
// left alone afterwards are reported; earlier ones, later ones and changed
// ones are not.
func TestUpperTracker(t *testing.T) {
	upper := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		full := filepath.Join(upper, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("before", "x")
	write("touched-before/f", "x")
	tr, err := newUpperTracker(upper)
	if err != nil {
		t.Fatal(err)
	}
	// the runtime and the hooks
	write("etc/ld.so.cache", "hook")
	write("etc/ld.so.conf.d/nvcr.conf", "hook")
	write("usr/lib/libcuda.so.1", "")
	write("changed-by-step", "hook")
	write("removed-by-step", "hook")
	write("touched-before/g", "hook") // the dir changes: reported
	if err := os.Symlink("libcuda.so.1", filepath.Join(upper, "usr/lib/libcuda.so")); err != nil {
		t.Fatal(err)
	}
	if err := tr.started(); err != nil {
		t.Fatal(err)
	}
	// the step
	// (no pause: a same-size rewrite within the clock tick is caught by
	// the content hash)
	write("changed-by-step", "step") // same size as "hook"
	if err := os.Remove(filepath.Join(upper, "removed-by-step")); err != nil {
		t.Fatal(err)
	}
	write("etc/ld.so.conf.d/mine.conf", "step")
	write("new-by-step", "step")
	if err := os.Chmod(filepath.Join(upper, "usr/lib"), 0o700); err != nil {
		t.Fatal(err)
	}
	// etc/ld.so.conf.d got a file from the step: with coarse timestamps
	// (no multigrain ctime) it may look unchanged, which is harmless: a
	// listed directory is only removed when empty.
	got := slices.DeleteFunc(tr.unchanged(), func(p string) bool { return p == "etc/ld.so.conf.d" })
	want := []string{"etc", "etc/ld.so.cache", "etc/ld.so.conf.d/nvcr.conf", "touched-before", "touched-before/g", "usr", "usr/lib/libcuda.so", "usr/lib/libcuda.so.1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unchanged = %q\nwant %q", got, want)
	}
	if m := mergeSorted([]string{"b", "a"}, []string{"a", "c"}); !reflect.DeepEqual(m, []string{"a", "b", "c"}) {
		t.Errorf("mergeSorted = %q", m)
	}
}
