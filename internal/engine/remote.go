package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/remote"
	"github.com/snapbuild/snapbuild/internal/worker"
	"github.com/snapbuild/snapbuild/sandbox"
)

// BuilderTLS is snapbuild.BuilderTLS.
type BuilderTLS = remote.TLS

// WithBuilder is snapbuild.WithBuilder.
func WithBuilder(addr string, tls BuilderTLS) Option {
	return func(b *Engine) error {
		if b.buildkit != nil {
			b.buildkit.Close()
		}
		c, err := remote.Dial(context.Background(), addr, tls)
		if err != nil {
			return err
		}
		b.buildkit = c
		return nil
	}
}

// remoteRefusal says why layer l cannot be built on a BuildKit builder, or
// "" when it can.
func (b *Engine) remoteRefusal(l *modal.Layer) string {
	switch {
	case l.GPU != "":
		return "gpu= steps need the host's GPUs, which a BuildKit builder does not give them: build this image without --builder"
	case len(l.AllVolumes()) > 0:
		return "volumes= are directories of this machine, which a BuildKit builder cannot mount: build this image without --builder"
	case b.network == sandbox.NetworkPrivate:
		return "--network private is snapbuild's own sandbox network; a BuildKit builder runs steps on its own network (buildkitd --oci-worker-net): give --network host or none with --builder"
	}
	return ""
}

// remoteEnv adds to exec op e the site's step environment (WithStepEnv)
// and SOURCE_DATE_EPOCH where the op does not set them: a local build's
// worker gives them outside the op (worker.WithDefaultEnv); buildkitd has
// only the op.
func remoteEnv(e *pb.ExecOp, site []string) {
	if e.Meta == nil {
		return
	}
	for _, kv := range site {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(e.Meta.Env, func(s string) bool { return strings.HasPrefix(s, k+"=") }) {
			e.Meta.Env = append(e.Meta.Env, kv)
		}
	}
}

// solveRemote builds the layer's definition def (its graph g) on the
// Engine's BuildKit builder and makes st the image it returns: its layers,
// imported into the store, the converter's config img, history marked as
// BuildKit's exporter marks it (an entry per layer, the rest empty).
func (x *llbLayer) solveRemote(ctx context.Context, st *buildState, def *pb.Definition, g *build.Graph, img dockerspec.DockerOCIImage, locals map[string]string, secrets worker.SecretMap) error {
	b := x.b
	var epoch *time.Time
	if !b.keepTimestamps() {
		e := b.epoch
		epoch = &e
	}
	x.advance()
	var failed *build.VertexError
	res, err := b.buildkit.Solve(ctx, remote.Solve{
		Definition: def,
		Locals:     locals,
		Secrets:    secrets,
		Blobs:      b.store.Blobs(),
		Tmp:        filepath.Join(b.store.Root(), "tmp"),
		Epoch:      epoch,
		Insecure:   b.security == sandbox.SecurityInsecure,
		Progress: func(e remote.Event) {
			if ve := x.remoteEvent(g, e); ve != nil && failed == nil {
				failed = ve
			}
		},
	})
	if err != nil {
		if failed != nil {
			err = failed
		}
		x.abort(err)
		return x.stepError(err)
	}
	x.finish()
	ref := &worker.Ref{Layers: res.Layers, DiffIDs: res.DiffIDs}
	x.applyHistory(st, img, normalizeHistory(img.History, len(ref.Layers)), ref)
	return nil
}

// exitCode finds the exit status in BuildKit's error for a process that
// failed: `process "/bin/sh -c false" did not complete successfully: exit
// code: 1`.
var exitCode = regexp.MustCompile(`did not complete successfully: exit code: (\d+)`)

// remoteEvent maps an event of a remote solve to the progress of its
// instruction, as x.event does for the local solver's, and returns the
// vertex's error when it failed.
func (x *llbLayer) remoteEvent(g *build.Graph, e remote.Event) *build.VertexError {
	v := g.Vertex(e.Vertex)
	if v == nil {
		return nil // BuildKit's own vertices: exporting, loading the context
	}
	switch e.Kind {
	case remote.VertexLog:
		x.remoteLog(v, e.Data)
	case remote.VertexStarted:
		x.event(build.Event{Kind: build.VertexStarted, Vertex: v})
	case remote.VertexCached:
		x.event(build.Event{Kind: build.VertexCached, Vertex: v})
	case remote.VertexDone:
		x.flushLog(v)
		x.event(build.Event{Kind: build.VertexDone, Vertex: v})
	case remote.VertexFailed:
		x.flushLog(v)
		var cause error = errors.New(e.Err)
		if m := exitCode.FindStringSubmatch(e.Err); m != nil && v.Kind == build.KindExec {
			n, _ := strconv.Atoi(m[1])
			ee := &worker.ExitError{ExitCode: n}
			if ex := v.Op.GetExec(); ex != nil && ex.Meta != nil {
				ee.Args = ex.Meta.Args
			}
			x.mu.Lock()
			if s := x.byVtx[v.Digest]; s != nil && s.out != nil {
				ee.Tail = s.out.lastLines()
			}
			x.mu.Unlock()
			cause = ee
		}
		ve := &build.VertexError{Digest: v.Digest, Kind: v.Kind, Name: v.Name, Err: cause}
		x.event(build.Event{Kind: build.VertexFailed, Vertex: v, Err: ve})
		return ve
	}
	return nil
}

// remoteLog gives output of vertex v's process to the progress of its
// instruction, as x.output does for the local worker's.
func (x *llbLayer) remoteLog(v *build.Vertex, data []byte) {
	x.mu.Lock()
	s := x.byVtx[v.Digest]
	if s == nil || s.skip {
		x.mu.Unlock()
		return
	}
	if s.out == nil {
		ev := s.ev
		s.out = &lineWriter{mask: x.mask.mask, keep: 20, emit: func(line string) { x.b.progress.Event(ev.output(line)) }}
	}
	w := s.out
	x.mu.Unlock()
	w.Write(data)
}

// flushLog emits the last unterminated line of vertex v's output.
func (x *llbLayer) flushLog(v *build.Vertex) {
	x.mu.Lock()
	s := x.byVtx[v.Digest]
	var w *lineWriter
	if s != nil {
		w = s.out
	}
	x.mu.Unlock()
	if w != nil {
		w.flush()
	}
}

// remoteLayer is the error for a layer that cannot be built on a BuildKit
// builder.
func remoteLayer(l *modal.Layer, why string) error {
	return &modal.InvalidError{Method: l.Method, Message: fmt.Sprintf("cannot build on a BuildKit builder (--builder): %s", why)}
}
