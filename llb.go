package snapbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	fscopy "github.com/tonistiigi/fsutil/copy"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/dockerfile"
	"github.com/snapbuild/snapbuild/internal/worker"
)

// parentRef is the name a Dockerfile layer's "FROM base" is converted
// with: the image the chain has built so far, which the resolver pins by
// its manifest digest. The name is constant, so that it adds nothing to the
// cache keys beyond the digest.
const parentRef = "snapbuild.invalid/parent:latest"

// contextName is the build context's local source (local://context).
const contextName = "context"

// viaLLB reports whether l is built by converting its Dockerfile text with
// BuildKit's converter and solving the graph (internal/dockerfile,
// internal/build, internal/worker): from_dockerfile's Dockerfile and
// dockerfile_commands. Layers that need what the worker does not do yet
// (gpu=, volumes) are still interpreted step by step.
func (l *layer) viaLLB() bool {
	if l.method != "dockerfile_commands" && (l.root == nil || !l.root.dockerfile) {
		return false
	}
	return l.gpu == "" && len(l.volumes) == 0 && l.function == nil && l.addPython == ""
}

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
	ran   bool
	ent           *entryRun
	start         time.Time
	out           *lineWriter
}

// llbLayer is the solve of one Dockerfile layer.
type llbLayer struct {
	b     *Builder
	l     *layer
	mask  redactor // the secrets' values, masked in step output
	steps []*llbStep
	byVtx map[digest.Digest]*llbStep
	mu    sync.Mutex // steps' state, from the solver's goroutines
	next  int        // the first step not yet reported, in order
}

