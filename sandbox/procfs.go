package sandbox

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The fallbacks of this process's sandboxes, each set once a sandbox
// failed without it (runFallingBack).
var (
	// sharedPID: the kernel refused a procfs of the sandbox's own; the
	// sandboxes share this process's PID namespace and see its /proc,
	// bound (BuildKit's --oci-worker-no-process-sandbox).
	sharedPID atomic.Bool
	// sharedUTS: sethostname was refused (a seccomp profile that allows
	// it only with CAP_SYS_ADMIN, as podman's default); the sandboxes
	// share this process's UTS namespace and hostname.
	sharedUTS atomic.Bool
)

// SharedPIDNamespace reports whether the sandboxes of this process share its
// PID namespace and /proc, because the kernel refused to mount a new procfs
// (see Run).
func SharedPIDNamespace() bool { return sharedPID.Load() }

// fallback is a way a sandbox can do with less, once the kernel or a
// seccomp profile refuses what it asks for.
type fallback struct {
	flag    *atomic.Bool
	refused func(msg string) bool // whether the start error msg asks for it
	warn    string
	once    sync.Once
}

var fallbacks = []*fallback{
	{
		flag: &sharedPID,
		// libcontainer's failure to mount a new procfs on the container's
		// /proc: the kernel refuses it in a user namespace when the /proc
		// this process sees has paths masked or mounted over (a container
		// runtime's masked paths: podman's and Kubernetes' default,
		// procMount: Default).
		refused: func(msg string) bool {
			return strings.Contains(msg, `mounting "proc" to rootfs at "/proc"`) &&
				(strings.Contains(msg, "operation not permitted") || strings.Contains(msg, "permission denied"))
		},
		warn: "snapbuild: warning: the kernel refused a /proc of the sandbox's own (this runs in a container whose /proc has masked paths): steps share the builder's PID namespace and see its /proc, as BuildKit's --oci-worker-no-process-sandbox; a step can see and signal the builder's processes. A container with an unmasked /proc (podman --security-opt unmask=/proc/*, Kubernetes procMount: Unmasked) keeps steps in their own PID namespace",
	},
	{
		flag:    &sharedUTS,
		refused: func(msg string) bool { return strings.Contains(msg, "sethostname: operation not permitted") },
		warn:    "snapbuild: warning: sethostname was refused (a seccomp profile that allows it only with CAP_SYS_ADMIN): steps share the builder's hostname",
	},
}

// runFallingBack runs s; when it fails to start for a reason a fallback
// handles, it sets that fallback for every later sandbox of the process,
// warns once on standard error, and runs s again.
func runFallingBack(ctx context.Context, s Spec) (Result, error) {
	for {
		res, err := run(ctx, s)
		if err == nil {
			return res, nil
		}
		var fb *fallback
		for _, f := range fallbacks {
			if !f.flag.Load() && f.refused(err.Error()) {
				fb = f
				break
			}
		}
		if fb == nil {
			return res, err
		}
		fb.flag.Store(true)
		fb.once.Do(func() { fmt.Fprintln(os.Stderr, fb.warn) })
	}
}

// shareProc makes spec share the builder's PID namespace and bind its /proc
// (recursively: the masks over it stay), in place of a new PID namespace
// and procfs.
func shareProc(spec *specs.Spec) {
	ns := spec.Linux.Namespaces[:0]
	for _, n := range spec.Linux.Namespaces {
		if n.Type != specs.PIDNamespace {
			ns = append(ns, n)
		}
	}
	spec.Linux.Namespaces = ns
	for i, m := range spec.Mounts {
		if m.Destination == "/proc" {
			spec.Mounts[i] = specs.Mount{Destination: "/proc", Type: "bind", Source: "/proc",
				Options: []string{"rbind", "nosuid", "noexec", "nodev"}}
		}
	}
}

// shareUTS makes spec share the builder's UTS namespace and hostname.
func shareUTS(spec *specs.Spec) {
	spec.Linux.Namespaces = slices.DeleteFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UTSNamespace })
	spec.Hostname = ""
}
