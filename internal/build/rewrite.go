package build

import (
	"fmt"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"
)

// Rewrite returns a copy of def in which fn has edited the ops: a front end
// adds to a converted definition what its text cannot say (an env entry, a
// mount, the ignore-cache flag). fn is called once per op, inputs before the
// ops that read them, with a copy of the op and of its metadata (never nil),
// which it may change in place; it must not change the op's Inputs. The
// terminal op is not passed to fn.
//
// Ops are renamed by the digest of their new bytes, and the inputs, the
// metadata and the source map follow; def is not changed. The error is
// fn's, or ErrInvalidDefinition for ops that cannot be decoded or an input
// that names an op def does not hold earlier.
func Rewrite(def *pb.Definition, fn func(op *pb.Op, md *pb.OpMetadata) error) (*pb.Definition, error) {
	if def == nil {
		return nil, fmt.Errorf("%w: the definition is nil", ErrInvalidDefinition)
	}
	out := &pb.Definition{Metadata: map[string]*pb.OpMetadata{}}
	renamed := make(map[digest.Digest]digest.Digest, len(def.Def))
	for i, dt := range def.Def {
		var op pb.Op
		if err := op.Unmarshal(dt); err != nil {
			return nil, fmt.Errorf("%w: op %d of %d cannot be decoded: %v", ErrInvalidDefinition, i+1, len(def.Def), err)
		}
		old := digest.FromBytes(dt)
		if _, ok := renamed[old]; ok {
			continue // a duplicate, as Load skips it
		}
		for _, in := range op.Inputs {
			d, ok := renamed[digest.Digest(in.Digest)]
			if !ok {
				return nil, fmt.Errorf("%w: op %s reads %s, which is not an earlier op of the definition", ErrInvalidDefinition, short(old), short(digest.Digest(in.Digest)))
			}
			in.Digest = string(d)
		}
		md := &pb.OpMetadata{}
		if m := def.Metadata[string(old)]; m != nil {
			md = proto.Clone(m).(*pb.OpMetadata)
		}
		if op.Op != nil {
			inputs := len(op.Inputs)
			if err := fn(&op, md); err != nil {
				return nil, err
			}
			if len(op.Inputs) != inputs {
				return nil, fmt.Errorf("rewriting op %s: the edit changed its inputs", short(old))
			}
		}
		nd, err := op.Marshal()
		if err != nil {
			return nil, fmt.Errorf("rewriting op %s: %w", short(old), err)
		}
		d := digest.FromBytes(nd)
		renamed[old] = d
		out.Def = append(out.Def, nd)
		out.Metadata[string(d)] = md
	}
	if def.Source != nil {
		src := proto.Clone(def.Source).(*pb.Source)
		locs := make(map[string]*pb.Locations, len(src.Locations))
		for k, l := range src.Locations {
			if d, ok := renamed[digest.Digest(k)]; ok {
				locs[string(d)] = l
			}
		}
		src.Locations = locs
		out.Source = src
	}
	return out, nil
}
