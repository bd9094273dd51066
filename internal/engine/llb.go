package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/dockerfile"
	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/remote"
	"github.com/snapbuild/snapbuild/internal/worker"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/sandbox"
)

// parentRef is the name a Dockerfile layer's "FROM base" is converted
// with: the image the chain has built so far, which the resolver pins by
// its manifest digest. The name is constant, so that it adds nothing to the
// cache keys beyond the digest.
const parentRef = "snapbuild.invalid/parent:latest"

// contextName is the build context's local source (local://context).
const contextName = "context"

// rootRef is the image a root layer's FROM names for the converter when
// its own reference is not one the converter resolves (from_registry's
// "oci:" forms, from_id's names, debian_slim's python:3.x-slim-<suite> that
// this site bootstraps): the resolver makes the base as the layer's
// rootSpec says and pins the source op to the image it made.
const rootRef = "snapbuild.invalid/root:latest"

// volumeID prefixes the cache mount ID a volumes= layer's exec ops carry
// for each volume: the volume as Modal names it (modal.Volume.from_name
// ("x")), so that it is part of the op and its cache key. The builder maps
// it to the volume's directory (worker.WithCacheDirs).
const volumeID = "snapbuild.internal/volume="

// gpuDevice prefixes the CDI device name a gpu= layer's exec ops carry:
// the Modal request ("A100:2", "H100,A100" for fallbacks) in snapbuild's
// own namespace, so that the request is part of the op (and its cache key,
// as Modal's gpu_config is part of the layer). The builder's device
// injector resolves it, when the op runs, to the host's devices (CDI specs
// for nvidia.com/gpu, or the driver's files; package gpu).
const gpuDevice = "snapbuild.internal/gpu="

// llbStep is one instruction of a Dockerfile layer, as the progress shows it.
type llbStep struct {
	in    instruction
	ev    Event         // its EventStart template: Step, Total, Entry, ...
	skip  bool          // "FROM base" of a dockerfile_commands layer: no step
	final digest.Digest // the vertex whose result completes it; "" for none
	vtx   map[digest.Digest]bool

	started, done bool
	// ran: an exec or file op of it ran, or its base was pulled or
	// bootstrapped; a step with ops none of which ran is cached.
	ran bool
	// resolved: the resolver made or found the image it names (a FROM or
	// COPY --from), so it did work or was cached even without a vertex.
	resolved bool
	ent      *entryRun
	start    time.Time
	out      *lineWriter
	commit   time.Duration // layer capture of its ops that ran (worker.Ref.Capture)
}

// llbLayer is the solve of one Dockerfile layer.
type llbLayer struct {
	b     *Engine
	l     *modal.Layer
	mask  redactor // the secrets' values, masked in step output
	steps []*llbStep
	byVtx map[digest.Digest]*llbStep
	mu    sync.Mutex // steps' state, from the solver's goroutines
	next  int        // the first step not yet reported, in order
	// ent is the layer's one entry when it is not one per instruction
	// (a Modal method); nil before it starts.
	ent *entryRun
	// captured holds the refs whose Capture a step has counted.
	captured map[*worker.Ref]bool
	// baseHistory is the number of history entries of a root layer's
	// base (see base).
	baseHistory int
	// resolveErr is the resolver's error, if it failed.
	resolveErr error
}

