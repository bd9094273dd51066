package build

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// ErrInvalidDefinition is wrapped by every error Load returns for a
// definition it cannot run.
var ErrInvalidDefinition = errors.New("invalid LLB definition")

// OpKind names the kind of a vertex's op, as BuildKit's pb.Op oneof does.
type OpKind string

// The op kinds of LLB.
const (
	KindSource      OpKind = "source"
	KindExec        OpKind = "exec"
	KindFile        OpKind = "file"
	KindMerge       OpKind = "merge"
	KindDiff        OpKind = "diff"
	KindBuild       OpKind = "build"
	KindPassthrough OpKind = "passthrough"
)

// customNameKey is the OpMetadata.Description key where client/llb
// (llb.WithCustomName) and the Dockerfile converter put a vertex's name,
// e.g. "[stage-0 2/3] RUN make".
const customNameKey = "llb.customname"

// Graph is a loaded, checked definition. It is read-only after Load and may
// be solved any number of times, concurrently.
type Graph struct {
	// Target is the output the definition asks for. Its Vertex is nil
	// when the target is an empty filesystem (llb.Scratch().Marshal
	// writes a definition without ops).
	Target Edge

	vertices map[digest.Digest]*Vertex
}

// Vertex is one op of a graph.
type Vertex struct {
	// Digest is the op's digest, as BuildKit computes it: sha256 of the
	// op's marshalled bytes in the definition. Inputs name ops by it.
	Digest digest.Digest
	// Kind is the kind of Op.
	Kind OpKind
	// Op is the decoded op. Its Inputs are resolved in Inputs.
	Op *pb.Op
	// Metadata is the op's entry in the definition's metadata; never nil.
	Metadata *pb.OpMetadata
	// Inputs are the outputs this op reads, in the order of Op.Inputs.
	Inputs []Edge
	// Outputs is the number of outputs the op makes.
	Outputs int
	// Name describes the vertex for people: the llb.customname the
	// front end gave it ("[stage-0 2/3] RUN make"), else a summary of the
	// op as BuildKit prints it (the source's identifier, the exec's args,
	// the file op's actions).
	Name string
}

// Edge is one output of a vertex.
type Edge struct {
	Vertex *Vertex
	Output int
}

// String returns the vertex's kind and name, e.g. `exec "/bin/sh -c make"`.
func (v *Vertex) String() string {
	return fmt.Sprintf("%s %q", v.Kind, v.Name)
}

// Vertex returns the vertex with digest d, or nil when the definition does
// not hold it.
func (g *Graph) Vertex(d digest.Digest) *Vertex {
	return g.vertices[d]
}

// Len returns the number of vertices in the definition, needed or not.
func (g *Graph) Len() int {
	return len(g.vertices)
}

// rawOp is one decoded op of a definition.
type rawOp struct {
	dgst digest.Digest
	op   *pb.Op
	md   *pb.OpMetadata
}

// Load decodes and checks def. The definition follows BuildKit's
// convention: def.Def holds the marshalled ops, each named by the sha256 of
// its bytes, and the last one is the terminal op (no kind, one input: the
// target); an empty def.Def is an empty target, as llb.Scratch().Marshal
// writes it.
//
// Every op is checked, needed by the target or not: an input that names an
// op the definition does not hold or an output that op does not make, an
// index inside an op (mount, file action, merge or diff input) out of range,
// a cycle, an exec without args or root mount, a file op without actions,
// and ops this solver cannot run (build, passthrough) are errors wrapping
// ErrInvalidDefinition that name the op.
func Load(def *pb.Definition) (*Graph, error) {
	if def == nil {
		return nil, fmt.Errorf("%w: the definition is nil", ErrInvalidDefinition)
	}
	if len(def.Def) == 0 {
		return &Graph{vertices: map[digest.Digest]*Vertex{}}, nil
	}
	ops := make([]rawOp, 0, len(def.Def))
	seen := make(map[digest.Digest]bool, len(def.Def))
	for i, dt := range def.Def {
		var op pb.Op
		if err := op.Unmarshal(dt); err != nil {
			return nil, fmt.Errorf("%w: op %d of %d cannot be decoded: %v", ErrInvalidDefinition, i+1, len(def.Def), err)
		}
		d := digest.FromBytes(dt)
		if seen[d] {
			continue
		}
		seen[d] = true
		ops = append(ops, rawOp{dgst: d, op: &op, md: def.Metadata[string(d)]})
	}
	last := ops[len(ops)-1]
	if last.op.Op != nil {
		return nil, fmt.Errorf("%w: the last op is a %s op (%s); it must be the terminal op, with no kind and one input, as llb.State.Marshal writes it", ErrInvalidDefinition, kindOf(last.op), short(last.dgst))
	}
	if len(last.op.Inputs) != 1 {
		return nil, fmt.Errorf("%w: the terminal op (%s) has %d inputs; it must have one, the target", ErrInvalidDefinition, short(last.dgst), len(last.op.Inputs))
	}
	return link(ops[:len(ops)-1], last.op.Inputs[0])
}

