package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/base"
	"github.com/snapbuild/snapbuild/gpu"
	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/remote"
	"github.com/snapbuild/snapbuild/internal/remotecache"
	"github.com/snapbuild/snapbuild/internal/store"
	"github.com/snapbuild/snapbuild/internal/userdb"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/overlay"
	"github.com/snapbuild/snapbuild/registry"
	"github.com/snapbuild/snapbuild/sandbox"
	"github.com/snapbuild/snapbuild/snapshot"
)

// Engine builds Modal layers into a local store: snapbuild.Builder's
// implementation. An Engine is safe for concurrent use: each Build and Plan
// works on a copy of the Engine (its run: the options are shared, read-only;
// stats, the dry-run state and the progress wrapper are the run's own), and
// the runs share the store's lock, the Pool that bounds their work and locks
// each step's cache key, and the sandbox IDs. Several Engines (or processes)
// on one store serialize their builds on the store's lock.
type Engine struct {
	store        *store.Store
	root         string // WithRoot, WithExistingRoot; "": DefaultRoot()
	rootExisting bool   // WithExistingRoot: the store must exist
	progress     Progress
	mirror       string
	forceAll     bool
	network      sandbox.Network
	security     sandbox.Security // WithSecurity; "": sandbox.SecuritySandbox
	epoch        time.Time
	timestamps   Timestamps  // WithTimestamps; "" clamps
	gpu          gpu.Options // where GPU steps find the host's NVIDIA devices and CDI specs
	puller       Puller      // how from_registry fetches images; nil: package registry
	registryOpts []registry.Option
	// slimFromRegistry: debian_slim pulls Docker Hub's python image (through
	// a configured mirror) instead of bootstrapping Debian.
	slimFromRegistry bool
	// stepEnv is the site's environment for RUN and run_function steps
	// (WithStepEnv): below the image's ENV, outside images and cache keys.
	stepEnv []string
	// pythonDir is where add_python finds python-build-standalone archives
	// (WithPythonStandaloneDir); "" for the default.
	pythonDir string
	// toolImages maps normalized repositories to replacements
	// (WithToolImage).
	toolImages map[string]string
	// seq numbers the sandboxes this Engine's runs start; shared by them.
	seq   *atomic.Int64
	stats Stats
	// pool bounds the worker calls of all runs together (WithParallelism)
	// and locks each cache key, so that runs reaching the same step run
	// it once; shared by them.
	pool *build.Pool
	// progressMu serializes the runs' events to progress; shared.
	progressMu *sync.Mutex
	// label is the run's name in its events (Event.Image): BuildLabel.
	label string
	// heartbeat is how often a silent entry reports it still runs
	// (WithHeartbeat).
	heartbeat time.Duration
	// plan is set during a dry run's step (Builder.Plan): layerStep
	// records the key there and does no work.
	plan *planCursor
	// planConfigs are the configs of the images a dry run described
	// instead of writing (writeManifest), by manifest digest.
	planConfigs map[digest.Digest][]byte
	// jobs is how many ops of a build graph may run at once
	// (WithParallelism); 0 for the number of CPUs.
	jobs int
	// pull: check bases for newer ones (WithPull); pins holds what that
	// check found, per base, for the Engine's life (see pin.go).
	pullBases bool
	pins      *pinChecks // shared by the runs
	// forceRest makes every later step of the run's build run: its base
	// moved (pin.go).
	forceRest bool
	// noSandbox (WithoutSandbox): mount nothing, run nothing; stop with
	// ErrNeedsSandbox where that would be needed.
	noSandbox bool
	// pending are the image records of a run WithoutSandbox, written in
	// order once it has built everything, so that one that stops has
	// recorded nothing (non-nil during such a run; the run's own).
	pending []func() error
	// sandboxNeeded is set when the run stopped where it needed the
	// namespace (needsSandbox); the run's own.
	sandboxNeeded *atomic.Bool
	// noPackageCaches turns the installer steps' package caches off
	// (WithPackageCaches(false)).
	noPackageCaches bool
	// caches is build --cache-from and --cache-to (WithCacheFrom,
	// WithCacheTo); nil when neither was given. Shared by the runs.
	caches *remoteCache
	// buildkit is the BuildKit daemon the layers are solved on
	// (WithBuilder); nil: the local worker.
	buildkit *remote.Client
}

// DefaultEpoch is the SOURCE_DATE_EPOCH used when none is set:
// 1980-01-01T00:00:00Z (315532800), the earliest time a zip file can hold,
// so that tools which zip files from an image (wheel builders) still work.
var DefaultEpoch = time.Unix(315532800, 0).UTC()

// epochFromEnv reads SOURCE_DATE_EPOCH (seconds since 1970, UTC).
func epochFromEnv() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return DefaultEpoch, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a non-negative number of seconds since 1970-01-01 UTC", v)
	}
	return time.Unix(n, 0).UTC(), nil
}

// Option is snapbuild.Option.
type Option func(*Engine) error

// WithRoot is snapbuild.WithRoot.
func WithRoot(dir string) Option {
	return func(b *Engine) error {
		if dir == "" {
			return errors.New("WithRoot: empty directory")
		}
		b.root, b.rootExisting = dir, false
		return nil
	}
}