// solveLayer builds Dockerfile layer l on st: its text (on FROM the image
// st is, for a dockerfile_commands layer) converted by BuildKit's
// converter, the graph solved by the worker on the store's snapshots. ins
// are l's parsed instructions and evs their progress templates (one per
// instruction, the skipped "FROM base" included).
//
// For a dry run (pl set) it records each instruction's state in pl
// instead, and *stopped says whether an earlier step would run (every
// later one is then pending).
func (b *Engine) solveLayer(ctx context.Context, st *buildState, l *modal.Layer, ins []instruction, evs []Event, files []contextFile, force bool, pl *PlanLayer, stopped *bool) error {
	if pl != nil {
		b.plan = &planCursor{} // pulls and bootstraps would run; nothing is written
		defer func() { b.plan = nil }()
	}
	text := strings.Join(l.Commands, "\n")
	if l.Root != nil && !l.Root.Dockerfile && !l.Root.Scratch {
		// The base is resolved by the resolver as l.root says; the rest
		// of the layer is its text. "FROM root" is line 1: line numbers
		// stay the layer's.
		text = strings.Join(append([]string{"FROM " + rootRef}, l.Commands[1:]...), "\n")
	}
	if l.Root == nil {
		if st.manifest == "" {
			if _, err := b.writeManifest(st); err != nil {
				return err
			}
		}
		// "FROM base" is line 1 either way: line numbers stay the layer's.
		lines, err := llbLines(l, ins, st.config.Env, files)
		if err != nil {
			return &modal.InvalidError{Method: l.Method, Message: err.Error()}
		}
		text = "FROM " + parentRef + "\n" + strings.Join(lines, "\n")
	}
	x := &llbLayer{b: b, l: l, byVtx: map[digest.Digest]*llbStep{}}
	for i, in := range ins {
		x.steps = append(x.steps, &llbStep{in: in, ev: evs[i], skip: l.Root == nil && i == 0, vtx: map[digest.Digest]bool{}})
	}

	tmp := filepath.Join(b.store.Root(), "tmp")
	if pl != nil {
		tmp = "" // a dry run writes nothing to the store
	}
	lc, err := localContext(ctx, l, files, tmp)
	if err != nil {
		return &modal.InvalidError{Method: l.Method, Message: err.Error()}
	}
	defer lc.release()

	env, secrets, err := stepSecrets(l)
	if err != nil {
		return err
	}
	x.mask = newRedactor(secrets.vars)

	var def0 *pb.Definition
	var img dockerspec.DockerOCIImage
	var locals []localSource
	if l.Function != nil {
		rt, err := os.MkdirTemp(tmp, "function-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(rt)
		def0, img, locals, err = x.functionLLB(ctx, st, "FROM base\n"+l.Function.Title(), rt)
		if err != nil {
			return &modal.InvalidError{Method: l.Method, Message: err.Error()}
		}
	} else if def0, img, err = x.convert(ctx, st, text, lc.exclude, force, pl, stopped); err != nil || def0 == nil {
		return err
	}
	remoteSolve := b.buildkit != nil && pl == nil
	if remoteSolve {
		if why := b.remoteRefusal(l); why != "" {
			return remoteLayer(l, why)
		}
	}
	def, err := build.Rewrite(def0, func(op *pb.Op, md *pb.OpMetadata) error {
		if force || b.forceRest { // a moved base (pin.go) reruns what follows
			md.IgnoreCache = true
		}
		if src := op.GetSource(); src != nil && src.Identifier == "local://"+contextName && len(lc.include) > 0 {
			if src.Attrs == nil {
				src.Attrs = map[string]string{}
			}
			inc, _ := json.Marshal(lc.include)
			src.Attrs[pb.AttrIncludePatterns] = string(inc)
		}
		if e := op.GetExec(); e != nil {
			e.Secretenv = append(e.Secretenv, env...)
			if remoteSolve {
				remoteEnv(e, b.siteEnv())
			}
			if b.network == sandbox.NetworkNone {
				// An offline build (--network none) is offline for every
				// op, a Dockerfile's RUN --network=host included; the
				// mode is part of the op, so of its key.
				e.Network = pb.NetMode_NONE
			}
			if b.network == sandbox.NetworkPrivate && e.Network != pb.NetMode_NONE {
				// So is a private build for every op not asked to be
				// offline: the worker's network (a label BuildKit's
				// worker constraints can ask for) is part of the op.
				e.Network = pb.NetMode_UNSET
				worker.RequireNetwork(op, sandbox.NetworkPrivate)
			}
			if b.security == sandbox.SecurityInsecure {
				// So is an insecure build for every op: the mode is
				// part of the op, so of its key.
				e.Security = pb.SecurityMode_INSECURE
			}
			if l.GPU != "" {
				e.CdiDevices = append(e.CdiDevices, &pb.CDIDevice{Name: gpuDevice + l.GPU})
			}
			vols := l.AllVolumes()
			for _, p := range slices.Sorted(maps.Keys(vols)) {
				e.Mounts = append(e.Mounts, &pb.Mount{
					Input: int64(pb.Empty), Output: int64(pb.SkipOutput), Dest: p, MountType: pb.MountType_CACHE,
					CacheOpt: &pb.CacheOpt{ID: volumeID + vols[p].Repr(), Sharing: pb.CacheSharingOpt_SHARED},
				})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if remoteSolve {
		// The bases the store holds are read from it by buildkitd; the
		// progress maps the vertices buildkitd reports, so by the
		// rewritten definition's digests.
		if def, err = remote.RewriteSources(def, b.store.Blobs().Has); err != nil {
			return err
		}
	}
	g, err := build.Load(def)
	if err != nil {
		return err
	}
	x.mapVertices(g, def)
	x.skipUnused(l.Target)
	if remoteSolve {
		dirs := map[string]string{contextName: lc.dir}
		for _, ls := range locals {
			dirs[ls.name] = ls.dir
		}
		return x.solveRemote(ctx, st, def, g, img, dirs, secrets.store)
	}

	wdir := filepath.Join(b.store.Root(), "worker")
	if pl != nil {
		if _, err := os.Stat(wdir); err != nil {
			// Nothing was ever built this way, so nothing is cached; a
			// dry run's worker, which only computes keys, lives outside
			// the store.
			if wdir, err = os.MkdirTemp("", "snapbuild-plan-"); err != nil {
				return err
			}
			defer os.RemoveAll(wdir)
		}
	}
	wopts := []worker.Option{worker.WithEpoch(b.epoch), worker.WithOutputFor(x.output), worker.WithSecrets(secrets.store), worker.WithDevices(x.devices), worker.WithCacheDirs(x.volumeDir), worker.WithDefaultEnv(b.siteEnv()), worker.WithPackageCaches(x.packageCaches)}
	wopts = append(wopts, b.timestampsWorkerOptions()...)
	if f := l.Function; f != nil {
		// A traceback is longer than a shell's error; the timeout is the
		// call's (Modal's default 3600 s), outside the op's key.
		timeout := f.Call.Timeout
		if timeout == 0 {
			timeout = modal.DefaultFunctionTimeout
		}
		wopts = append(wopts, worker.WithTailLines(60), worker.WithTimeout(func(context.Context) time.Duration { return timeout }))
	}
	if b.network != "" {
		wopts = append(wopts, worker.WithNetwork(b.network))
	}
	wopts = append(wopts, worker.WithSecurity(b.security))
	if pl == nil {
		// A dry run reads the store's cache alone.
		wopts = append(wopts, worker.WithRemoteCache(b.remoteImporter(ctx), b.remoteRecorder()))
	}
	w, err := worker.New(b.store.Blobs(), b.store.Snapshots(), wdir, wopts...)
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.AddLocal(contextName, lc.dir); err != nil {
		return err
	}
	for _, ls := range locals {
		if err := w.AddLocal(ls.name, ls.dir, ls.opts...); err != nil {
			return err
		}
	}
	sopts := []build.Option{build.WithCache(w.Cache()), build.WithKeySalt(w.KeySalt()), build.WithProgress(x.event)}
	sopts = append(sopts, build.WithPool(b.pool)) // shared with the Engine's other runs
	s, err := build.NewSolver(w, sopts...)
	if err != nil {
		return err
	}
	keys, err := s.Keys(ctx, g)
	if err != nil {
		return x.stepError(err)
	}
	if pl != nil {
		if err := x.plan(ctx, pl, w.Cache(), keys, force, stopped); err != nil || *stopped {
			return err
		}
		// Nothing of the layer would run: the next layer's key needs the
		// image this one makes, which the cache gives.
		ref := &worker.Ref{Chain: st.chain, Layers: st.layers, DiffIDs: st.diffIDs}
		if v := g.Target.Vertex; v == nil {
			ref = &worker.Ref{}
		} else if refs, ok, err := w.Cache().Get(ctx, keys[v.Digest]); err != nil {
			return err
		} else if ok && len(refs) > 0 {
			ref, _ = refs[0].(*worker.Ref)
		}
		x.apply(ctx, st, img, g, w.Cache(), keys, ref)
		return nil
	}

	if b.noSandbox {
		// The dry run's test: an op of a step the cache lacks would run.
		var pl PlanLayer
		stop := false
		if err := x.plan(ctx, &pl, w.Cache(), keys, force, &stop); err != nil {
			return err
		}
		if stop {
			return b.needsSandbox(l.Method)
		}
	}
	x.advance()
	out, err := s.SolveGraph(ctx, g)
	if err != nil {
		x.abort(err)
		return x.stepError(err)
	}
	ref, _ := out.Ref.(*worker.Ref)
	if ref == nil {
		ref = &worker.Ref{}
	}
	x.finish()
	finalKeys(b.remoteRecorder(), g, keys)
	x.apply(ctx, st, img, g, w.Cache(), keys, ref)
	return nil
}

// convert converts the layer's Dockerfile text with BuildKit's converter,
// its images resolved by x.resolver. A nil definition and error means a dry
// run (pl) learnt that a step would run: pl is filled.
func (x *llbLayer) convert(ctx context.Context, st *buildState, text string, excludes []string, force bool, pl *PlanLayer, stopped *bool) (*pb.Definition, dockerspec.DockerOCIImage, error) {
	b, l := x.b, x.l
	res, err := dockerfile.Convert(ctx, []byte(text), dockerfile.Options{
		BuildArgs:    l.BuildArgs,
		Target:       l.Target,
		ContextName:  contextName,
		Excludes:     excludes,
		Filename:     orDefault(l.Dockerfile, l.Method),
		MetaResolver: x.resolver(st, force),
	})
	if err != nil {
		var wr *wouldRun
		if pl != nil && errors.As(err, &wr) {
			x.planRest(pl, wr.what, stopped)
			return nil, dockerspec.DockerOCIImage{}, nil
		}
		if ctx.Err() != nil {
			x.abort(ctx.Err())
			return nil, dockerspec.DockerOCIImage{}, ctx.Err()
		}
		var de *dockerfile.Error
		line := 0
		if errors.As(err, &de) {
			line = de.StartLine
		}
		x.failAt(line, err)
		if x.resolveErr != nil && errors.Is(err, x.resolveErr) {
			// A base that could not be made or found: the resolver's
			// error names it, without the converter's wrapping.
			return nil, dockerspec.DockerOCIImage{}, x.resolveErr
		}
		if de != nil {
			// "app.Dockerfile:3: unknown instruction: COPPY (did you mean COPY?)"
			return nil, dockerspec.DockerOCIImage{}, &modal.InvalidError{Message: de.Error()}
		}
		if !errors.As(err, new(*modal.InvalidError)) {
			return nil, dockerspec.DockerOCIImage{}, &modal.InvalidError{Method: l.Method, Message: err.Error()}
		}
		return nil, dockerspec.DockerOCIImage{}, err
	}
	for _, w := range res.Warnings {
		b.progress.Event(Event{Kind: EventWarn, Step: x.steps[0].ev.Step, Total: x.steps[0].ev.Total, Line: l.Method + ": " + w.String()})
	}
	return res.Definition, res.Image, nil
}

// apply makes st the image the layer made: the converter's config img,
// the layers of ref, and the history with the empty_layer flags set from
// what each op made (and, for a Modal layer, its own text).
func (x *llbLayer) apply(ctx context.Context, st *buildState, img dockerspec.DockerOCIImage, g *build.Graph, c build.Cache, keys map[digest.Digest]digest.Digest, ref *worker.Ref) {
	if ref == nil {
		ref = &worker.Ref{}
	}
	x.applyHistory(st, img, layerHistory(ctx, g, c, keys, img.History, len(ref.Layers)), ref)
}

// applyHistory is apply with the history hist of the layer's graph, its
// entries marked empty where the ops made no layer.
func (x *llbLayer) applyHistory(st *buildState, img dockerspec.DockerOCIImage, hist []ocispec.History, ref *worker.Ref) {
	if x.l.Root == nil || !x.l.Root.Dockerfile {
		// A Modal layer's history is its own text, as Modal shows it:
		// after its parent's, or its base's for a root layer.
		steps := make([]instruction, 0, len(x.steps))
		for _, s := range x.steps[1:] {
			steps = append(steps, s.in)
		}
		base := len(st.history)
		if x.l.Root != nil {
			base = x.baseHistory
		}
		hist = modalHistory(hist, base, steps)
	}
	onBuild := slices.Clone(img.Config.OnBuild)
	if x.l.Root == nil {
		onBuild = append(slices.Clone(st.onBuild), onBuild...)
	}
	st.chain, st.layers, st.diffIDs = ref.Chain, slices.Clone(ref.Layers), slices.Clone(ref.DiffIDs)
	st.config = img.Config.ImageConfig
	st.shell = slices.Clone(img.Config.Shell)
	st.health = img.Config.Healthcheck
	st.onBuild = onBuild
	st.history = hist
	st.manifest = ""
}

// llbLines returns the Dockerfile text the converter gets for the
// instructions after "FROM base" of a Modal layer, one line per line of
// l.commands: the layer's own text, except where Modal's text would mean
// something else in Docker's:
//   - env(): `ENV PATH='/x:$PATH'` expands the variables the image sets
//     (snapbuild's rule, see expandKnown), which Docker's single quotes
//     would keep literal;
//   - add_local_file/add_local_dir(copy=True): Modal's `COPY . /` would copy
//     the context's parent directories over the image's (/root's mode);
//     `COPY ["<remote>", "<remote>"]` copies only what was added.
func llbLines(l *modal.Layer, ins []instruction, env []string, files []contextFile) ([]string, error) {
	lines := slices.Clone(l.Commands[1:])
	switch l.Method {
	case "env":
		lex := shell.NewLex('\\')
		env = slices.Clone(env)
		for i, in := range ins[1:] {
			c, ok := in.Cmd.(*instructions.EnvCommand)
			if !ok || len(c.Env) != 1 || in.Line != i+2 {
				return l.Commands[1:], nil
			}
			v, _, err := lex.ProcessWord(c.Env[0].Value, shell.EnvsFromSlice(env))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", in.Text, err)
			}
			v = expandKnown(v, env)
			env = setEnv(env, c.Env[0].Key, v)
			lines[i] = "ENV " + c.Env[0].Key + "=" + modal.ShlexQuote(v)
		}
	case "add_local_file", "add_local_dir":
		if len(l.Context) == 1 && len(lines) == 1 && len(files) > 0 {
			q, _ := json.Marshal([]string{l.Context[0].Remote, l.Context[0].Remote})
			lines[0] = "COPY " + string(q)
		}
	}
	return lines, nil
}

// modalHistory returns hist with the entries after the first base entries
// written as Modal writes them (each instruction's text, comment
// "snapbuild"), when the converter wrote one entry per instruction; hist as
// it is otherwise (a base's ONBUILD triggers add entries).
func modalHistory(hist []ocispec.History, base int, ins []instruction) []ocispec.History {
	if len(hist)-base != len(ins) {
		return hist
	}
	for i, in := range ins {
		h := &hist[base+i]
		h.CreatedBy, h.Comment = in.Text, "snapbuild"
	}
	return hist
}

// layerSecrets are the values a layer's steps get as secret env.
type layerSecrets struct {
	store worker.SecretMap  // by secret ID
	vars  map[string]string // the secrets' variables, to mask in output
}

// stepSecrets returns the secret env entries every exec op of l gets for
// its env= (BuildEnv) and secrets= (Secrets) variables, and their values.
// As Modal passes both as secrets, only what names a value enters the op
// (and so its cache key): the variable's name for env=, the secret's
// identity and the name for secrets=; secrets override env=, later secrets
// earlier ones.
func stepSecrets(l *modal.Layer) ([]*pb.SecretEnv, layerSecrets, error) {
	ls := layerSecrets{store: worker.SecretMap{}, vars: map[string]string{}}
	ids := map[string]string{} // variable -> secret ID
	for k, v := range l.BuildEnv {
		id := "env/" + k
		ids[k], ls.store[id] = id, []byte(v)
	}
	for i, sec := range l.Secrets {
		vars, err := sec.Load()
		if err != nil {
			return nil, ls, &modal.InvalidError{Method: l.Method, Message: err.Error()}
		}
		for k, v := range vars {
			id := fmt.Sprintf("secret/%d/%s/%s", i, sec.Repr(), k)
			ids[k], ls.store[id] = id, []byte(v)
			ls.vars[k] = v
		}
	}
	for id, v := range l.MountSecrets {
		ls.store[id] = v
		ls.vars["secret "+id] = string(v)
	}
	names := make([]string, 0, len(ids))
	for k := range ids {
		names = append(names, k)
	}
	slices.Sort(names)
	env := make([]*pb.SecretEnv, 0, len(names))
	for _, k := range names {
		env = append(env, &pb.SecretEnv{ID: ids[k], Name: k})
	}
	return env, ls, nil
}

// resolver resolves the images the layer's FROM lines name: parentRef is
// st, the chain so far; python:3.11[-slim][-bookworm] and
// python:3.13[-slim][-trixie] are bootstrapped from the Debian archive, as
// debian_slim is, unless a registry mirror serves Docker Hub; any other
// image is taken from the store by name, or pulled (sourceImage). The FROM
// step starts when its image is resolved, so that a pull or a bootstrap
// reports under it. Calls are serialized: they report one at a time.
func (x *llbLayer) resolver(st *buildState, force bool) dockerfile.MetaResolver {
	b, l := x.b, x.l
	var mu sync.Mutex
	return dockerfile.MetaResolverFunc(func(ctx context.Context, ref string, _ ocispec.Platform) (_ digest.Digest, _ []byte, err error) {
		mu.Lock()
		defer mu.Unlock()
		defer func() {
			if err != nil && x.resolveErr == nil {
				x.resolveErr = err
			}
		}()
		if ref == parentRef {
			m, cfg, err := b.manifestConfig(st.manifest)
			if err != nil || len(st.onBuild) == 0 {
				return m, cfg, err
			}
			// A Modal chain is one image: the parent's ONBUILD triggers
			// are kept for images built FROM it, not run by the next
			// layer (apply carries them over).
			cfg, err = withoutOnBuild(cfg)
			return m, cfg, err
		}
		// The converter normalizes references; people and the store's
		// names use the familiar form (python:3.11-slim, im-…).
		if named, err := reference.ParseNormalizedNamed(ref); err == nil {
			ref = reference.FamiliarString(named)
		}
		s := x.fromStep(ref)
		if b.plan == nil {
			x.startFrom(s)
		}
		s.resolved = true
		if ref == rootRef {
			// The root layer's own base, as its rootSpec says.
			return x.base(ctx, s, l, force)
		}
		if d := offlinePython(ref); d != nil && !b.slimFromRegistry {
			return x.base(ctx, s, &modal.Layer{Method: l.Method, Root: &modal.RootSpec{Debian: d}}, false)
		}
		if id := strings.TrimSuffix(ref, ":latest"); strings.HasPrefix(id, "im-") {
			// An image ID of this store, as the Modal API names images.
			rec, err := b.store.Resolve(id)
			if err != nil {
				return "", nil, &modal.InvalidError{Method: l.Method, Message: err.Error()}
			}
			return b.manifestConfig(rec.Manifest.Digest)
		}
		rec, pulled, err := b.sourceImage(ctx, l.Method, s.ev, ref)
		if err != nil {
			return "", nil, err
		}
		s.ran = s.ran || pulled
		return b.manifestConfig(rec.Manifest.Digest)
	})
}

// base makes the base image root layer rl's rootSpec names (a Debian
// bootstrap, a registry pull, a stored image), reporting under step s,
// and returns its manifest digest and config for the converter. A base
// that is not an image of the store already (a bootstrap) is written as
// one. x.baseHistory is set to the number of its history entries.
func (x *llbLayer) base(ctx context.Context, s *llbStep, rl *modal.Layer, force bool) (digest.Digest, []byte, error) {
	b := x.b
	bs := &buildState{}
	in := instruction{Text: s.in.Text, Line: s.in.Line}
	cached, err := b.from(ctx, bs, rl, in, force, s.ev)
	if err != nil {
		return "", nil, err
	}
	s.ran = s.ran || !cached
	if bs.manifest == "" {
		if _, err := b.writeManifest(bs); err != nil {
			return "", nil, err
		}
	}
	x.baseHistory = len(bs.history)
	return b.manifestConfig(bs.manifest)
}

// withoutOnBuild returns the image config JSON cfg without its ONBUILD
// triggers (config.OnBuild), every other field as it was.
func withoutOnBuild(cfg []byte) ([]byte, error) {
	var img map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &img); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	var c map[string]json.RawMessage
	if raw, ok := img["config"]; ok {
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("image config: %w", err)
		}
	}
	delete(c, "OnBuild")
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	img["config"] = raw
	return json.Marshal(img)
}

// manifestConfig returns the manifest digest m and its image's config blob.
func (b *Engine) manifestConfig(m digest.Digest) (digest.Digest, []byte, error) {
	if cfg, ok := b.planConfigs[m]; ok {
		return m, cfg, nil
	}
	man, err := b.store.Blobs().Manifest(m)
	if err != nil {
		return "", nil, err
	}
	rc, err := b.store.Blobs().Open(man.Config.Digest)
	if err != nil {
		return "", nil, err
	}
	defer rc.Close()
	cfg, err := io.ReadAll(rc)
	if err != nil {
		return "", nil, err
	}
	return m, cfg, nil
}

// siteEnv is what every step gets where its own environment does not set
// it, outside the ops and so outside every cache key (as stepEnviron): the
// site's step environment (WithStepEnv) and SOURCE_DATE_EPOCH.
func (b *Engine) siteEnv() []string {
	return append(slices.Clone(b.stepEnv), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", b.epoch.Unix()))
}

// mapVertices assigns each vertex of g to the instruction whose lines the
// source map gives it, and finds each instruction's final vertex: the one
// no other vertex of the same instruction reads.
func (x *llbLayer) mapVertices(g *build.Graph, def *pb.Definition) {
	byLine := map[int]*llbStep{}
	for _, s := range x.steps {
		byLine[s.in.Line] = s
	}
	if def.Source == nil {
		return
	}
	for d, locs := range def.Source.Locations {
		v := g.Vertex(digest.Digest(d))
		if v == nil {
			continue
		}
		for _, loc := range locs.Locations {
			if len(loc.Ranges) == 0 {
				continue
			}
			if s := byLine[int(loc.Ranges[0].Start.Line)]; s != nil {
				s.vtx[v.Digest] = true
				x.byVtx[v.Digest] = s
				break
			}
		}
	}
	for _, s := range x.steps {
		read := map[digest.Digest]bool{}
		for d := range s.vtx {
			for _, in := range g.Vertex(d).Inputs {
				read[in.Vertex.Digest] = true
			}
		}
		for d := range s.vtx {
			if !read[d] {
				s.final = d
			}
		}
	}
}

// fromStep returns the step that most likely names the image ref (the
// converter gives the resolver the normalized reference, with build args
// expanded, in familiar form here): a FROM or a COPY --from whose image
// name ref starts with, else the first FROM.
func (x *llbLayer) fromStep(ref string) *llbStep {
	name, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	var first *llbStep
	for _, s := range x.steps {
		if s.skip {
			continue
		}
		var word string
		switch c := s.in.Cmd.(type) {
		case *instructions.Stage:
			if first == nil {
				first = s
			}
			word = c.BaseName
		case *instructions.CopyCommand:
			word = c.From
		default:
			continue
		}
		w, _, _ := strings.Cut(word, "@")
		if i := strings.LastIndex(w, ":"); i > strings.LastIndex(w, "/") {
			w = w[:i]
		}
		if w != "" && !strings.Contains(w, "$") && (w == name || strings.HasSuffix(name, "/"+w)) {
			return s
		}
	}
	if first == nil {
		return x.steps[0]
	}
	return first
}

// startFrom starts step s when the resolver is asked for its image, after
// reporting the global ARG lines before it, so that the progress keeps the
// Dockerfile's order.
func (x *llbLayer) startFrom(s *llbStep) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, t := range x.steps {
		if t == s {
			break
		}
		if _, ok := t.in.Cmd.(*instructions.ArgCommand); ok && !t.skip && !t.done {
			x.endStep(t, nil)
		}
	}
	x.startStep(s)
}

// skipUnused marks the steps of stages the target does not need: no vertex
// of theirs is in the graph, and they are not the target stage (a stage
// of config instructions only, FROM scratch, has no vertex either). They
// are not reported.
func (x *llbLayer) skipUnused(target string) {
	type stage struct {
		steps  []*llbStep
		name   string
		needed bool
	}
	var stages []*stage
	for _, s := range x.steps {
		if c, ok := s.in.Cmd.(*instructions.Stage); ok {
			stages = append(stages, &stage{name: c.Name})
		}
		if len(stages) == 0 {
			continue // global ARGs
		}
		st := stages[len(stages)-1]
		st.steps = append(st.steps, s)
		st.needed = st.needed || len(s.vtx) > 0
	}
	if len(stages) == 0 {
		return
	}
	last := stages[len(stages)-1]
	for _, st := range stages {
		if target != "" && strings.EqualFold(st.name, target) {
			last = st
		}
	}
	last.needed = true
	for _, st := range stages {
		if st.needed {
			continue
		}
		for _, s := range st.steps {
			s.skip = true
		}
	}
}

// event maps a solver event to the progress of its instruction.
func (x *llbLayer) event(e build.Event) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.byVtx[e.Vertex.Digest]
	if s == nil || s.skip || s.done {
		return
	}
	switch e.Kind {
	case build.VertexStarted:
		x.startStep(s)
		if e.Vertex.Kind != build.KindSource {
			s.ran = true
		}
		if e.Vertex.Kind == build.KindExec {
			x.b.stats.ContainersStarted++
		}
	case build.VertexCached:
		// What the cached vertex was made from is cached with it: the
		// steps of those vertices end first, in order.
		below := map[digest.Digest]bool{}
		var walk func(v *build.Vertex)
		walk = func(v *build.Vertex) {
			for _, in := range v.Inputs {
				if !below[in.Vertex.Digest] {
					below[in.Vertex.Digest] = true
					walk(in.Vertex)
				}
			}
		}
		walk(e.Vertex)
		for _, t := range x.steps {
			if t != s && !t.skip && !t.done && t.final != "" && below[t.final] {
				x.endStep(t, nil)
			}
		}
		x.startStep(s)
		if e.Vertex.Digest == s.final {
			x.endStep(s, nil)
		}
	case build.VertexDone:
		for _, o := range e.Outputs {
			// An op that changed nothing returns its input, whose
			// capture was its own op's.
			if r, ok := o.(*worker.Ref); ok && r != nil && !x.captured[r] {
				s.commit += r.Capture
				if x.captured == nil {
					x.captured = map[*worker.Ref]bool{}
				}
				x.captured[r] = true
			}
		}
		if e.Vertex.Digest == s.final {
			x.endStep(s, nil)
		}
	case build.VertexFailed:
		x.endStep(s, e.Err)
	case build.VertexCanceled:
		// Another vertex failed (e.Err) or the build was cancelled
		// while this one ran: its step is CANCELED, not failed.
		x.endStep(s, canceled(e.Err))
	}
	x.advanceLocked()
}

// startStep reports s's start, once. mu is held.
func (x *llbLayer) startStep(s *llbStep) {
	if s.started {
		return
	}
	s.started, s.start = true, time.Now()
	ev := s.ev
	if x.l.PerInstruction() {
		s.ent = x.b.startEntry(ev, x.b.entryLabel(x.l, s.in))
	} else if x.ent == nil {
		x.ent = x.b.startEntry(ev, x.b.entryLabel(x.l, s.in))
	}
	ev.Kind = EventStart
	x.b.progress.Event(ev)
}

// endLayer ends the layer's one entry, if it started. mu is held.
func (x *llbLayer) endLayer(err error) {
	if x.ent != nil {
		x.b.endEntry(x.ent, err)
		x.ent = nil
	}
}

// endStep reports how s ended, once. mu is held.
func (x *llbLayer) endStep(s *llbStep, err error) {
	if s.done {
		return
	}
	x.startStep(s)
	s.done = true
	if s.out != nil {
		s.out.flush()
	}
	ev := s.ev
	ev.Kind, ev.Duration, ev.Commit = EventDone, time.Since(s.start), s.commit
	ev.Cached = err == nil && !s.ran && (len(s.vtx) > 0 || s.resolved)
	ev.setError(err)
	x.b.progress.Event(ev)
	x.b.stats.Steps++
	switch {
	case ev.Cached:
		x.b.stats.Cached++
	case len(s.vtx) == 0 && !s.resolved && err == nil:
		x.b.stats.Config++
	}
	worked := !ev.Cached && (len(s.vtx) > 0 || s.resolved) || err != nil
	if s.ent != nil {
		s.ent.worked, s.ent.cached = worked, ev.Cached
		x.b.endEntry(s.ent, err)
		return
	}
	if x.ent != nil {
		x.ent.worked = x.ent.worked || worked
		x.ent.cached = x.ent.cached || ev.Cached
	}
}

// advance reports, in order, the instructions before the first one still
// to run: those that change only the config, and those already done.
func (x *llbLayer) advance() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.advanceLocked()
}