// link builds the graph of ops with target as its target and checks it.
func link(ops []rawOp, target *pb.Input) (*Graph, error) {
	g := &Graph{vertices: make(map[digest.Digest]*Vertex, len(ops))}
	for _, r := range ops {
		md := r.md
		if md == nil {
			md = &pb.OpMetadata{}
		}
		v := &Vertex{Digest: r.dgst, Kind: kindOf(r.op), Op: r.op, Metadata: md}
		n, err := checkOp(r.op)
		if err != nil {
			return nil, fmt.Errorf("%w: %s op %s: %v", ErrInvalidDefinition, v.Kind, short(v.Digest), err)
		}
		v.Outputs = n
		g.vertices[r.dgst] = v
	}
	for _, r := range ops {
		v := g.vertices[r.dgst]
		for i, in := range v.Op.Inputs {
			e, err := g.edge(in)
			if err != nil {
				return nil, fmt.Errorf("%w: %s op %s: input %d: %v", ErrInvalidDefinition, v.Kind, short(v.Digest), i, err)
			}
			v.Inputs = append(v.Inputs, e)
		}
	}
	if err := g.checkAcyclic(); err != nil {
		return nil, err
	}
	t, err := g.edge(target)
	if err != nil {
		return nil, fmt.Errorf("%w: the target: %v", ErrInvalidDefinition, err)
	}
	g.Target = t
	// Names last: a merge or diff is named after its inputs.
	named := map[*Vertex]bool{}
	for _, r := range ops {
		nameOf(g.vertices[r.dgst], named)
	}
	return g, nil
}

// edge resolves an input to the output it names.
func (g *Graph) edge(in *pb.Input) (Edge, error) {
	d := digest.Digest(in.Digest)
	v, ok := g.vertices[d]
	if !ok {
		return Edge{}, fmt.Errorf("names op %s, which the definition does not hold", short(d))
	}
	if in.Index < 0 || in.Index >= int64(v.Outputs) {
		return Edge{}, fmt.Errorf("names output %d of %s op %s, which makes %d outputs", in.Index, v.Kind, short(d), v.Outputs)
	}
	return Edge{Vertex: v, Output: int(in.Index)}, nil
}

// checkAcyclic fails when an op depends on itself. Digests name ops by
// content, so a definition made by marshalling cannot hold a cycle; a
// crafted one could, and it must not send the solver into a loop.
func (g *Graph) checkAcyclic() error {
	const (
		visiting = 1
		done     = 2
	)
	state := make(map[*Vertex]int, len(g.vertices))
	var visit func(v *Vertex, path []*Vertex) error
	visit = func(v *Vertex, path []*Vertex) error {
		switch state[v] {
		case done:
			return nil
		case visiting:
			var names []string
			for _, p := range append(path, v) {
				names = append(names, short(p.Digest))
			}
			return fmt.Errorf("%w: the ops form a cycle: %s", ErrInvalidDefinition, strings.Join(names, " -> "))
		}
		state[v] = visiting
		for _, in := range v.Inputs {
			if err := visit(in.Vertex, append(path, v)); err != nil {
				return err
			}
		}
		state[v] = done
		return nil
	}
	for _, v := range g.sorted() {
		if err := visit(v, nil); err != nil {
			return err
		}
	}
	return nil
}

