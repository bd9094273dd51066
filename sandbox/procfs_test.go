package sandbox

import "testing"

// TestFallbackRefused: each fallback answers libcontainer's start error as
// printed in an unprivileged podman container, and no other.
func TestFallbackRefused(t *testing.T) {
	const (
		proc     = `sandbox snapbuild-w17-1: start "/bin/sh -c true": unable to start container process: error during container init: error mounting "proc" to rootfs at "/proc": mount src=proc, dst=/proc, dstFd=/proc/thread-self/fd/17: operation not permitted`
		hostname = `sandbox snapbuild-w17-1: start "/bin/sh -c true": unable to start container process: error during container init: sethostname: operation not permitted`
		devpts   = `sandbox snapbuild-w16-1: start "/bin/sh -c true": unable to start container process: error during container init: error mounting "devpts" to rootfs at "/dev/pts": mount src=devpts, dst=/dev/pts, dstFd=/proc/thread-self/fd/13, flags=MS_NOSUID|MS_NOEXEC, data=newinstance,ptmxmode=0666,mode=0620,gid=5: invalid argument`
	)
	for _, c := range []struct {
		msg  string
		want []bool // per fallback: shared PID, shared UTS
	}{
		{proc, []bool{true, false}},
		{hostname, []bool{false, true}},
		{devpts, []bool{false, false}},
		{"command not found: /bin/sh", []bool{false, false}},
	} {
		for i, f := range fallbacks {
			if got := f.refused(c.msg); got != c.want[i] {
				t.Errorf("fallback %d refused(%q) = %v, want %v", i, c.msg, got, c.want[i])
			}
		}
	}
}
