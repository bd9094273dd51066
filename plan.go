package snapbuild

import (
	"context"
)

// PlanState says what a build would do with one step (see Builder.Plan).
type PlanState string

const (
	// PlanCached: the step's result is in the store's cache; a build
	// reuses it and runs nothing.
	PlanCached PlanState = "cached"
	// PlanConfig: the step changes only the image config (ENV, CMD, ...)
	// or names a base already in the store; a build does no work for it.
	PlanConfig PlanState = "config"
	// PlanRun: the step is not cached; a build would run it (a container,
	// a copy, a pull or a Debian bootstrap: PlanStep.Note says which).
	PlanRun PlanState = "run"
	// PlanPending: the step comes after one that would run; its cache key
	// depends on that step's result (the layer's content), so it is not
	// known before the build.
	PlanPending PlanState = "pending"
)

// Plan is what a build of an image would do, found without running a step,
// pulling an image or contacting a mirror (Builder.Plan).
type Plan struct {
	Layers []PlanLayer `json:"layers"`
}

// PlanLayer is one Modal layer of the image: one method call.
type PlanLayer struct {
	Method string `json:"method"` // e.g. "pip_install"
	// Commands are the Dockerfile lines Modal emits for the layer
	// (builder 2025.06), which are also the image's history text.
	Commands []string   `json:"commands"`
	Steps    []PlanStep `json:"steps"`
	// Runtime is true for add_local_* with copy=False: files attached when
	// the image runs, not built into it (Commands and Steps are empty).
	Runtime bool `json:"runtime,omitempty"`
}

// PlanStep is one instruction of a layer.
type PlanStep struct {
	Instruction string    `json:"instruction"`
	State       PlanState `json:"state"`
	// Key is the step's cache key (64 hex digits) for steps that change
	// the filesystem and whose key can be known before building: every
	// such step up to and including the first one that would run. "" for
	// config-only and pending steps.
	Key  string `json:"key,omitempty"`
	Note string `json:"note,omitempty"` // for PlanRun: what the build would do
}

// Steps counts the plan's steps in each state.
func (p Plan) Steps() map[PlanState]int {
	n := map[PlanState]int{}
	for _, l := range p.Layers {
		for _, s := range l.Steps {
			n[s.State]++
		}
	}
	return n
}

// wouldRun stops a dry run (Builder.Plan) at the first step that needs work.
type wouldRun struct{ what string }

func (w *wouldRun) Error() string { return "would " + w.what }

// planCursor collects what a dry run learns about the current step.
type planCursor struct {
	key string
}

// Plan evaluates img against the store as Build would, without running
// anything: for every step it says whether the build would take it from the
// cache, run it, or only change the config, and gives the step's cache key
// where it can be known. Nothing is written to the store (except that the
// python-build-standalone archive an add_python step copies is unpacked into
// the store's cache once, as its files are part of that step's key); no
// container starts, no image is pulled and no mirror is contacted (a
// debian_slim base is looked up as the last one built for its suite, which a
// build checks against the mirror's archive state).
//
// Errors are those of Build that can be found without running a step (the
// Image's own error, *InvalidError for bad definitions and missing local
// files), and ctx.Err().
func (b *Builder) Plan(ctx context.Context, img Image) (Plan, error) {
	var p Plan
	_, err := b.build(ctx, img, &p)
	return p, err
}