// WithExistingRoot is snapbuild.WithExistingRoot.
func WithExistingRoot(dir string) Option {
	return func(b *Engine) error {
		if dir == "" {
			return errors.New("WithExistingRoot: empty directory")
		}
		b.root, b.rootExisting = dir, true
		return nil
	}
}

// StoreNotExistError is snapbuild.StoreNotExistError.
type StoreNotExistError struct {
	Root string // the store directory, absolute
}

func (e *StoreNotExistError) Error() string { return "store " + e.Root + " does not exist" }

// WithProgress is snapbuild.WithProgress.
func WithProgress(p Progress) Option {
	return func(b *Engine) error { b.progress = p; return nil }
}

// WithHeartbeat is snapbuild.WithHeartbeat.
func WithHeartbeat(every time.Duration) Option {
	return func(b *Engine) error {
		if every < 0 {
			return fmt.Errorf("WithHeartbeat(%v): give a positive interval, or 0 for none", every)
		}
		b.heartbeat = every
		return nil
	}
}

// WithDebianMirror is snapbuild.WithDebianMirror.
func WithDebianMirror(url string) Option {
	return func(b *Engine) error { b.mirror = url; return nil }
}

// WithForceBuild is snapbuild.WithForceBuild.
func WithForceBuild(force bool) Option {
	return func(b *Engine) error { b.forceAll = force; return nil }
}

// WithEpoch is snapbuild.WithEpoch.
func WithEpoch(t time.Time) Option {
	return func(b *Engine) error { b.epoch = t.UTC().Truncate(time.Second); return nil }
}

// WithNetwork is snapbuild.WithNetwork.
func WithNetwork(n sandbox.Network) Option {
	return func(b *Engine) error {
		if n == "" || n.Check() != nil {
			return fmt.Errorf("unknown network %q: use %q, %q or %q", n, sandbox.NetworkHost, sandbox.NetworkNone, sandbox.NetworkPrivate)
		}
		b.network = n
		return nil
	}
}

// WithSecurity is snapbuild.WithSecurity.
func WithSecurity(s sandbox.Security) Option {
	return func(b *Engine) error { b.security = s; return s.Check() }
}

// WithCDISpecDirs is snapbuild.WithCDISpecDirs.
func WithCDISpecDirs(dirs ...string) Option {
	return func(b *Engine) error {
		for _, d := range dirs {
			if !filepath.IsAbs(d) {
				return fmt.Errorf("CDI spec directory %q: give an absolute path", d)
			}
		}
		b.gpu.CDISpecDirs = slices.Clone(dirs)
		return nil
	}
}

// WithPackageCaches is snapbuild.WithPackageCaches.
func WithPackageCaches(on bool) Option {
	return func(b *Engine) error { b.noPackageCaches = !on; return nil }
}

// WithParallelism is snapbuild.WithParallelism.
func WithParallelism(n int) Option {
	return func(b *Engine) error {
		if n < 1 {
			return fmt.Errorf("parallelism %d: give at least 1", n)
		}
		b.jobs = n
		return nil
	}
}

// WithoutSandbox is snapbuild.WithoutSandbox.
func WithoutSandbox() Option {
	return func(b *Engine) error { b.noSandbox = true; return nil }
}

// New opens the store and returns an Engine (snapbuild.NewBuilder).
func New(opts ...Option) (*Engine, error) {
	epoch, err := epochFromEnv()
	if err != nil {
		return nil, err
	}
	b := &Engine{
		seq:        new(atomic.Int64),
		progressMu: new(sync.Mutex),
		progress:   NewPlainProgress(os.Stderr),
		forceAll:   envBool("MODAL_FORCE_BUILD") || envBool("SNAPBUILD_FORCE_BUILD"),
		network:    sandbox.NetworkHost,
		epoch:      epoch,
		heartbeat:  30 * time.Second,
	}
	for _, o := range opts {
		if err := o(b); err != nil {
			if b.buildkit != nil {
				b.buildkit.Close()
			}
			return nil, err
		}
	}
	if b.buildkit != nil && b.caches != nil {
		// buildkitd keeps its own cache of the steps it runs; the local
		// records --cache-to exports and --cache-from fills are never
		// made or read there.
		b.buildkit.Close()
		return nil, fmt.Errorf("--cache-from and --cache-to work with local builds only: a --builder %s keeps its own step cache; build without --builder to share steps through a registry", b.buildkit.Addr())
	}
	if err := b.share(); err != nil {
		return nil, err
	}
	if b.root == "" {
		b.root = DefaultRoot()
	}
	if b.rootExisting {
		abs, err := filepath.Abs(b.root)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
			return nil, &StoreNotExistError{Root: abs}
		}
	}
	if os.Geteuid() != 0 && !b.noSandbox {
		return nil, errors.New("snapbuild: the process is not root and not in a user namespace: call snapbuild.Init() first in main, or build WithoutSandbox")
	}
	st, err := store.Open(b.root)
	if err != nil {
		return nil, err
	}
	b.store = st
	return b, nil
}

// share makes what b's runs share, once the options are applied.
func (b *Engine) share() error {
	jobs := b.jobs
	if jobs == 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	pool, err := build.NewPool(jobs)
	if err != nil {
		return err
	}
	b.pool, b.seq, b.progressMu, b.pins = pool, new(atomic.Int64), new(sync.Mutex), &pinChecks{}
	if b.caches != nil && len(b.caches.to) > 0 {
		b.caches.recorder = remotecache.NewRecorder()
	}
	return nil
}

