package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/buildkit/solver/pb"
	copy "github.com/tonistiigi/fsutil/copy"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/idmap"
	"github.com/snapbuild/snapbuild/snapshot"
)

// File applies op's actions in order and returns one Ref per output, each
// committed as one layer on the action's base.
//
// An action works on its Input (an input of the op, the result of an earlier
// action, or an empty filesystem) and, for copy, reads its SecondaryInput.
// An action's result that only one later action builds on, and that is no
// output, is not committed: the later action goes on on the same writable
// snapshot, so a chain of actions (COPY a b c /dst) makes one layer.
func (w *Worker) File(ctx context.Context, op *pb.FileOp, inputs []build.Ref) ([]build.Ref, error) {
	f := &fileRun{w: w, ctx: ctx, inputs: inputs, states: make([]*actionState, len(op.Actions))}
	defer f.release()
	nOut := 0
	for _, a := range op.Actions {
		if int(a.Output)+1 > nOut {
			nOut = int(a.Output) + 1
		}
	}
	// How many later actions build on each action's result, and how many
	// read it.
	bases := make([]int, len(op.Actions))
	reads := make([]int, len(op.Actions))
	for i, a := range op.Actions {
		if j, ok := f.earlier(a.Input); ok {
			if j >= i {
				return nil, fmt.Errorf("action %d: its input is action %d, which is not an earlier one", i, j)
			}
			bases[j]++
		}
		for _, in := range readsOf(a) {
			if j, ok := f.earlier(in); ok {
				if j >= i {
					return nil, fmt.Errorf("action %d: it reads action %d, which is not an earlier one", i, j)
				}
				reads[j]++
			}
		}
	}
	outs := make([]build.Ref, nOut)
	for i, a := range op.Actions {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		active, base, err := f.base(a.Input)
		if err != nil {
			return nil, fmt.Errorf("action %d (%s): %w", i, actionName(a), err)
		}
		st := &actionState{active: active, base: base}
		f.states[i] = st
		if err := f.apply(a, active.Rootfs); err != nil {
			return nil, fmt.Errorf("%s: %w", actionName(a), err)
		}
		// Commit what more than one action, or an output, needs as it is.
		if a.Output >= 0 || bases[i] > 1 || (bases[i] == 1 && reads[i] > 0) {
			ref, err := w.commit(ctx, active, base)
			st.active = nil
			if err != nil {
				return nil, fmt.Errorf("%s: %w", actionName(a), err)
			}
			st.ref = ref
			if a.Output >= 0 {
				outs[a.Output] = ref
			}
		}
	}
	for i, o := range outs {
		if o == nil {
			return nil, fmt.Errorf("output %d: no action makes it", i)
		}
	}
	return outs, nil
}

// readsOf returns the inputs an action reads besides its base: the copy
// source and the filesystems owner names are looked up in.
func readsOf(a *pb.FileAction) []int64 {
	var ins []int64
	if a.GetCopy() != nil {
		ins = append(ins, a.SecondaryInput)
	}
	owner := build.ActionOwner(a)
	for _, u := range []*pb.UserOpt{owner.GetUser(), owner.GetGroup()} {
		// Names are looked up in the action's own filesystem when that is
		// the input they name (as llb.WithUser marshals them).
		if n := u.GetByName(); n != nil && n.Input != a.Input {
			ins = append(ins, n.Input)
		}
	}
	return ins
}

// actionName names an action in errors as BuildKit's progress does:
// "copy /src /dst", "mkdir /app".
func actionName(a *pb.FileAction) string {
	switch x := a.Action.(type) {
	case *pb.FileAction_Copy:
		return fmt.Sprintf("copy %s %s", x.Copy.Src, x.Copy.Dest)
	case *pb.FileAction_Mkfile:
		return "mkfile " + x.Mkfile.Path
	case *pb.FileAction_Mkdir:
		return "mkdir " + x.Mkdir.Path
	case *pb.FileAction_Rm:
		return "rm " + x.Rm.Path
	case *pb.FileAction_Symlink:
		return fmt.Sprintf("symlink %s -> %s", x.Symlink.Newpath, x.Symlink.Oldpath)
	}
	return fmt.Sprintf("unknown file action %T", a.Action)
}

// fileRun is the state of one File call.
type fileRun struct {
	w        *Worker
	ctx      context.Context
	inputs   []build.Ref
	states   []*actionState
	releases []func()
}

// actionState is an action's result: a writable snapshot not committed yet
// (active, on base), or a committed ref.
type actionState struct {
	active *snapshot.Active
	base   *Ref
	ref    *Ref
	taken  bool // a later action went on on active
}

