package remote

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"

	"github.com/snapbuild/snapbuild/internal/build"
)

// StoreID is the name under which a solve offers the local blob store to
// buildkitd (SolveOpt.OCIStores), as the oci-layout sources made by
// RewriteSources name it (pb.AttrOCILayoutStoreID).
const StoreID = "snapbuild"

// RewriteSources returns a copy of def in which every docker-image://
// source pinned to a manifest digest that has reports present
// (docker-image://REF@sha256:…) is an oci-layout:// source of the same
// manifest in store StoreID, with the source's other attributes kept.
// A reference without a digest, or with a digest has reports missing,
// stays a docker-image:// source for buildkitd to pull. The ops are renamed
// by their new digests (build.Rewrite); def is not changed.
func RewriteSources(def *pb.Definition, has func(digest.Digest) bool) (*pb.Definition, error) {
	return build.Rewrite(def, func(op *pb.Op, _ *pb.OpMetadata) error {
		src := op.GetSource()
		if src == nil {
			return nil
		}
		id, ok := OCILayoutIdentifier(src.Identifier, has)
		if !ok {
			return nil
		}
		src.Identifier = id
		if src.Attrs == nil {
			src.Attrs = map[string]string{}
		}
		src.Attrs[pb.AttrOCILayoutStoreID] = StoreID
		return nil
	})
}

// OCILayoutIdentifier returns the oci-layout:// identifier of source
// identifier id, a docker-image:// source pinned to a manifest digest has
// reports present (oci-layout://NAME@DIGEST, NAME without its tag), and
// true; or "" and false for any other source.
func OCILayoutIdentifier(id string, has func(digest.Digest) bool) (string, bool) {
	ref, ok := strings.CutPrefix(id, "docker-image://")
	if !ok {
		return "", false
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", false
	}
	dg, ok := named.(reference.Digested)
	if !ok || !has(dg.Digest()) {
		return "", false
	}
	return fmt.Sprintf("oci-layout://%s@%s", reference.TrimNamed(named).String(), dg.Digest()), true
}