// Close is snapbuild.Builder.Close.
func (b *Engine) Close() error {
	if b.buildkit != nil {
		b.buildkit.Close()
	}
	return b.store.Close()
}

// Root is snapbuild.Builder.Root.
func (b *Engine) Root() string { return b.store.Root() }

// Store is the store the Engine builds into.
func (b *Engine) Store() *store.Store { return b.store }

func envBool(name string) bool {
	v := strings.ToLower(os.Getenv(name))
	return v != "" && v != "0" && v != "false"
}

// Stats is snapbuild.Stats.
type Stats struct {
	Steps  int `json:"steps"`  // instructions executed or found cached
	Cached int `json:"cached"` // instructions taken from the cache (config-only ones never are)
	// Config counts instructions that changed only the image config (ENV,
	// CMD, ...): they are neither cached nor run.
	Config            int `json:"config"`
	ContainersStarted int `json:"containersStarted"` // sandboxes started (RUN and run_function steps that were not cached)
	// Entries counts the entries built: recipe entries / Modal method
	// calls, one per instruction of from_dockerfile and
	// dockerfile_commands.
	Entries int `json:"entries"`
	// EntriesCached counts the entries that ran nothing, those the
	// progress prints CACHED: at least one instruction was cached and the
	// others changed only the config.
	EntriesCached int `json:"entriesCached"`
}

// Result is snapbuild.Result.
type Result struct {
	ID       string             // "im-" + 22 base62 characters, as Modal's
	Manifest ocispec.Descriptor // the image manifest in the store
	// Config is the image config with Docker's extensions (Healthcheck,
	// Shell, OnBuild).
	Config dockerspec.DockerOCIImage
	Stats  Stats
	// Mounts are the add_local_* copy=False files: not in the image (ID),
	// attached by Run and written as a last layer by Export. Use TagResult
	// to keep them with a name.
	Mounts []Mount
}

// buildState is the image as built so far.
type buildState struct {
	id      string // image ID of the last complete Modal layer
	chain   digest.Digest
	layers  []ocispec.Descriptor
	diffIDs []digest.Digest
	config  ocispec.ImageConfig
	history []ocispec.History
	shell   []string
	health  *dockerspec.HealthcheckConfig // HEALTHCHECK (Docker's config extension)
	onBuild []string                      // ONBUILD triggers (Docker's config extension)
	// manifest is the stored manifest of exactly this state, "" when it
	// has changed since one was written (commitImage, writeManifest).
	manifest digest.Digest
}

// plannedStep is one instruction to execute.
type plannedStep struct {
	layer int
	instr instruction
	entry int // the entry it belongs to, from 1
}

// BuildOption is snapbuild.BuildOption.
type BuildOption func(*Engine)

// BuildLabel is snapbuild.BuildLabel.
func BuildLabel(name string) BuildOption {
	return func(r *Engine) { r.label = name }
}

// Build is snapbuild.Builder.Build.
func (b *Engine) Build(ctx context.Context, layers []*modal.Layer, opts ...BuildOption) (Result, error) {
	res, err := b.build1(ctx, layers, opts)
	b.caches.built(err)
	return res, err
}

// build1 is Build, before the remote cache hears of its outcome.
func (b *Engine) build1(ctx context.Context, layers []*modal.Layer, opts []BuildOption) (Result, error) {
	r := b.run(opts)
	if r.noSandbox {
		// One pass of the build itself: each point where it would
		// mount, run, pull or bootstrap stops it with ErrNeedsSandbox
		// (needsSandbox), and its image records are written only
		// when it gets to the end (pending).
		r.pending = []func() error{}
		r.sandboxNeeded = new(atomic.Bool)
		res, err := r.build(ctx, layers, nil)
		r.pending = nil
		switch {
		case err != nil && r.sandboxNeeded.Load() && !errors.Is(err, ErrNeedsSandbox):
			// Stopped for the namespace, then reworded on the way
			// (a pull's error inside a missing-image message).
			return Result{}, r.needsSandbox(fmt.Sprintf("building here stopped (%v)", err))
		case err == nil, ctx.Err() != nil, errors.Is(err, ErrNeedsSandbox), errors.As(err, new(*modal.InvalidError)):
			// The recipe's own errors are the same in any process.
			return res, err
		default:
			// The build in the namespace reports it, as it always
			// has: this one may have missed what only that one has.
			return Result{}, r.needsSandbox(fmt.Sprintf("building here failed (%v)", err))
		}
	}
	return r.build(ctx, layers, nil)
}

// run returns the Engine a Build or Plan works on: a copy of b with the
// run's own state, whose events go to b's progress one at a time, marked
// with the run's label.
func (b *Engine) run(opts []BuildOption) *Engine {
	r := *b
	r.stats, r.plan, r.planConfigs, r.label, r.forceRest, r.pending = Stats{}, nil, nil, "", false, nil
	for _, o := range opts {
		o(&r)
	}
	r.progress = &runProgress{mu: b.progressMu, p: b.progress, image: r.label}
	return &r
}

// runProgress passes a run's events to p under mu, which the runs of an
// Engine share, so that a Progress sees one event at a time however many
// builds run at once, each marked with the run's image label.
type runProgress struct {
	mu    *sync.Mutex
	p     Progress
	image string
}

func (r *runProgress) Event(e Event) {
	e.Image = r.image
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Event(e)
}

