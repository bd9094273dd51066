package worker

import (
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/solver/pb"
	"github.com/snapbuild/snapbuild/sandbox"
)

func TestWithNetwork(t *testing.T) {
	for _, n := range []sandbox.Network{"", sandbox.NetworkHost, sandbox.NetworkNone, sandbox.NetworkPrivate} {
		var o options
		if err := WithNetwork(n)(&o); err != nil {
			t.Errorf("WithNetwork(%q) = %v", n, err)
		}
		if want := n; (want == "" && o.network != sandbox.NetworkHost) || (want != "" && o.network != want) {
			t.Errorf("WithNetwork(%q) set %q", n, o.network)
		}
	}
	err := WithNetwork("bridge")(&options{})
	if err == nil || !strings.Contains(err.Error(), `"bridge"`) || !strings.Contains(err.Error(), `"private"`) {
		t.Errorf("WithNetwork(bridge) = %v, want an error naming it and the choices", err)
	}
}

// TestRequireNetwork: the constraint is BuildKit's worker filter on the
// network label, added once, beside constraints already there; the op's
// encoding (and so its key) changes with it.
func TestRequireNetwork(t *testing.T) {
	op := &pb.Op{Op: &pb.Op_Exec{Exec: &pb.ExecOp{Meta: &pb.Meta{Args: []string{"true"}}}},
		Constraints: &pb.WorkerConstraints{Filter: []string{"id==w1"}}}
	before, err := op.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	RequireNetwork(op, sandbox.NetworkPrivate)
	RequireNetwork(op, sandbox.NetworkPrivate)
	want := []string{"id==w1", `labels."org.mobyproject.buildkit.worker.network"==private`}
	if !slices.Equal(op.Constraints.Filter, want) {
		t.Errorf("filters = %q, want %q", op.Constraints.Filter, want)
	}
	after, err := op.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(before) == string(after) {
		t.Error("the op's encoding did not change")
	}
	bare := &pb.Op{}
	RequireNetwork(bare, sandbox.NetworkPrivate)
	if bare.Constraints == nil || len(bare.Constraints.Filter) != 1 {
		t.Errorf("op without constraints: %+v", bare.Constraints)
	}
}