func (x *llbLayer) advanceLocked() {
	for ; x.next < len(x.steps); x.next++ {
		s := x.steps[x.next]
		switch {
		case s.skip || s.done:
		case len(s.vtx) == 0:
			x.endStep(s, nil) // config only
		default:
			return
		}
	}
}

// finish reports every instruction not reported yet: after a successful
// solve, those whose ops were below a cache hit are cached.
func (x *llbLayer) finish() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range x.steps {
		if !s.skip && !s.done && len(s.vtx) > 0 {
			x.endStep(s, nil)
		}
	}
	x.advanceLocked()
	x.endLayer(nil)
}

// abort ends the entries still running after a failed solve: the failed
// vertex's step with err, the others as canceled by it. When err names no
// step, each running one ends with err.
func (x *llbLayer) abort(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var failed *llbStep
	if ve := (*build.VertexError)(nil); errors.As(err, &ve) {
		failed = x.byVtx[ve.Digest]
	}
	for _, s := range x.steps {
		if s.started && !s.done {
			if failed != nil && s != failed {
				x.endStep(s, canceled(err))
			} else {
				x.endStep(s, err)
			}
		}
	}
	x.endLayer(err)
}

// failAt ends the entry of the instruction at line (the first one still
// open when no instruction starts there) with err, and any other entry
// still running.
func (x *llbLayer) failAt(line int, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var at *llbStep
	for _, s := range x.steps {
		if s.skip || s.done {
			continue
		}
		if at == nil || s.in.Line == line {
			at = s
		}
		if s.in.Line == line {
			break
		}
	}
	for _, s := range x.steps {
		if s.started && !s.done && s != at {
			x.endStep(s, err)
		}
	}
	if at != nil {
		x.endStep(at, err)
	}
	x.endLayer(err)
}