// build builds img; with plan, it is a dry run (Builder.Plan) that fills
// plan and returns no Result.
func (b *Engine) build(ctx context.Context, layers []*modal.Layer, plan *Plan) (_ Result, err error) {
	if len(layers) == 0 {
		return Result{}, &modal.InvalidError{Message: "No commands were provided for the image — have you tried using snapbuild.DebianSlim()?"}
	}
	if v := os.Getenv("MODAL_IMAGE_BUILDER_VERSION"); v != "" && v != modal.BuilderVersion && v != "PREVIEW" {
		return Result{}, fmt.Errorf("MODAL_IMAGE_BUILDER_VERSION=%s: snapbuild implements the %s builder (and PREVIEW) only", v, modal.BuilderVersion)
	}
	// Where debian_slim's Python comes from depends on the site; from a
	// registry, the layer runs Modal's commands on Modal's image.
	layers = slices.Clone(layers)
	for i, l := range layers {
		if l.Root != nil && l.Root.Debian != nil {
			src, err := b.slimSource(l.Method, l.Root.Debian)
			if err != nil {
				return Result{}, err // before any step runs
			}
			if src.kind == slimRegistry {
				layers[i] = slimRegistryLayer(l, src.ref)
			}
		}
	}
	var steps []plannedStep
	entries := 0
	parsed := make([][]instruction, len(layers))
	var mounts []*modal.Layer
	for i, l := range layers {
		if l.Mount {
			mounts = append(mounts, l)
			continue
		}
		if len(mounts) > 0 {
			return Result{}, &modal.InvalidError{Method: l.Method, Message: "An image tried to run a build step after using `image.add_local_*` to include local files. " +
				"Run `image.add_local_*` with `copy=True` prior to any build steps, or move the `image.add_local_*` calls to the end of the chain"}
		}
		ins, err := modal.ParseCommands(l.Commands)
		if err != nil {
			return Result{}, &modal.InvalidError{Method: l.Method, Message: err.Error()}
		}
		if l.Root != nil && l.Root.Dockerfile {
			if err := checkDockerfile(ins); err != nil {
				return Result{}, &modal.InvalidError{Method: l.Method, Message: err.Error()}
			}
		} else if len(ins) == 0 || !ins[0].IsFrom() {
			return Result{}, &modal.InvalidError{Method: l.Method, Message: "a layer's commands must start with FROM"}
		}
		if (i == 0) != (l.Root != nil) || (i > 0 && ins[0].FromRef() != "base") {
			return Result{}, &modal.InvalidError{Method: l.Method, Message: "only the first layer may have a FROM other than \"FROM base\""}
		}
		if l.Function != nil {
			ins = append(ins, instruction{Text: l.Function.Title(), Cmd: l.Function, Line: 2})
		}
		parsed[i] = ins
		for j, in := range ins {
			if j == 0 && i > 0 {
				continue
			}
			if l.PerInstruction() || j == 0 || (i > 0 && j == 1) {
				entries++
			}
			steps = append(steps, plannedStep{layer: i, instr: in, entry: entries})
		}
	}
	b.planConfigs = nil
	if plan != nil {
		// A dry run only reads: other builds may go on.
		if err := b.store.LockShared(); err != nil {
			return Result{}, err
		}
		defer b.store.Unlock()
	} else {
		if err := b.store.LockExclusive(); err != nil {
			return Result{}, err
		}
		defer b.store.Unlock() // the last build out empties tmp/
		if err := b.checkSources(ctx, layers, steps); err != nil {
			return Result{}, err
		}
	}
	for _, l := range layers {
		if l.AddPython != "" {
			if _, err := b.pythonContext(l.Method, l.AddPython); err != nil {
				return Result{}, err // before any step runs
			}
		}
	}
	b.stats = Stats{}
	b.forceRest = false
	if plan == nil {
		sp := &syncProgress{p: b.progress}
		b.progress = sp
		defer func() { b.progress = sp.p }()
	}
	st := &buildState{}
	var res Result
	n := 0
	stopped := false // dry run: a step would run, later keys are unknown
	for i, l := range layers {
		if l.Mount {
			if plan != nil {
				plan.Layers = append(plan.Layers, PlanLayer{Method: l.Method, Runtime: true})
			}
			continue
		}
		if l.AddPython != "" {
			dir, err := b.pythonContext(l.Method, l.AddPython)
			if err != nil {
				return Result{}, err
			}
			withPy := *l
			withPy.Context = append(slices.Clone(l.Context), modal.ContextInput{Local: dir, Remote: "/", Dir: true})
			l = &withPy
		}
		ctxFiles, err := resolveContext(l)
		if err != nil {
			return Result{}, err
		}
		force := b.forceAll || l.ForceBuild || b.forceRest
		var pl *PlanLayer
		if plan != nil {
			plan.Layers = append(plan.Layers, PlanLayer{Method: l.Method, Commands: slices.Clone(l.Commands)})
			pl = &plan.Layers[len(plan.Layers)-1]
		}
		evs := make([]Event, len(parsed[i]))
		for j, in := range parsed[i] {
			if j == 0 && i > 0 {
				continue
			}
			n++
			evs[j] = Event{Step: n, Total: len(steps), Instruction: in.Text, Entry: steps[n-1].entry, Entries: entries, Method: l.Method}
		}
		if err := b.solveLayer(ctx, st, l, parsed[i], evs, ctxFiles, force, pl, &stopped); err != nil {
			return Result{}, err
		}
		if l.Root != nil && l.Root.FromID != "" && len(parsed[i]) == 1 && !stopped {
			// from_id adds no layer: its result is the stored image
			// itself, and the chain goes on from it (a dry run's too:
			// the next layer's keys start from its manifest).
			rec, err := b.store.Resolve(l.Root.FromID)
			if err != nil {
				return Result{}, &modal.InvalidError{Method: l.Method, Message: err.Error()}
			}
			s, img, err := b.stateOf(rec)
			if err != nil {
				return Result{}, err
			}
			*st = *s
			res = Result{ID: rec.ID, Manifest: rec.Manifest, Config: img}
			continue
		}
		if plan != nil {
			continue // nothing is committed
		}
		if res, err = b.commitImage(st, l, ctxFiles); err != nil {
			return Result{}, err
		}
	}
	res.Stats = b.stats
	for _, l := range mounts {
		for _, in := range l.Context {
			// Files are read when the image runs; a bad ignore= is an
			// error of the build, not of every later run.
			if m, ok := in.Ignore.(*modal.FilePatternMatcher); ok {
				if _, err := m.Patterns(); err != nil {
					return Result{}, &modal.InvalidError{Method: l.Method, Message: err.Error()}
				}
			}
		}
		res.Mounts = append(res.Mounts, l.Context...)
	}
	if b.pending != nil {
		// Built without a sandbox: the store's writes, at last.
		for _, write := range b.pending {
			if err := write(); err != nil {
				return Result{}, err
			}
		}
		b.pending = b.pending[:0]
	}
	if n := len(st.layers); n > maxRuntimeLayers {
		b.progress.Event(Event{Kind: EventWarn, Step: len(steps), Total: len(steps), Line: fmt.Sprintf(
			"the image has %d layers: podman and Docker cannot run images of more than %d; join run_commands strings with && to make fewer RUN steps", n, maxRuntimeLayers)})
	}
	return res, nil
}