// sorted returns the vertices ordered by digest, so that checks report the
// same error on every run.
func (g *Graph) sorted() []*Vertex {
	vs := make([]*Vertex, 0, len(g.vertices))
	for _, v := range g.vertices {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b *Vertex) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return vs
}

// kindOf returns the kind of op, or "unknown".
func kindOf(op *pb.Op) OpKind {
	switch op.Op.(type) {
	case *pb.Op_Source:
		return KindSource
	case *pb.Op_Exec:
		return KindExec
	case *pb.Op_File:
		return KindFile
	case *pb.Op_Merge:
		return KindMerge
	case *pb.Op_Diff:
		return KindDiff
	case *pb.Op_Build:
		return KindBuild
	case *pb.Op_Passthrough:
		return KindPassthrough
	case nil:
		return "terminal"
	}
	return "unknown"
}

// checkOp checks the fields of op that the solver and the Worker rely on
// and returns the number of outputs it makes.
func checkOp(op *pb.Op) (int, error) {
	nIn := int64(len(op.Inputs))
	inRange := func(what string, i int64) error {
		if i == int64(pb.Empty) || (i >= 0 && i < nIn) {
			return nil
		}
		return fmt.Errorf("%s names input %d; the op has %d inputs (or -1 for scratch)", what, i, nIn)
	}
	switch o := op.Op.(type) {
	case *pb.Op_Source:
		if o.Source == nil || o.Source.Identifier == "" {
			return 0, errors.New("the source has no identifier")
		}
		if nIn != 0 {
			return 0, fmt.Errorf("a source takes no inputs; it has %d", nIn)
		}
		return 1, nil
	case *pb.Op_Exec:
		e := o.Exec
		if e == nil || e.Meta == nil || len(e.Meta.Args) == 0 {
			return 0, errors.New("the exec has no process args")
		}
		root := false
		var outs []int64
		for i, m := range e.Mounts {
			if m.Dest == pb.RootMount {
				root = true
			}
			if err := inRange(fmt.Sprintf("mount %d (%s)", i, m.Dest), m.Input); err != nil {
				return 0, err
			}
			// Only bind mounts make outputs, as in BuildKit: llb writes
			// secret and ssh mounts with Output 0 (unset), not -1.
			if m.MountType == pb.MountType_BIND && m.Output != int64(pb.SkipOutput) {
				outs = append(outs, m.Output)
			}
		}
		if !root {
			return 0, errors.New("the exec has no root mount (a mount at /)")
		}
		return dense("mount outputs", outs)
	case *pb.Op_File:
		f := o.File
		if f == nil || len(f.Actions) == 0 {
			return 0, errors.New("the file op has no actions")
		}
		var outs []int64
		for i, a := range f.Actions {
			if a.Action == nil {
				return 0, fmt.Errorf("action %d has no kind", i)
			}
			// An index past the op's inputs names the result of an
			// earlier action: input count + action index.
			for _, ref := range []struct {
				what string
				i    int64
			}{{"input", a.Input}, {"secondary input", a.SecondaryInput}} {
				if ref.i >= nIn && ref.i < nIn+int64(i) {
					continue
				}
				if err := inRange(fmt.Sprintf("action %d's %s", i, ref.what), ref.i); err != nil {
					return 0, fmt.Errorf("%v, or an earlier action (%d to %d)", err, nIn, nIn+int64(i)-1)
				}
			}
			if a.Output != int64(pb.SkipOutput) {
				outs = append(outs, a.Output)
			}
		}
		return dense("action outputs", outs)
	case *pb.Op_Merge:
		if o.Merge == nil || len(o.Merge.Inputs) == 0 {
			return 0, errors.New("the merge has no inputs")
		}
		if int64(len(o.Merge.Inputs)) != nIn {
			return 0, fmt.Errorf("the merge lists %d inputs; the op has %d", len(o.Merge.Inputs), nIn)
		}
		for i, m := range o.Merge.Inputs {
			if m.Input < 0 || m.Input >= nIn {
				return 0, fmt.Errorf("merge input %d names input %d; the op has %d inputs", i, m.Input, nIn)
			}
		}
		return 1, nil
	case *pb.Op_Diff:
		d := o.Diff
		if d == nil || d.Lower == nil || d.Upper == nil {
			return 0, errors.New("the diff lacks its lower or upper input")
		}
		if err := inRange("the lower side", d.Lower.Input); err != nil {
			return 0, err
		}
		if err := inRange("the upper side", d.Upper.Input); err != nil {
			return 0, err
		}
		return 1, nil
	case *pb.Op_Build:
		return 0, errors.New("build ops (a nested definition solved by a frontend) are not supported")
	case *pb.Op_Passthrough:
		return 0, errors.New("passthrough ops are not supported")
	case nil:
		return 0, errors.New("the op has no kind; only the last op of a definition (the terminal) may have none")
	}
	return 0, fmt.Errorf("unknown op type %T", op.Op)
}