// output gives an exec op's output to the progress of its instruction.
func (x *llbLayer) output(ctx context.Context) io.WriteCloser {
	v := build.VertexFrom(ctx)
	if v == nil {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.byVtx[v.Digest]
	if s == nil {
		return nil
	}
	ev := s.ev
	w := &lineWriter{mask: x.mask.mask, emit: func(line string) { x.b.progress.Event(ev.output(line)) }}
	s.out = w
	return flushCloser{w}
}

// devices gives an exec op the host's GPUs for its gpu= request (gpuDevice)
// and reports which, as the interpreter's steps do.
func (x *llbLayer) devices(ctx context.Context, devs []*pb.CDIDevice, spec *sandbox.Spec) error {
	for _, d := range devs {
		req, ok := strings.CutPrefix(d.Name, gpuDevice)
		if !ok {
			return fmt.Errorf("device %q: snapbuild gives steps GPUs only, through gpu= (RUN --device is not supported)", d.Name)
		}
		inj, err := gpuInjection(req, x.b.gpu)
		if err != nil {
			return &modal.InvalidError{Method: x.l.Method, Message: err.Error()}
		}
		inj.Apply(spec)
		if v := build.VertexFrom(ctx); v != nil {
			x.mu.Lock()
			s := x.byVtx[v.Digest]
			x.mu.Unlock()
			if s != nil {
				x.b.progress.Event(s.ev.output("gpu: " + inj.Description))
			}
		}
	}
	return nil
}

// volumeDir gives a volumes= cache mount (volumeID) its volume's
// directory; other cache mounts are the worker's.
func (x *llbLayer) volumeDir(_ context.Context, id string) (string, bool, error) {
	repr, ok := strings.CutPrefix(id, volumeID)
	if !ok {
		return "", false, nil
	}
	for _, v := range x.l.AllVolumes() {
		if v.Repr() == repr {
			dir, err := x.b.volumeDir(v)
			if err != nil {
				return "", false, &modal.InvalidError{Method: x.l.Method, Message: err.Error()}
			}
			return dir, true, nil
		}
	}
	return "", false, fmt.Errorf("%s is not one of the layer's volumes", repr)
}

// flushCloser flushes a lineWriter's last partial line on Close.
type flushCloser struct{ *lineWriter }

func (f flushCloser) Close() error { f.flush(); return nil }

// stepError maps the error of a solve to the builder's: an exec op that
// failed is a *StepError of its instruction.
func (x *llbLayer) stepError(err error) error {
	var ve *build.VertexError
	if !errors.As(err, &ve) {
		return err
	}
	s := x.byVtx[ve.Digest]
	var ee *worker.ExitError
	if errors.As(err, &ee) && s != nil {
		return &StepError{Step: s.ev.Step, Entry: s.ev.Entry, Method: s.ev.Method, Instruction: s.in.Text, ExitCode: ee.ExitCode, TimedOut: ee.TimedOut, Tail: ee.Tail, Cause: ee.Cause}
	}
	var ie *modal.InvalidError
	if errors.As(err, &ie) {
		// The builder's own error (a gpu= the host cannot serve, a
		// missing volume) already names the method and what to do.
		return ie
	}
	if s != nil {
		return fmt.Errorf("%s: %s: %w", x.l.Method, s.in.Text, ve.Err)
	}
	return fmt.Errorf("%s: %w", x.l.Method, err)
}

// plan fills pl for a dry run: each instruction is cached, config only,
// would run (the first whose final vertex the cache lacks), or pending
// (after one that would run, here or in an earlier layer: *stopped).
func (x *llbLayer) plan(ctx context.Context, pl *PlanLayer, c build.Cache, keys map[digest.Digest]digest.Digest, force bool, stopped *bool) error {
	for _, s := range x.steps {
		if s.skip {
			continue
		}
		ps := PlanStep{Instruction: s.in.Text}
		switch {
		case *stopped:
			ps.State = PlanPending
		case s.final == "":
			ps.State = PlanConfig
		default:
			k := keys[s.final]
			ps.Key = k.Encoded()
			_, ok, err := c.Get(ctx, k)
			if err != nil {
				return err
			}
			switch {
			case force:
				ps.State, ps.Note, *stopped = PlanRun, "run again: force_build", true
			case ok:
				ps.State = PlanCached
			default:
				ps.State, ps.Note, *stopped = PlanRun, "run: not in the cache", true
			}
		}
		pl.Steps = append(pl.Steps, ps)
	}
	return nil
}

// planRest records a dry run that stops at the layer's first instruction.
func (x *llbLayer) planRest(pl *PlanLayer, what string, stopped *bool) {
	for _, s := range x.steps {
		if s.skip {
			continue
		}
		ps := PlanStep{Instruction: s.in.Text, State: PlanPending}
		if !*stopped {
			ps.State, ps.Note, *stopped = PlanRun, what, true
		}
		pl.Steps = append(pl.Steps, ps)
	}
}

// layerHistory returns hist, the converter's history of the image, with
// the empty_layer flags of the entries the Dockerfile added set from what
// the ops made: an op whose diff was empty made no layer (the overlay
// differ writes none), where BuildKit would write an empty one. The ops are
// those of the target's chain (each op's first input, down to the base
// image), whose results are in c under keys. When they cannot all be
// found, the entries are marked as BuildKit's exporter marks them: the
// non-empty entries past the image's layer count become empty.
func layerHistory(ctx context.Context, g *build.Graph, c build.Cache, keys map[digest.Digest]digest.Digest, hist []ocispec.History, layers int) []ocispec.History {
	hist = slices.Clone(hist)
	var chain []*build.Vertex // target first
	for v := g.Target.Vertex; v != nil && len(v.Inputs) > 0; v = v.Inputs[mainInput(v)].Vertex {
		chain = append(chain, v)
	}
	made := make([]int, len(chain)) // layers each op added, target first
	ok := true
	for i, v := range chain {
		out, err := layersOf(ctx, c, keys[v.Digest])
		in, err2 := layersOf(ctx, c, keys[v.Inputs[mainInput(v)].Vertex.Digest])
		if err != nil || err2 != nil {
			ok = false
			break
		}
		made[i] = out - in
	}
	nonEmpty := 0
	for _, h := range hist {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if ok {
		// The chain's ops are the last len(chain) non-empty entries.
		i := 0
		for j := len(hist) - 1; j >= 0 && i < len(chain); j-- {
			if hist[j].EmptyLayer {
				continue
			}
			if made[i] == 0 {
				hist[j].EmptyLayer = true
			}
			i++
		}
		n := 0
		for _, h := range hist {
			if !h.EmptyLayer {
				n++
			}
		}
		if n == layers {
			return hist
		}
	}
	return normalizeHistory(hist, layers)
}

// normalizeHistory returns hist normalized as BuildKit's image exporter
// does it for an image of layers layers: the entries past the last one
// that has a layer are marked empty.
func normalizeHistory(hist []ocispec.History, layers int) []ocispec.History {
	hist = slices.Clone(hist)
	n := 0
	for j := range hist {
		if hist[j].EmptyLayer {
			continue
		}
		if n >= layers {
			hist[j].EmptyLayer = true
			continue
		}
		n++
	}
	return hist
}

// mainInput is the index of the input a vertex builds on: the root mount's
// for an exec op, the first otherwise (a file op's base, a merge's base).
func mainInput(v *build.Vertex) int {
	if e := v.Op.GetExec(); e != nil {
		for _, m := range e.Mounts {
			if m.Dest == pb.RootMount && m.Input >= 0 && int(m.Input) < len(v.Inputs) {
				return int(m.Input)
			}
		}
	}
	return 0
}

// layersOf returns the number of layers of the first output cached under
// key.
func layersOf(ctx context.Context, c build.Cache, key digest.Digest) (int, error) {
	refs, ok, err := c.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if !ok || len(refs) == 0 {
		return 0, errors.New("not cached")
	}
	r, _ := refs[0].(*worker.Ref)
	if r == nil {
		return 0, nil
	}
	return len(r.Layers), nil
}

// writeManifest stores st as an image manifest (no image record: a base
// for the converter to resolve and the worker to read) and sets
// st.manifest.
func (b *Engine) writeManifest(st *buildState) (digest.Digest, error) {
	cfg, layers := st.imageConfig()
	if b.plan != nil {
		// A dry run writes nothing: the manifest is described, and its
		// config kept for the resolver.
		img, err := oci.DescribeDockerImage(cfg, layers)
		if err != nil {
			return "", err
		}
		if b.planConfigs == nil {
			b.planConfigs = map[digest.Digest][]byte{}
		}
		b.planConfigs[img.Manifest.Digest] = img.ConfigJSON
		st.manifest = img.Manifest.Digest
		return st.manifest, nil
	}
	m, err := b.store.Blobs().WriteDockerImage(cfg, layers)
	if err != nil {
		return "", err
	}
	st.manifest = m.Digest
	return m.Digest, nil
}

// imageConfig returns st's image config, in Docker's extension of the OCI
// config (HEALTHCHECK, SHELL, ONBUILD), and its layers.
func (s *buildState) imageConfig() (dockerspec.DockerOCIImage, []ocispec.Descriptor) {
	// The config lives in the outer Config (with Docker's extensions),
	// which is also where JSON decoding puts it; the embedded Image's own
	// Config stays empty.
	cfg := ocispec.Image{
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: slices.Clone(s.diffIDs)},
		History:  slices.Clone(s.history),
	}
	if cfg.RootFS.DiffIDs == nil {
		cfg.RootFS.DiffIDs = []digest.Digest{}
	}
	return dockerspec.DockerOCIImage{Image: cfg, Config: dockerspec.DockerOCIImageConfig{
		ImageConfig: s.config,
		DockerOCIImageConfigExt: dockerspec.DockerOCIImageConfigExt{
			Healthcheck: s.health, Shell: s.shell, OnBuild: s.onBuild,
		},
	}}, slices.Clone(s.layers)
}