// maxRuntimeLayers is the most layers containers/storage (podman, buildah)
// and Docker mount; an image with more builds but does not run there.
const maxRuntimeLayers = 125

// checkSources fails before any step runs when an image the build needs is
// not in the store: a stored base (from_id, a tool image such as
// micromamba's) or the image of a COPY --from.
func (b *Engine) checkSources(ctx context.Context, layers []*modal.Layer, plan []plannedStep) error {
	for i, p := range plan {
		l := layers[p.layer]
		var ref string
		var pullable bool
		switch c := p.instr.Cmd.(type) {
		case *instructions.Stage:
			if l.Root != nil {
				ref = l.Root.FromID
				pullable = l.Root.Pull
			}
			if l.Root != nil && l.Root.Dockerfile {
				continue // resolved per stage, with ARG expansion, by fromStage
			}
		case *instructions.CopyCommand:
			ref, pullable = c.From, true
			if l.Root != nil && l.Root.Dockerfile {
				continue // may name a stage
			}
		}
		if ref == "" {
			continue
		}
		if pullable && !strings.HasPrefix(ref, "im-") {
			ev := Event{Step: i + 1, Total: len(plan), Instruction: p.instr.Text,
				Entry: p.entry, Entries: plan[len(plan)-1].entry, Method: l.Method}
			if _, _, err := b.sourceImage(ctx, l.Method, ev, ref); err != nil {
				return err
			}
			continue
		}
		if _, err := b.store.Resolve(ref); err != nil {
			if strings.HasPrefix(ref, "im-") {
				return &modal.InvalidError{Method: l.Method, Message: err.Error()}
			}
			return missingSource(l.Method, p.instr.Text, ref, err)
		}
	}
	return nil
}

// entryRun is an entry being built.
type entryRun struct {
	ev     Event // its EventEntryStart
	start  time.Time
	worked bool   // one of its steps did work (or failed)
	cached bool   // one of its steps was cached
	stop   func() // ends its heartbeat
}

// startEntry reports that the entry of ev, labelled label, begins, and
// starts its heartbeat.
func (b *Engine) startEntry(ev Event, label string) *entryRun {
	ev.Kind, ev.Label = EventEntryStart, label
	ev.Step, ev.Instruction = 0, ""
	e := &entryRun{ev: ev, start: time.Now(), stop: func() {}}
	b.progress.Event(ev)
	if sp, ok := b.progress.(*syncProgress); ok && b.heartbeat > 0 {
		e.stop = sp.heartbeat(ev, e.start, b.heartbeat)
	}
	return e
}

// endEntry stops e's heartbeat and reports how e ended; err is the build's
// error, if it failed. No-op for a nil e.
func (b *Engine) endEntry(e *entryRun, err error) {
	if e == nil {
		return
	}
	e.stop()
	ev := e.ev
	ev.Kind, ev.Duration = EventEntryDone, time.Since(e.start)
	ev.setError(err)
	// Cached: taken from the cache, not merely config-only (an env()
	// entry does no work, but is not cached either).
	ev.Cached = err == nil && !e.worked && e.cached
	b.progress.Event(ev)
	b.stats.Entries++
	if ev.Cached {
		b.stats.EntriesCached++
	}
}