func (f *fileRun) release() {
	for _, st := range f.states {
		if st != nil && st.active != nil && !st.taken {
			st.active.Remove()
		}
	}
	for i := len(f.releases) - 1; i >= 0; i-- {
		f.releases[i]()
	}
}

// earlier reports whether input index i names an earlier action's result,
// and which.
func (f *fileRun) earlier(i int64) (int, bool) {
	if i < int64(len(f.inputs)) {
		return 0, false
	}
	return int(i) - len(f.inputs), true
}

// base returns a writable snapshot for an action whose Input is i, and the
// Ref it starts from.
func (f *fileRun) base(i int64) (*snapshot.Active, *Ref, error) {
	if j, ok := f.earlier(i); ok {
		st := f.states[j]
		if st.ref != nil {
			a, err := f.w.prepare(st.ref)
			return a, st.ref, err
		}
		if st.taken {
			return nil, nil, fmt.Errorf("action %d's result is already used", j)
		}
		st.taken = true
		return st.active, st.base, nil
	}
	r, err := inputRef(f.inputs, i)
	if err != nil {
		return nil, nil, err
	}
	a, err := f.w.prepare(r)
	return a, r, err
}

// readable returns a directory with the files input index i names, valid
// until the File call returns.
func (f *fileRun) readable(i int64) (string, error) {
	var r *Ref
	if j, ok := f.earlier(i); ok {
		st := f.states[j]
		switch {
		case st.ref != nil:
			r = st.ref
		case st.taken:
			return "", fmt.Errorf("action %d's result was changed by a later action", j)
		default:
			return st.active.Rootfs, nil
		}
	} else {
		var err error
		if r, err = inputRef(f.inputs, i); err != nil {
			return "", err
		}
	}
	dir, release, err := f.w.view(f.ctx, r)
	if err != nil {
		return "", err
	}
	f.releases = append(f.releases, release)
	return dir, nil
}

// copySource returns the directory a copy reads input index i from: for a
// local source, its directory in place and the patterns to read it
// through (see copyAction); else readable's.
func (f *fileRun) copySource(i int64) (string, *localRef, error) {
	if _, ok := f.earlier(i); !ok {
		r, err := inputRef(f.inputs, i)
		if err != nil {
			return "", nil, err
		}
		if r != nil && r.local != nil {
			return r.local.dir, r.local, nil
		}
	}
	dir, err := f.readable(i)
	return dir, nil, err
}

// apply runs action a on the directory root.
func (f *fileRun) apply(a *pb.FileAction, root string) error {
	var src string
	var local *localRef
	if a.GetCopy() != nil {
		var err error
		if src, local, err = f.copySource(a.SecondaryInput); err != nil {
			return fmt.Errorf("source: %w", err)
		}
	}
	u, err := f.owner(build.ActionOwner(a), a.Input, root)
	if err != nil {
		return err
	}
	switch x := a.Action.(type) {
	case *pb.FileAction_Copy:
		err = copyAction(f.ctx, src, local, root, x.Copy, u)
		if errors.Is(err, errNotInPlace) {
			// The source's patterns cannot be carried over to this copy:
			// read the source's selection as a directory instead.
			if src, err = local.selection(f.ctx, f.w); err == nil {
				err = copyAction(f.ctx, src, nil, root, x.Copy, u)
			}
		}
	case *pb.FileAction_Mkfile:
		err = mkfileAction(root, x.Mkfile, u)
	case *pb.FileAction_Mkdir:
		err = mkdirAction(root, x.Mkdir, u)
	case *pb.FileAction_Rm:
		err = rmAction(root, x.Rm)
	case *pb.FileAction_Symlink:
		err = symlinkAction(root, x.Symlink, u)
	default:
		return errors.New("unknown file action: this worker knows copy, mkfile, mkdir, rm and symlink")
	}
	if u != nil {
		// Rootless, an owner outside the mapped IDs is EINVAL: name it.
		err = idmap.Explain(err, u.UID, u.GID)
	}
	return err
}

// owner resolves a ChownOpt; names are looked up in the passwd and group
// files of the filesystem their NamedUserOpt.Input names: root, the
// action's own filesystem as it is now, when that is the action's input.
func (f *fileRun) owner(c *pb.ChownOpt, input int64, root string) (*copy.User, error) {
	if c == nil {
		return nil, nil
	}
	lookupRoot := func(n *pb.NamedUserOpt) (string, error) {
		switch n.Input {
		case input:
			return root, nil
		case -1:
			return "", nil
		}
		return f.readable(n.Input)
	}
	return resolveOwner(c, lookupRoot)
}
