package build

import (
	"encoding/json"
	"fmt"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// KeyVersion is mixed into every cache key. Change it whenever the schema
// below changes, or what a Worker makes of the same op changes, so that
// results made under the old rules miss instead of being reused wrongly.
//
// A vertex's cache key is the sha256 digest of this JSON object (fields in
// this order, no spaces):
//
//	{"v":      KeyVersion,
//	 "kind":   the op kind ("source", "exec", "file", "merge", "diff"),
//	 "op":     sha256 of the op's deterministic protobuf encoding with its
//	           Inputs removed: every field of the op itself (exec args,
//	           env, cwd, user, mounts with their selectors and types,
//	           network, security, secret env, CDI devices; file actions
//	           with paths, owners, modes, patterns; source identifier and
//	           attrs but for the transport ones (local.session,
//	           local.unique, local.sharedkeyhint); the op's platform and
//	           constraints),
//	 "platform": the platform the op runs for, "os/arch[/variant]": the
//	           op's own, else the solver's,
//	 "inputs": [{"key": input's vertex key, "output": output index}, ...]
//	           one per pb.Op.Inputs entry, in that order; for a source
//	           input a file op only copies from, the Worker's
//	           Selector.SelectionKey of the copies' source paths, when it
//	           gives one, instead of the input's key,
//	 "content": Worker.ContentKey's checksum for a source whose identifier
//	           does not name its content (local://), else "",
//	 "salt":   the solver's key salt (WithKeySalt), Worker settings that
//	           change its results}
//
// Inputs enter by their keys, not by their op digests, so a change below a
// vertex (a local file, an exec arg three ops down) changes every key above
// it, and keys are known before anything runs. Left out on purpose: all of
// the op's metadata (pb.OpMetadata): its description and custom name, the
// progress group, the export-cache flag, capabilities, resource limits (a
// successful op makes the same files under other limits) and the
// ignore-cache flag (which governs lookups, not what is stored).
const KeyVersion = "snapbuild-llb/2"

// transportAttrs are source attrs that say how a client's files reach the
// builder, not which files: llb.Local sets a random local.unique on every
// Marshal, so keeping them would make every build of a context miss.
// BuildKit leaves them out of a local source's key too.
var transportAttrs = []string{pb.AttrLocalSessionID, pb.AttrLocalUniqueID, pb.AttrSharedKeyHint}

// keyInput is one entry of a key's "inputs".
type keyInput struct {
	Key    digest.Digest `json:"key"`
	Output int           `json:"output"`
}

// vertexKey computes the cache key of v from the keys of its inputs (one per
// v.Inputs entry), the content checksum of a source ("" for none), the
// platform the op runs for and the solver's salt. It is the only function
// that makes cache keys; KeyVersion documents the schema.
func vertexKey(v *Vertex, inputs []digest.Digest, content digest.Digest, platform, salt string) (digest.Digest, error) {
	if len(inputs) != len(v.Inputs) {
		return "", fmt.Errorf("%d input keys for %d inputs", len(inputs), len(v.Inputs))
	}
	op := v.Op.CloneVT()
	op.Inputs = nil
	if src := op.GetSource(); src != nil {
		for _, a := range transportAttrs {
			delete(src.Attrs, a)
		}
	}
	dt, err := op.Marshal()
	if err != nil {
		return "", fmt.Errorf("encoding the op: %w", err)
	}
	ins := make([]keyInput, len(inputs))
	for i, k := range inputs {
		ins[i] = keyInput{Key: k, Output: v.Inputs[i].Output}
	}
	bs, err := json.Marshal(struct {
		Version  string        `json:"v"`
		Kind     OpKind        `json:"kind"`
		Op       digest.Digest `json:"op"`
		Platform string        `json:"platform"`
		Inputs   []keyInput    `json:"inputs"`
		Content  digest.Digest `json:"content"`
		Salt     string        `json:"salt"`
	}{KeyVersion, v.Kind, digest.FromBytes(dt), platform, ins, content, salt})
	if err != nil {
		return "", err
	}
	return digest.FromBytes(bs), nil
}

// platformString formats a platform as "os/arch[/variant]".
func platformString(os, arch, variant string) string {
	s := os + "/" + arch
	if variant != "" {
		s += "/" + variant
	}
	return s
}
