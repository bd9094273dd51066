package sandbox_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/snapbuild/snapbuild/sandbox"
)

// TestNetworkNoneHosts: a sandbox without network gets a hosts file naming
// loopback, as BuildKit gives a RUN --network=none step and Docker a
// --network none container, so localhost resolves; it is a mount over a
// stub that reaches no layer, and the generated file does not outlive the
// run.
func TestNetworkNoneHosts(t *testing.T) {
	s := newSnap(t)
	var out bytes.Buffer
	state := filepath.Join(t.TempDir(), "state")
	spec := sandbox.Spec{
		ID: fmt.Sprintf("nonetest-%d", os.Getpid()), StateDir: state,
		Rootfs: s.merged, UpperDir: s.upper, Network: sandbox.NetworkNone, Hostname: "box",
		Args:   []string{"/bin/sh", "-c", "cat /etc/hosts; ls /etc/resolv.conf"},
		Env:    []string{"PATH=/usr/bin"},
		Stdout: &out, Stderr: &out,
	}
	res, err := sandbox.Run(context.Background(), spec)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	// No resolv.conf: nothing to resolve offline (ls fails, exit 2).
	if res.ExitCode != 2 {
		t.Errorf("exit %d, want 2 (no /etc/resolv.conf)\n%s", res.ExitCode, out.String())
	}
	wantLines(t, out.String(), "127.0.0.1\tlocalhost box", "::1\tlocalhost ip6-localhost ip6-loopback")
	if !slices.Contains(res.Stubs, "etc/hosts") {
		t.Errorf("stubs = %q, want etc/hosts (the rootfs had none)", res.Stubs)
	}
	if names := s.layer(t, res.Stubs); len(names) != 0 {
		t.Errorf("layer = %q, want nothing (the hosts bind is no change)", names)
	}
	if _, err := os.Stat(filepath.Join(state, spec.ID+".net")); !os.IsNotExist(err) {
		t.Errorf("generated network files left after the run: %v", err)
	}
}
