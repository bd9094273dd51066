package snapbuild

import "github.com/snapbuild/snapbuild/internal/engine"

// Stats counts what a build did. Entries are what the user wrote and what
// the progress numbers [n/N] (see Event); steps are the Dockerfile
// instructions they lower to.
type Stats = engine.Stats

// Result describes a built image: ID ("im-" + 22 base62 characters, as
// Modal's), Manifest (its descriptor in the store), Config (the image config
// with Docker's extensions), Stats, and Mounts (the add_local_* copy=False
// files, attached by Run and written as a last layer by Export; TagResult
// keeps them with a name).
type Result = engine.Result

// ImageInfo describes a stored image.
type ImageInfo = engine.ImageInfo

// BaseInfo describes a pinned Debian base (Builder.Bases): ID (short hash of
// its definition), Suite, Packages (on top of minbase), Python version,
// Release ("Debian 12.8"), ArchiveDate and InRelease (sha256 of the suite's
// InRelease file) of the archive it was made from, Built (when it was
// bootstrapped), Size (of its layer, compressed, in bytes), Images (the
// named images built on it) and Present (false once prune removed its
// files).
type BaseInfo = engine.BaseInfo

// BaseUpdate is what Builder.UpdateBases did to a pinned base: Old and New
// archive states ("Debian 12.8 of 2024-11-09"), Updated when it was
// bootstrapped again, and Changes (the release and the packages whose
// versions changed, as "name old → new").
type BaseUpdate = engine.BaseUpdate

// RunOptions are the stdio and overrides of Builder.Run.
type RunOptions = engine.RunOptions

// ExportOptions tune ExportWith and Push.
type ExportOptions = engine.ExportOptions

// Mount is one add_local_file or add_local_dir with copy=False: local files
// that are read and attached to a container when it starts, as Modal mounts
// them, instead of being built into a layer.
type Mount = engine.Mount

// TagOptions say where a build's image came from when it is named
// (Builder.TagResultWith).
type TagOptions = engine.TagOptions

// Tagged is what Builder.TagResultWith did to the name.
type Tagged = engine.Tagged

// Metadata describes a built image as Modal's ImageMetadata does. It is
// probed once per image (manifest) in a throwaway container without network,
// when first asked for (Builder.Metadata, `snapbuild inspect`), not during
// the build: a probe costs a container and a Python start (about 0.3 s),
// which would dominate cheap builds.
type Metadata = engine.Metadata

// PlanState says what a build would do with one step (see Builder.Plan).
type PlanState = engine.PlanState

// PlanCached: the step's result is in the store's cache; a build
// reuses it and runs nothing.
const PlanCached = engine.PlanCached

// PlanConfig: the step changes only the image config (ENV, CMD, ...)
// or names a base already in the store; a build does no work for it.
const PlanConfig = engine.PlanConfig

// PlanRun: the step is not cached; a build would run it (a container,
// a copy, a pull or a Debian bootstrap: PlanStep.Note says which).
const PlanRun = engine.PlanRun

// PlanPending: the step comes after one that would run; its cache key
// depends on that step's result (the layer's content), so it is not
// known before the build.
const PlanPending = engine.PlanPending

// Plan is what a build of an image would do, found without running a step,
// pulling an image or contacting a mirror (Builder.Plan).
type Plan = engine.Plan

// PlanLayer is one Modal layer of the image: one method call.
type PlanLayer = engine.PlanLayer

// PlanStep is one instruction of a layer.
type PlanStep = engine.PlanStep

// CacheExport is what Builder.ExportCache wrote: where, in which mode, how
// many records (Keys) and how many layer blobs they name (Layers).
type CacheExport = engine.CacheExport