// stepKey is the cache key of a filesystem-changing step: everything that can
// change its result. Build-time env values are left out, as Modal leaves
// secret values out (only the names count).
func stepKey(st *buildState, l *modal.Layer, in instruction, inputs string, epoch time.Time) string {
	var envKeys []string
	for k := range l.BuildEnv {
		envKeys = append(envKeys, k)
	}
	sort.Strings(envKeys)
	for _, s := range l.Secrets {
		envKeys = append(envKeys, s.Repr())
	}
	v := struct {
		Version     string        `json:"v"`
		Parent      digest.Digest `json:"parent"`
		Instruction string        `json:"instruction"`
		Env         []string      `json:"env"`
		BuildEnv    []string      `json:"buildEnv"`
		Workdir     string        `json:"workdir"`
		Shell       []string      `json:"shell"`
		User        string        `json:"user"`
		Inputs      string        `json:"inputs"`
		Platform    string        `json:"platform"`
		GPU         string        `json:"gpu,omitempty"`
		Epoch       int64         `json:"epoch"`
	}{"snapbuild-step/1", st.chain, in.Text, st.config.Env, envKeys, st.config.WorkingDir,
		st.shell, st.config.User, inputs, runtime.GOOS + "/" + runtime.GOARCH, l.GPU, epoch.Unix()}
	bs, _ := json.Marshal(v)
	sum := sha256.Sum256(bs)
	return hex.EncodeToString(sum[:])
}

// layerStep returns the cached result of key, or prepares a snapshot on st,
// lets change modify it, and commits the difference as a layer.
func (b *Engine) layerStep(ctx context.Context, st *buildState, key, instr string, force bool, change func(a *snapshot.Active) error) (bool, error) {
	return b.layerStepAt(ctx, st, b.timestampsKey(key), instr, force, b.layerEpoch(), change)
}

// layerStepAt is layerStep with the step's key and the epoch its layer's
// mtimes are clamped to (nil: kept) given as they are.
func (b *Engine) layerStepAt(ctx context.Context, st *buildState, key, instr string, force bool, epoch *time.Time, change func(a *snapshot.Active) error) (bool, error) {
	if b.plan != nil {
		b.plan.key = key
		if force {
			return false, &wouldRun{"run again: force_build"}
		}
	}
	if b.plan == nil {
		// Another run of this Engine may be making the same step: wait
		// for it and take its result.
		hold := b.pool.Lock(digest.NewDigestFromEncoded(digest.SHA256, key))
		defer hold.Unlock()
	}
	if !force {
		rec, ok, err := b.store.Step(key)
		if err != nil {
			return false, err
		}
		if ok && b.store.StepUsable(rec) {
			st.apply(rec)
			return true, nil
		}
	}
	if b.plan != nil {
		return false, &wouldRun{"run: not in the cache"}
	}
	if b.noSandbox {
		return false, b.needsSandbox(instr)
	}
	a, err := b.store.Snapshots().Prepare(st.chain)
	if err != nil {
		return false, err
	}
	defer a.Remove()
	if err := change(a); err != nil {
		return false, err
	}
	rec, err := b.commitLayer(ctx, st.chain, a, key, instr, epoch)
	if err != nil {
		return false, err
	}
	st.apply(rec)
	return false, nil
}

// commitLayer diffs a's upper dir into a zstd layer, clamps the upper dir
// as the layer is clamped (overlay.ClampPyc before the diff,
// overlay.ClampTimes after it) to epoch unless it is nil, commits the
// snapshot and records the step.
func (b *Engine) commitLayer(ctx context.Context, parent digest.Digest, a *snapshot.Active, key, instr string, epoch *time.Time) (store.Step, error) {
	if err := a.Unmount(); err != nil {
		return store.Step{}, err
	}
	if e := epoch; e != nil {
		// .pyc files stay valid once their sources are clamped.
		if err := overlay.ClampPyc(ctx, a.Upper, *e); err != nil {
			return store.Step{}, err
		}
	}
	var stats overlay.Stats
	layer, err := b.store.Blobs().WriteLayer(ctx, func(w io.Writer) error {
		var err error
		stats, err = overlay.Diff(ctx, w, a.Upper, overlay.DiffOptions{Lowers: a.Lowers, UserXattr: b.store.Snapshots().UserXattr(), Epoch: epoch})
		return err
	})
	if e := epoch; err == nil && e != nil {
		// The snapshot holds the times the layer holds.
		err = overlay.ClampTimes(ctx, a.Upper, *e)
	}
	if err != nil {
		return store.Step{}, err
	}
	rec := store.Step{Key: key, Instruction: instr}
	if stats.Entries == 0 {
		rec.Empty = true
	} else {
		rec.Layer, rec.DiffID = layer.Descriptor, layer.DiffID
		rec.ChainID = snapshot.ChainID(parent, layer.DiffID)
		if err := b.store.Snapshots().Commit(a, rec.ChainID); err != nil {
			return store.Step{}, err
		}
	}
	if err := b.store.PutStep(rec); err != nil {
		return store.Step{}, err
	}
	return rec, nil
}

// apply adds a step's layer (if any) to the state.
func (s *buildState) apply(r store.Step) {
	s.history = append(s.history, ocispec.History{CreatedBy: r.Instruction, Comment: "snapbuild", EmptyLayer: r.Empty})
	if r.Empty {
		return
	}
	s.chain = r.ChainID
	s.layers = append(s.layers, r.Layer)
	s.diffIDs = append(s.diffIDs, r.DiffID)
}

