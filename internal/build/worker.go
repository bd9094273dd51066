package build

import (
	"context"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// Ref is one output of a vertex: a read-only filesystem result that a Worker
// made (for the snapshot worker, a committed snapshot). The solver never looks
// inside a Ref; it passes it back to the Worker as an input of a later op,
// stores it in the Cache, and returns the target's to the caller. A Ref must
// stay usable for as long as the Cache holds it; the solver releases nothing.
type Ref any

// Worker performs the ops of a graph. Each method receives the op as
// decoded from the definition and, for ops with inputs, one Ref per entry of
// the op's pb.Op.Inputs, in that order (inputs[i] is the result the op's
// Inputs[i] names). Index fields inside the op (pb.Mount.Input,
// pb.FileAction.Input, pb.MergeInput.Input, ...) index that slice; -1
// (pb.Empty) means an empty filesystem (scratch). A file action's Input or
// SecondaryInput at or past len(inputs) names the result of an earlier
// action of the same op: action number index-len(inputs).
//
// An op that makes several outputs returns them indexed by output number:
// an exec op one per bind mount whose Output is not -1 (pb.SkipOutput;
// secret and ssh mounts make none whatever their Output), a file op
// one per action whose Output is not -1. The solver checks the count and
// fails the op if it is wrong.
//
// Methods are called concurrently, for different vertices, at most the
// solver's parallelism at a time. They must return promptly with ctx's error
// when ctx is cancelled: the solver cancels running ops when another fails.
// The solver checks the op's platform before calling: only ops for the
// solver's platform (or none) reach the Worker.
//
// A Worker may also implement Merger and Differ; without them, merge and
// diff ops fail with an error naming the op. It may implement Selector, for
// finer keys of copies from local sources.
type Worker interface {
	// ContentKey returns a checksum of the content a source op reads when
	// its identifier does not name that content: for local:// sources, the
	// files the op selects (after its include and exclude patterns), so
	// that an edited file changes the cache key. It returns "" for sources
	// whose identifier pins their content (an image by digest, an http
	// source with a checksum), and may return "" for any source whose
	// content it accepts to reuse by identifier alone. It is called for
	// every source op the target needs, before anything runs, including
	// sources below a cache hit; it may be slow (it reads the files).
	ContentKey(ctx context.Context, op *pb.SourceOp) (digest.Digest, error)

	// Source makes the filesystem a source op names: an image from the
	// store or a registry (docker-image://), a local context (local://),
	// a file fetched over http (https://).
	Source(ctx context.Context, op *pb.SourceOp) (Ref, error)

	// Exec runs op.Meta's process on the op's mounts and returns one Ref
	// per output mount.
	Exec(ctx context.Context, op *pb.ExecOp, inputs []Ref) ([]Ref, error)

	// File applies op's actions (copy, mkfile, mkdir, rm, symlink) and
	// returns one Ref per output.
	File(ctx context.Context, op *pb.FileOp, inputs []Ref) ([]Ref, error)
}

// Merger is a Worker that performs merge ops (the layers of several
// inputs stacked in order, as llb.Merge and COPY --link make them).
type Merger interface {
	// Merge returns the merge of inputs, the first at the bottom.
	// inputs holds one Ref per op.Inputs entry, in that order.
	Merge(ctx context.Context, op *pb.MergeOp, inputs []Ref) (Ref, error)
}

// Differ is a Worker that performs diff ops (the change from a lower to an
// upper filesystem, as llb.Diff makes it).
type Differ interface {
	// Diff returns the change from lower to upper. A nil lower or upper is
	// an empty filesystem (the op's input is -1, pb.Empty).
	Diff(ctx context.Context, op *pb.DiffOp, lower, upper Ref) (Ref, error)
}

// Selector is a Worker that can checksum part of a source: the paths the
// copies of a file op read from it. When a file op reads a source only as
// the source of its copies (no action builds on it or looks owners up in
// it), the solver keys that input by SelectionKey of the copies' source
// paths instead of by the whole source's key, as BuildKit keys a copy by the
// content its selectors select: an edit to a file of the build context that
// no copy names (app.py) then leaves a copy of another (COPY
// requirements.txt) and everything built on it cached.
type Selector interface {
	// SelectionKey returns a checksum of what paths select in the files
	// of the source op (after the op's own include and exclude
	// patterns). A path is relative to the source's root, as a copy's
	// source, and may hold the wildcards a copy allows (*, ?, [...]);
	// everything under a selected directory is selected. It returns ""
	// when it cannot tell exactly what the copies read (a symbolic link
	// on the way, a source that is not local): the solver then uses the
	// source's own key.
	SelectionKey(ctx context.Context, op *pb.SourceOp, paths []string) (digest.Digest, error)
}

// Cache stores the outputs of vertices by cache key (see Key). Methods are
// called concurrently.
type Cache interface {
	// Get returns the outputs stored under key, in output order, and
	// whether there were any. An error fails the solve; a miss is
	// (nil, false, nil).
	Get(ctx context.Context, key digest.Digest) ([]Ref, bool, error)

	// Put stores the outputs of the vertex with this key, replacing what
	// was stored under it. It is called once per vertex that ran.
	Put(ctx context.Context, key digest.Digest, outputs []Ref) error
}
