package worker

import (
	"context"
	"fmt"
	"slices"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/snapshot"
)

// Merge returns op's inputs stacked in order, the first at the bottom, as
// BuildKit's merge op (llb.Merge) makes them. COPY --link is such a merge:
// the stage's filesystem, then the copy made on an empty filesystem.
//
// The result's layers are the inputs' layers concatenated, each blob as it
// is (no layer is rewritten or recompressed), so a layer keeps its digest
// whatever it is merged onto: the copied layer of COPY --link does not
// depend on the base. Its files are those layers applied in order, as an
// image's are: a later input's file replaces an earlier input's, a later
// input's directory entry replaces the owner, mode and mtime of an earlier
// input's directory (so the parent directories a --link copy makes
// reset those of the base, as in BuildKit), and a later input's whiteouts
// delete an earlier input's files.
//
// Empty inputs (pb.Empty, or results with no layers) add nothing: the merge
// of one non-empty input is that input, of none an empty filesystem. A
// local source (a directory) is first made into one layer, as a copy of it
// onto an empty filesystem would be. The result's snapshot is committed
// under its chain ID; layers without a snapshot on the chain below them are
// unpacked from their blobs, as for an image source.
func (w *Worker) Merge(ctx context.Context, op *pb.MergeOp, inputs []build.Ref) (build.Ref, error) {
	var (
		parts []*Ref
		index []int // parts[i] is op.Inputs[index[i]]
	)
	for i, in := range op.Inputs {
		r, err := inputRef(inputs, in.Input)
		if err != nil {
			return nil, fmt.Errorf("merge input %d: %w", i, err)
		}
		if r, err = w.layered(ctx, r); err != nil {
			return nil, fmt.Errorf("merge input %d: %w", i, err)
		}
		if len(r.Layers) > 0 {
			parts = append(parts, r)
			index = append(index, i)
		}
	}
	switch len(parts) {
	case 0:
		return &Ref{}, nil
	case 1:
		return parts[0], nil
	}
	r := parts[0]
	for i, p := range parts[1:] {
		var err error
		if r, err = w.stack(ctx, r, p.Layers, p.DiffIDs); err != nil {
			return nil, fmt.Errorf("merge input %d: unpacking its layers: %w", index[i+1], err)
		}
	}
	return r, nil
}

// Diff returns the change from lower to upper, as BuildKit's diff op
// (llb.Diff) makes it: a filesystem whose layers, applied on lower, give
// upper.
//
//   - lower empty (nil, pb.Empty or no layers): upper itself;
//   - lower and upper the same filesystem: an empty filesystem;
//   - lower's layers the first layers of upper (upper was built on lower,
//     the common case): upper's other layers, each blob as it is;
//   - otherwise (upper empty included): one new zstd layer, the overlay
//     differ's record of a writable snapshot of lower made equal to upper:
//     upper's entries that differ from lower's in type, owner, mode, mtime,
//     size, content, symlink target, device number or xattrs, and whiteouts
//     for lower's entries that upper lacks.
//
// Whiteouts in the result delete files when it is merged onto lower (or
// onto anything holding those files); in the result's own filesystem they
// hide nothing. A local source is first made into one layer, as for Merge.
func (w *Worker) Diff(ctx context.Context, op *pb.DiffOp, lower, upper build.Ref) (build.Ref, error) {
	lo, err := asRef(lower)
	if err != nil {
		return nil, fmt.Errorf("diff lower: %w", err)
	}
	up, err := asRef(upper)
	if err != nil {
		return nil, fmt.Errorf("diff upper: %w", err)
	}
	if lo, err = w.layered(ctx, lo); err != nil {
		return nil, fmt.Errorf("diff lower: %w", err)
	}
	if len(lo.Layers) == 0 {
		if up == nil {
			return &Ref{}, nil
		}
		return up, nil
	}
	if up, err = w.layered(ctx, up); err != nil {
		return nil, fmt.Errorf("diff upper: %w", err)
	}
	if up.Chain == lo.Chain {
		return &Ref{}, nil
	}
	if n := len(lo.DiffIDs); n <= len(up.DiffIDs) && slices.Equal(lo.DiffIDs, up.DiffIDs[:n]) {
		r, err := w.stack(ctx, &Ref{}, up.Layers[n:], up.DiffIDs[n:])
		if err != nil {
			return nil, fmt.Errorf("diff: %w", err)
		}
		return r, nil
	}
	r, err := w.changeLayer(ctx, lo, up)
	if err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	return r, nil
}

// layered returns r as a layered filesystem: nil becomes an empty one, a
// local source the layer a copy of its directory onto an empty filesystem
// makes (owners, modes, xattrs and mtimes as they are).
func (w *Worker) layered(ctx context.Context, r *Ref) (*Ref, error) {
	switch {
	case r == nil:
		return &Ref{}, nil
	case r.Dir == "":
		return r, nil
	}
	src, release, err := w.view(ctx, r)
	if err != nil {
		return nil, err
	}
	defer release()
	a, err := w.prepare(nil)
	if err != nil {
		return nil, err
	}
	if err := copyLocal(ctx, src, a.Rootfs, &fsutil.FilterOpt{}); err != nil {
		a.Remove()
		return nil, fmt.Errorf("making a layer of local source %s: %w", r.Dir, err)
	}
	return w.commit(ctx, a, nil)
}

// stack returns base with layers (whose uncompressed digests are diffIDs)
// on top, unpacking each layer whose snapshot on the chain below it does
// not exist yet.
func (w *Worker) stack(ctx context.Context, base *Ref, layers []ocispec.Descriptor, diffIDs []digest.Digest) (*Ref, error) {
	if len(layers) != len(diffIDs) {
		return nil, fmt.Errorf("%d layers with %d diffIDs", len(layers), len(diffIDs))
	}
	r := &Ref{Chain: base.Chain, Layers: slices.Clone(base.Layers), DiffIDs: slices.Clone(base.DiffIDs)}
	for i, l := range layers {
		parent := r.Chain
		r.Chain = snapshot.ChainID(parent, diffIDs[i])
		r.Layers = append(r.Layers, l)
		r.DiffIDs = append(r.DiffIDs, diffIDs[i])
		if err := w.unpack(ctx, parent, r.Chain, l, diffIDs[i]); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	return r, nil
}

// changeLayer makes the layer that turns lower into upper: a writable
// snapshot of lower is made equal to upper (syncTree), and the overlay
// differ records what that changed.
func (w *Worker) changeLayer(ctx context.Context, lower, upper *Ref) (*Ref, error) {
	src, release, err := w.view(ctx, upper)
	if err != nil {
		return nil, err
	}
	defer release()
	a, err := w.prepare(lower)
	if err != nil {
		return nil, err
	}
	defer a.Remove()
	if err := syncTree(ctx, src, a.Rootfs); err != nil {
		return nil, err
	}
	layer, stats, err := w.writeDiff(ctx, a)
	if err != nil {
		return nil, err
	}
	if stats.Entries == 0 {
		return &Ref{}, nil
	}
	return w.stack(ctx, &Ref{}, []ocispec.Descriptor{layer.Descriptor}, []digest.Digest{layer.DiffID})
}

var (
	_ build.Merger = (*Worker)(nil)
	_ build.Differ = (*Worker)(nil)
)