// configOnly records an instruction that changes only the image config.
func (s *buildState) configOnly(instr string) {
	s.history = append(s.history, ocispec.History{CreatedBy: instr, Comment: "snapbuild", EmptyLayer: true})
}

// commitImage stores the image made so far as the result of Modal layer l.
func (b *Engine) commitImage(st *buildState, l *modal.Layer, files []contextFile) (Result, error) {
	img, layers := st.imageConfig()
	manifest, err := b.store.Blobs().WriteDockerImage(img, layers)
	if err != nil {
		return Result{}, err
	}
	var inputs []string
	for _, f := range files {
		inputs = append(inputs, fmt.Sprintf("%s %s %o", f.path, f.digest, f.mode))
	}
	def, _ := json.Marshal(struct {
		Parent   string   `json:"parent"`
		Engine   string   `json:"builder"`
		Commands []string `json:"commands"`
		Inputs   []string `json:"inputs"`
		Manifest string   `json:"manifest"`
	}{st.id, modal.BuilderVersion, l.Commands, inputs, manifest.Digest.String()})
	rec := store.Image{ID: store.ImageID(def), Manifest: manifest, ChainID: st.chain, Shell: st.shell, Health: st.health, Parent: st.id}
	if b.pending != nil {
		b.pending = append(b.pending, func() error { return b.store.PutImage(rec) })
	} else if err := b.store.PutImage(rec); err != nil {
		return Result{}, err
	}
	st.id, st.manifest = rec.ID, manifest.Digest
	return Result{ID: rec.ID, Manifest: manifest, Config: img}, nil
}

// Tag is snapbuild.Builder.Tag.
func (b *Engine) Tag(name, ref string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := b.store.LockExclusive(); err != nil {
		return err
	}
	defer b.store.Unlock()
	rec, err := b.store.Resolve(ref)
	if err != nil {
		return err
	}
	return b.store.SetName(name, rec.ID)
}

// ValidateName is snapbuild.ValidateName.
func ValidateName(name string) error {
	if strings.HasPrefix(name, "im-") {
		return fmt.Errorf("image name %q: names starting with \"im-\" are reserved for image IDs", name)
	}
	if _, err := reference.ParseNormalizedNamed(name); err != nil {
		return fmt.Errorf("image name %q: %v: a name is an image reference as docker and podman take it "+
			"(lower-case repository, optional :tag), e.g. myapp or registry.local:5000/team/app:v1", name, err)
	}
	return nil
}

// ImageInfo is snapbuild.ImageInfo.
type ImageInfo struct {
	ID       string             `json:"id"`
	Names    []string           `json:"names,omitempty"`
	Manifest ocispec.Descriptor `json:"manifest"`
	// Config is the image config with Docker's extensions (Healthcheck,
	// Shell, OnBuild), as BuildKit and docker write it.
	Config dockerspec.DockerOCIImage `json:"config"`
	Size   int64                     `json:"size"` // compressed layers, bytes
	// Metadata is what Modal's ImageMetadata reports, when it was probed
	// (see Builder.Metadata); nil otherwise.
	Metadata *Metadata `json:"metadata,omitempty"`
}

// Images is snapbuild.Builder.Images.
func (b *Engine) Images() ([]ImageInfo, error) {
	names, err := b.store.Names()
	if err != nil {
		return nil, err
	}
	byID := map[string]*ImageInfo{}
	var out []*ImageInfo
	keys := make([]string, 0, len(names))
	for n := range names {
		keys = append(keys, n)
	}
	sort.Strings(keys)
	for _, n := range keys {
		id := names[n]
		if info, ok := byID[id]; ok {
			info.Names = append(info.Names, n)
			continue
		}
		info, err := b.Inspect(id)
		if err != nil {
			return nil, err
		}
		info.Names = []string{n}
		byID[id] = &info
		out = append(out, &info)
	}
	res := make([]ImageInfo, len(out))
	for i, p := range out {
		res[i] = *p
	}
	return res, nil
}

// Inspect is snapbuild.Builder.Inspect.
func (b *Engine) Inspect(ref string) (ImageInfo, error) {
	rec, err := b.store.Resolve(ref)
	if err != nil {
		return ImageInfo{}, err
	}
	m, err := b.store.Blobs().Manifest(rec.Manifest.Digest)
	if err != nil {
		return ImageInfo{}, err
	}
	var cfg dockerspec.DockerOCIImage
	if err := b.store.Blobs().ReadJSON(m.Config.Digest, &cfg); err != nil {
		return ImageInfo{}, err
	}
	md, err := b.metadata(rec.Manifest.Digest)
	if err != nil {
		return ImageInfo{}, err
	}
	info := ImageInfo{ID: rec.ID, Manifest: rec.Manifest, Config: cfg, Metadata: md}
	for _, l := range m.Layers {
		info.Size += l.Size
	}
	names, err := b.store.Names()
	if err != nil {
		return ImageInfo{}, err
	}
	for n, id := range names {
		if id == rec.ID {
			info.Names = append(info.Names, n)
		}
	}
	sort.Strings(info.Names)
	return info, nil
}

// Remove is snapbuild.Builder.Remove.
func (b *Engine) Remove(name string) error {
	if err := b.store.LockExclusive(); err != nil {
		return err
	}
	defer b.store.Unlock()
	names, err := b.store.Names()
	if err != nil {
		return err
	}
	if _, ok := names[name]; !ok {
		return fmt.Errorf("no image named %q in store %s", name, b.store.Root())
	}
	return b.store.SetName(name, "")
}