// dense checks that outs numbers outputs 0 to n-1, each once, and returns n.
func dense(what string, outs []int64) (int, error) {
	seen := make([]bool, len(outs))
	for _, o := range outs {
		if o < 0 || o >= int64(len(outs)) {
			return 0, fmt.Errorf("%s must be numbered 0 to %d; found %d", what, len(outs)-1, o)
		}
		if seen[o] {
			return 0, fmt.Errorf("%s: output %d is made twice", what, o)
		}
		seen[o] = true
	}
	return len(outs), nil
}

// nameOf sets v.Name, naming v's inputs first where a merge or a diff needs
// them.
func nameOf(v *Vertex, named map[*Vertex]bool) string {
	if named[v] {
		return v.Name
	}
	named[v] = true
	if n := v.Metadata.Description[customNameKey]; n != "" {
		v.Name = n
		return n
	}
	switch o := v.Op.Op.(type) {
	case *pb.Op_Source:
		v.Name = o.Source.Identifier
	case *pb.Op_Exec:
		v.Name = strings.Join(o.Exec.Meta.Args, " ")
	case *pb.Op_File:
		v.Name = fileOpName(o.File.Actions)
	case *pb.Op_Merge:
		names := make([]string, len(v.Inputs))
		for i, in := range v.Inputs {
			names[i] = nameOf(in.Vertex, named)
		}
		v.Name = "merge (" + strings.Join(names, ", ") + ")"
	case *pb.Op_Diff:
		side := func(i int64) string {
			if i == int64(pb.Empty) {
				return "scratch"
			}
			return "(" + nameOf(v.Inputs[i].Vertex, named) + ")"
		}
		v.Name = "diff " + side(o.Diff.Lower.Input) + " -> " + side(o.Diff.Upper.Input)
	}
	return v.Name
}

// fileOpName summarises a file op's actions as BuildKit's progress does.
func fileOpName(actions []*pb.FileAction) string {
	names := make([]string, 0, len(actions))
	for _, a := range actions {
		switch a := a.Action.(type) {
		case *pb.FileAction_Mkdir:
			names = append(names, "mkdir "+a.Mkdir.Path)
		case *pb.FileAction_Mkfile:
			names = append(names, "mkfile "+a.Mkfile.Path)
		case *pb.FileAction_Rm:
			names = append(names, "rm "+a.Rm.Path)
		case *pb.FileAction_Copy:
			names = append(names, "copy "+a.Copy.Src+" "+a.Copy.Dest)
		case *pb.FileAction_Symlink:
			names = append(names, "symlink "+a.Symlink.Oldpath+" -> "+a.Symlink.Newpath)
		}
	}
	return strings.Join(names, ", ")
}

// short returns d's algorithm and first 12 hex digits, as people read it.
func short(d digest.Digest) string {
	s := string(d)
	if i := strings.IndexByte(s, ':'); i >= 0 && len(s) > i+13 {
		return s[:i+13]
	}
	return s
}

// ActionOwner returns the owner a file action gives the entries it makes
// (copy, mkfile, mkdir, symlink), or nil: for rm and actions without one.
func ActionOwner(a *pb.FileAction) *pb.ChownOpt {
	switch x := a.Action.(type) {
	case *pb.FileAction_Copy:
		return x.Copy.Owner
	case *pb.FileAction_Mkfile:
		return x.Mkfile.Owner
	case *pb.FileAction_Mkdir:
		return x.Mkdir.Owner
	case *pb.FileAction_Symlink:
		return x.Symlink.Owner
	}
	return nil
}
