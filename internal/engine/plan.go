package engine

import (
	"context"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// PlanState is snapbuild.PlanState.
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

// Plan is snapbuild.Plan.
type Plan struct {
	Layers []PlanLayer `json:"layers"`
}

// PlanLayer is snapbuild.PlanLayer.
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

// PlanStep is snapbuild.PlanStep.
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

// Plan is snapbuild.Builder.Plan.
func (b *Engine) Plan(ctx context.Context, layers []*modal.Layer) (Plan, error) {
	var p Plan
	_, err := b.run(nil).build(ctx, layers, &p)
	return p, err
}