// solveLayer builds Dockerfile layer l on st: its text (on FROM the image
// st is, for a dockerfile_commands layer) converted by BuildKit's
// converter, the graph solved by the worker on the store's snapshots. ins
// are l's parsed instructions and evs their progress templates (one per
// instruction, the skipped "FROM base" included).
func (b *Builder) solveLayer(ctx context.Context, st *buildState, l *layer, ins []instruction, evs []Event, files []contextFile, force bool, pl *PlanLayer) error {
	text := strings.Join(l.commands, "\n")
	if l.root == nil {
		if st.manifest == "" {
			if _, err := b.writeManifest(st); err != nil {
				return err
			}
		}
		// "FROM base" is line 1 either way: line numbers stay the layer's.
		text = "FROM " + parentRef + "\n" + strings.Join(l.commands[1:], "\n")
	}
	x := &llbLayer{b: b, l: l, byVtx: map[digest.Digest]*llbStep{}}
	if pl != nil {
		b.plan = &planCursor{} // pulls and bootstraps would run
		defer func() { b.plan = nil }()
	}
	for i, in := range ins {
		x.steps = append(x.steps, &llbStep{in: in, ev: evs[i], skip: l.root == nil && i == 0, vtx: map[digest.Digest]bool{}})
	}

	tmp := filepath.Join(b.store.root, "tmp")
	if pl != nil {
		tmp = "" // a dry run writes nothing to the store
	}
	ctxDir, err := os.MkdirTemp(tmp, "context-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ctxDir)
	if err := materializeContext(ctx, l, files, ctxDir); err != nil {
		return &InvalidError{Method: l.method, Message: err.Error()}
	}

	env, secrets, err := stepSecrets(l)
	if err != nil {
		return err
	}
	x.mask = newRedactor(secrets.vars)

	res, err := dockerfile.Convert(ctx, []byte(text), dockerfile.Options{
		BuildArgs:    l.buildArgs,
		Target:       l.target,
		ContextName:  contextName,
		Filename:     orDefault(l.dockerfile, l.method),
		MetaResolver: x.resolver(st),
	})
	if err != nil {
		var wr *wouldRun
		if pl != nil && errors.As(err, &wr) {
			x.planRest(pl, wr.what)
			return nil
		}
		if ctx.Err() != nil {
			x.abort(ctx.Err())
			return ctx.Err()
		}
		var de *dockerfile.Error
		line := 0
		if errors.As(err, &de) {
			line = de.StartLine
		}
		x.failAt(line, err)
		if de != nil {
			// "app.Dockerfile:3: unknown instruction: COPPY (did you mean COPY?)"
			return &InvalidError{Message: de.Error()}
		}
		if !errors.As(err, new(*InvalidError)) {
			return &InvalidError{Method: l.method, Message: err.Error()}
		}
		return err
	}
	for _, w := range res.Warnings {
		b.progress.Event(Event{Kind: EventWarn, Step: evs[0].Step, Total: evs[0].Total, Line: l.method + ": " + w.String()})
	}
	def, err := build.Rewrite(res.Definition, func(op *pb.Op, md *pb.OpMetadata) error {
		if force {
			md.IgnoreCache = true
		}
		if e := op.GetExec(); e != nil {
			e.Meta.Env = b.siteEnviron(e.Meta.Env)
			e.Secretenv = append(e.Secretenv, env...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	g, err := build.Load(def)
	if err != nil {
		return err
	}
	x.mapVertices(g, def)

	wdir := filepath.Join(b.store.root, "worker")
	if pl != nil {
		if _, err := os.Stat(wdir); err != nil {
			// Nothing was ever built this way: nothing is cached.
			x.planRest(pl, "run: not in the cache")
			return nil
		}
	}
	wopts := []worker.Option{worker.WithEpoch(b.epoch), worker.WithOutputFor(x.output), worker.WithSecrets(secrets.store)}
	wopts = append(wopts, b.timestampsWorkerOptions()...)
	if b.network != "" {
		wopts = append(wopts, worker.WithNetwork(b.network))
	}
	w, err := worker.New(b.store.blobs, b.store.snaps, wdir, wopts...)
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.AddLocal(contextName, ctxDir); err != nil {
		return err
	}
	sopts := []build.Option{build.WithCache(w.Cache()), build.WithKeySalt(w.KeySalt()), build.WithProgress(x.event)}
	if b.jobs > 0 {
		sopts = append(sopts, build.WithParallelism(b.jobs))
	}
	s, err := build.NewSolver(w, sopts...)
	if err != nil {
		return err
	}
	keys, err := s.Keys(ctx, g)
	if err != nil {
		return x.stepError(err)
	}
	if pl != nil {
		return x.plan(ctx, pl, w.Cache(), keys, force)
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

	// The image: the converter's config, the solve's layers, and the
	// history's empty_layer flags set from what each op made.
	img := res.Image
	hist := layerHistory(ctx, g, w.Cache(), keys, img.History, len(ref.Layers))
	st.chain, st.layers, st.diffIDs = ref.Chain, slices.Clone(ref.Layers), slices.Clone(ref.DiffIDs)
	st.config = img.Config.ImageConfig
	st.shell = slices.Clone(img.Config.Shell)
	st.health = img.Config.Healthcheck
	st.onBuild = slices.Clone(img.Config.OnBuild)
	st.history = hist
	st.manifest = ""
	return nil
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
func stepSecrets(l *layer) ([]*pb.SecretEnv, layerSecrets, error) {
	ls := layerSecrets{store: worker.SecretMap{}, vars: map[string]string{}}
	ids := map[string]string{} // variable -> secret ID
	for k, v := range l.buildEnv {
		id := "env/" + k
		ids[k], ls.store[id] = id, []byte(v)
	}
	for i, sec := range l.secrets {
		vars, err := sec.load()
		if err != nil {
			return nil, ls, &InvalidError{Method: l.method, Message: err.Error()}
		}
		for k, v := range vars {
			id := fmt.Sprintf("secret/%d/%s/%s", i, sec.Repr(), k)
			ids[k], ls.store[id] = id, []byte(v)
			ls.vars[k] = v
		}
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
func (x *llbLayer) resolver(st *buildState) dockerfile.MetaResolver {
	b, l := x.b, x.l
	var mu sync.Mutex
	return dockerfile.MetaResolverFunc(func(ctx context.Context, ref string, _ ocispec.Platform) (digest.Digest, []byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if ref == parentRef {
			return b.manifestConfig(st.manifest)
		}
		// The converter normalizes references; people and the store's
		// names use the familiar form (python:3.11-slim, im-…).
		if named, err := reference.ParseNormalizedNamed(ref); err == nil {
			ref = reference.FamiliarString(named)
		}
		s := x.fromStep(ref)
		if b.plan == nil {
			x.mu.Lock()
			x.startStep(s)
			x.mu.Unlock()
		}
		if d := offlinePython(ref); d != nil && !b.slimFromRegistry {
			bs := &buildState{}
			in := instruction{text: "FROM " + ref, line: s.in.line}
			cached, err := b.fromDebian(ctx, bs, &layer{method: l.method, root: &rootSpec{debian: d}}, in, false, s.ev)
			if err != nil {
				return "", nil, err
			}
			if b.plan != nil {
				return "", nil, &wouldRun{"write the image of the Debian base of " + ref}
			}
			s.ran = s.ran || !cached
			m, err := b.writeManifest(bs)
			if err != nil {
				return "", nil, err
			}
			return b.manifestConfig(m)
		}
		if id := strings.TrimSuffix(ref, ":latest"); strings.HasPrefix(id, "im-") {
			// An image ID of this store, as the Modal API names images.
			rec, err := b.store.resolve(id)
			if err != nil {
				return "", nil, &InvalidError{Method: l.method, Message: err.Error()}
			}
			return b.manifestConfig(rec.Manifest.Digest)
		}
		rec, pulled, err := b.sourceImage(ctx, l.method, s.ev, ref)
		if err != nil {
			return "", nil, err
		}
		s.ran = s.ran || pulled
		return b.manifestConfig(rec.Manifest.Digest)
	})
}

// manifestConfig returns the manifest digest m and its image's config blob.
func (b *Builder) manifestConfig(m digest.Digest) (digest.Digest, []byte, error) {
	man, err := b.store.blobs.Manifest(m)
	if err != nil {
		return "", nil, err
	}
	rc, err := b.store.blobs.Open(man.Config.Digest)
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

// siteEnviron adds to a step's environment what every step gets (as
// stepEnviron): PATH, the site's step environment (WithStepEnv) and
// SOURCE_DATE_EPOCH, each where env does not set it.
func (b *Builder) siteEnviron(env []string) []string {
	return b.stepEnviron(&buildState{config: ocispec.ImageConfig{Env: env}}, nil)
}

// materializeContext writes the context files of l that resolveContext
// selected into dir, as the build context's local source: hard links
// where the store shares the file system, else copies (modes, owners and
// xattrs kept); a symlink of the context directory as a symlink.
// Directories take the mode and owner of the context directory's own,
// where l has one.
func materializeContext(ctx context.Context, l *layer, files []contextFile, dir string) error {
	var root string
	for _, in := range l.context {
		if in.dir && in.remote == "/" {
			if r, err := filepath.EvalSymlinks(in.local); err == nil {
				root = r
			}
		}
	}
	type dirMode struct {
		path string
		mode os.FileMode
	}
	var modes []dirMode // set last: a directory stays writable until filled
	made := map[string]bool{"": true}
	var mkdirs func(rel string) error
	mkdirs = func(rel string) error {
		if made[rel] {
			return nil
		}
		if err := mkdirs(parentOf(rel)); err != nil {
			return err
		}
		made[rel] = true
		p := filepath.Join(dir, filepath.FromSlash(rel))
		mode := os.FileMode(0o755)
		var fi os.FileInfo
		if root != "" {
			if s, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err == nil && s.IsDir() {
				fi, mode = s, s.Mode().Perm()
			}
		}
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		if fi != nil {
			chownLike(p, fi)
		}
		modes = append(modes, dirMode{p, mode})
		return nil
	}
	files = slices.Clone(files)
	selected := map[string]bool{}
	for _, f := range files {
		selected[strings.TrimPrefix(path.Clean("/"+f.path), "/")] = true
	}
	for i := 0; i < len(files); i++ { // symlinks add their targets
		f := files[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := strings.TrimPrefix(path.Clean("/"+f.path), "/")
		if err := mkdirs(parentOf(rel)); err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if root != "" {
			// A symlink of the context directory stays a symlink, as in
			// Docker's build context (Modal's upload would follow it);
			// COPY follows a symlink that a source names itself.
			// Its target, inside the context, comes along: COPY of the
			// link alone must find it. A link that leads out of the
			// context is copied as the file it leads to (Docker's context
			// would hold a dangling link).
			orig := filepath.Join(root, filepath.FromSlash(rel))
			if fi, err := os.Lstat(orig); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				trel, err := filepath.Rel(root, f.source)
				if err == nil && trel != ".." && !strings.HasPrefix(trel, "../") {
					target, err := os.Readlink(orig)
					if err != nil {
						return err
					}
					if err := os.Symlink(target, dst); err != nil {
						return err
					}
					trel = filepath.ToSlash(trel)
					if !selected[trel] {
						selected[trel] = true
						files = append(files, contextFile{path: trel, source: f.source, mode: f.mode})
					}
					continue
				}
			}
		}
		if err := os.Link(f.source, dst); err == nil {
			continue
		}
		if err := fscopy.Copy(ctx, filepath.Dir(f.source), filepath.Base(f.source), filepath.Dir(dst), filepath.Base(dst)); err != nil {
			return fmt.Errorf("context file %s: %w", f.source, err)
		}
	}
	for i := len(modes) - 1; i >= 0; i-- {
		if err := os.Chmod(modes[i].path, modes[i].mode); err != nil {
			return err
		}
	}
	return nil
}

// chownLike gives p the owner of fi, where the process may (as root, or a
// user whose own files they are); otherwise p keeps the process's.
func chownLike(p string, fi os.FileInfo) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		_ = os.Lchown(p, int(st.Uid), int(st.Gid))
	}
}

// parentOf returns the parent of a slash-separated relative path, "" for
// the root.
func parentOf(rel string) string {
	d := path.Dir(rel)
	if d == "." || d == "/" {
		return ""
	}
	return d
}

// mapVertices assigns each vertex of g to the instruction whose lines the
// source map gives it, and finds each instruction's final vertex: the one
// no other vertex of the same instruction reads.
func (x *llbLayer) mapVertices(g *build.Graph, def *pb.Definition) {
	byLine := map[int]*llbStep{}
	for _, s := range x.steps {
		byLine[s.in.line] = s
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

// fromStep returns the FROM step that most likely names ref (the
// converter gives the resolver the normalized reference, with build args
// expanded): the first whose image name ref contains, else the first FROM.
func (x *llbLayer) fromStep(ref string) *llbStep {
	var first *llbStep
	for _, s := range x.steps {
		c, ok := s.in.cmd.(*instructions.Stage)
		if !ok || s.skip {
			continue
		}
		if first == nil {
			first = s
		}
		name, _, _ := strings.Cut(c.BaseName, ":")
		if name != "" && !strings.Contains(name, "$") && strings.Contains(ref, name) {
			return s
		}
	}
	if first == nil {
		return x.steps[0]
	}
	return first
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
		x.startStep(s)
		if e.Vertex.Digest == s.final {
			x.endStep(s, nil)
		}
	case build.VertexDone:
		if e.Vertex.Digest == s.final {
			x.endStep(s, nil)
		}
	case build.VertexFailed:
		x.endStep(s, e.Err)
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
	s.ent = x.b.startEntry(ev, x.b.entryLabel(x.l, s.in))
	ev.Kind = EventStart
	x.b.progress.Event(ev)
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
	ev.Kind, ev.Duration = EventDone, time.Since(s.start)
	ev.Cached = err == nil && !s.ran && len(s.vtx) > 0
	if err != nil {
		ev.Error = err.Error()
	}
	x.b.progress.Event(ev)
	x.b.stats.Steps++
	switch {
	case ev.Cached:
		x.b.stats.Cached++
	case len(s.vtx) == 0 && err == nil:
		x.b.stats.Config++
	}
	s.ent.worked = !ev.Cached && len(s.vtx) > 0 || err != nil
	s.ent.cached = ev.Cached
	x.b.endEntry(s.ent, err)
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
}

// abort ends the entries still running after a failed solve.
func (x *llbLayer) abort(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range x.steps {
		if s.started && !s.done {
			x.endStep(s, err)
		}
	}
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
		if at == nil || s.in.line == line {
			at = s
		}
		if s.in.line == line {
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
		return &StepError{Step: s.ev.Step, Entry: s.ev.Entry, Method: s.ev.Method, Instruction: s.in.text, ExitCode: ee.ExitCode, Tail: ee.Tail}
	}
	if s != nil {
		return fmt.Errorf("%s: %s: %w", x.l.method, s.in.text, ve.Err)
	}
	return fmt.Errorf("%s: %w", x.l.method, err)
}

// plan fills pl for a dry run: each instruction is cached, config only,
// would run (the first whose final vertex the cache lacks), or pending.
func (x *llbLayer) plan(ctx context.Context, pl *PlanLayer, c build.Cache, keys map[digest.Digest]digest.Digest, force bool) error {
	stopped := false
	for _, s := range x.steps {
		if s.skip {
			continue
		}
		ps := PlanStep{Instruction: s.in.text}
		switch {
		case stopped:
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
				ps.State, ps.Note, stopped = PlanRun, "run again: force_build", true
			case ok:
				ps.State = PlanCached
			default:
				ps.State, ps.Note, stopped = PlanRun, "run: not in the cache", true
			}
		}
		pl.Steps = append(pl.Steps, ps)
	}
	return nil
}

// planRest records a dry run that stops at the layer's first instruction.
func (x *llbLayer) planRest(pl *PlanLayer, what string) {
	first := true
	for _, s := range x.steps {
		if s.skip {
			continue
		}
		ps := PlanStep{Instruction: s.in.text, State: PlanPending}
		if first {
			ps.State, ps.Note, first = PlanRun, what, false
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
	// BuildKit's normalization: entries without a layer become empty.
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
func (b *Builder) writeManifest(st *buildState) (digest.Digest, error) {
	cfg, layers := st.imageConfig()
	m, err := b.store.blobs.WriteDockerImage(cfg, layers)
	if err != nil {
		return "", err
	}
	st.manifest = m.Digest
	return m.Digest, nil
}

// imageConfig returns st's image config, in Docker's extension of the OCI
// config (HEALTHCHECK, SHELL, ONBUILD), and its layers.
func (s *buildState) imageConfig() (dockerspec.DockerOCIImage, []ocispec.Descriptor) {
	cfg := ocispec.Image{
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   s.config,
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