// Export is snapbuild.Builder.Export.
func (b *Engine) Export(ref, dest string) error {
	r, err := oci.ParseReference(dest)
	if err != nil {
		return err
	}
	rec, err := b.store.Resolve(ref)
	if err != nil {
		return err
	}
	manifest, err := b.exportManifest(context.Background(), ref, rec)
	if err != nil {
		return err
	}
	return b.store.Blobs().Export(manifest, r)
}

// RunOptions is snapbuild.RunOptions.
type RunOptions struct {
	// Stdin, Stdout and Stderr connect the command; nil means /dev/null.
	// Like `docker run` without -i, the CLI passes no stdin unless asked.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Env            []string // extra KEY=value entries
	Workdir        string   // overrides the image's working directory

	// Entrypoint replaces the image's ENTRYPOINT when ReplaceEntrypoint is
	// set, as `docker run --entrypoint` and `podman run --entrypoint` do:
	// the command is then Entrypoint followed by Run's args, and the image's
	// CMD is not used (Docker drops it too, as it was written for the
	// image's own ENTRYPOINT). An empty Entrypoint (`--entrypoint ""`)
	// clears it, so args alone are the command. Without ReplaceEntrypoint
	// the image's ENTRYPOINT stays in front of args, or of its CMD when
	// there are no args.
	Entrypoint        []string
	ReplaceEntrypoint bool

	// Terminal, when set, runs the command on a pseudo-terminal, as
	// `docker run -t` does: Stdin and Stdout connect the terminal and
	// Stderr is unused (see sandbox.Terminal). The caller owns the host
	// terminal: raw mode, its size and SIGWINCH.
	Terminal *sandbox.Terminal
}

// runArgv is the command Builder.Run starts for an image whose config has
// entrypoint and cmd, given o and the caller's args: Docker's rules (see
// RunOptions.Entrypoint).
func runArgv(entrypoint, cmd, args []string, o RunOptions) ([]string, error) {
	if o.ReplaceEntrypoint {
		argv := append(slices.Clone(o.Entrypoint), args...)
		if len(argv) == 0 {
			return nil, errors.New(`no command: an empty entrypoint clears the image's ENTRYPOINT and CMD; give a command after the image name`)
		}
		if argv[0] == "" {
			return nil, errors.New(`the entrypoint's program name is empty: give a program, or an empty entrypoint to clear the image's`)
		}
		return argv, nil
	}
	argv := slices.Clone(entrypoint)
	if len(args) > 0 {
		argv = append(argv, args...)
	} else {
		argv = append(argv, cmd...)
	}
	if len(argv) == 0 {
		return nil, errors.New("the image has no ENTRYPOINT or CMD: give a command after the image name")
	}
	return argv, nil
}

// Run is snapbuild.Builder.Run.
func (b *Engine) Run(ctx context.Context, ref string, args []string, o RunOptions) (int, error) {
	if b.noSandbox {
		return 0, b.needsSandbox("run " + ref)
	}
	rec, err := b.store.Resolve(ref)
	if err != nil {
		return 0, err
	}
	info, err := b.Inspect(rec.ID)
	if err != nil {
		return 0, err
	}
	c := info.Config.Config
	argv, err := runArgv(c.Entrypoint, c.Cmd, args, o)
	if err != nil {
		return 0, fmt.Errorf("run %s: %w", ref, err)
	}
	mounts, err := b.mountsOf(ref)
	if err != nil {
		return 0, err
	}
	files, err := mountFiles(mounts)
	if err != nil {
		return 0, err
	}
	a, err := b.store.Snapshots().Prepare(rec.ChainID)
	if err != nil {
		return 0, err
	}
	defer a.Remove()
	if err := attachMounts(ctx, a.Rootfs, files); err != nil {
		return 0, err
	}
	u, err := userdb.ExecUser(a.Rootfs, c.User)
	if err != nil {
		return 0, err
	}
	if sandbox.SingleID() && (u.Uid != 0 || u.Gid != 0) {
		// Refused before runc fails to set the IDs, as a build's USER.
		return 0, sandbox.SingleIDError(fmt.Sprintf("run %s: USER %s (uid %d, gid %d)", ref, orDefault(c.User, "root"), u.Uid, u.Gid))
	}
	seq := b.seq.Add(1)
	stateDir := filepath.Join(b.store.Root(), "run", fmt.Sprint(os.Getpid()))
	defer os.RemoveAll(stateDir)
	res, err := sandbox.Run(ctx, sandbox.Spec{
		ID:       fmt.Sprintf("snapbuild-run-%d-%d", os.Getpid(), seq),
		StateDir: stateDir,
		Rootfs:   a.Rootfs,
		Args:     argv,
		Env:      withPath(append(slices.Clone(c.Env), o.Env...)),
		Cwd:      orDefault(o.Workdir, c.WorkingDir),
		UID:      u.Uid, GID: u.Gid,
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr,
		Terminal: o.Terminal,
		Network:  b.network,
		Security: b.security,
	})
	return res.ExitCode, err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// withPath adds Docker's default PATH when env has none.
func withPath(env []string) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return env
		}
	}
	return append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

var _ = base.DefaultMirror
