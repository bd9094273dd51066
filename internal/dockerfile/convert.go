package dockerfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/patternmatcher"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultContextName is the name of the build context's local source op when
// Options.ContextName is empty. It is the name BuildKit's Dockerfile front end
// gives the context.
const DefaultContextName = "context"

// DefaultFilename is the Dockerfile's name in errors, warnings and the
// definition's source map when Options.Filename is empty.
const DefaultFilename = "Dockerfile"

// Options says how to convert a Dockerfile. MetaResolver is required; every
// other field has a default.
type Options struct {
	// BuildArgs are the values of `docker build --build-arg KEY=VALUE`. A
	// value overrides the default of an ARG of that name, global (before the
	// first FROM) or in a stage; it has no effect where no ARG declares the
	// name, except for BuildKit's predefined arguments (HTTP_PROXY and the
	// like, SOURCE_DATE_EPOCH, BUILDKIT_* switches). Keys must be non-empty
	// and hold no '=' nor whitespace.
	BuildArgs map[string]string

	// Target is the stage to build, by its `AS` name (case-insensitive), as
	// `docker build --target`. Stages the target does not need are left out
	// of the definition and their base images are never resolved.
	//
	// The default is the last stage of the Dockerfile.
	Target string

	// Platform is the platform of the image built: the platform base images
	// are resolved for, TARGETPLATFORM/TARGETOS/TARGETARCH, and the config's
	// os/architecture. Only linux is accepted. BUILDPLATFORM is always the
	// host's (HostPlatform): snapbuild runs every step natively. A stage's
	// FROM --platform must name one of the two (after expansion, as
	// --platform=$BUILDPLATFORM): an image for any other platform is
	// refused before it is resolved, with an *Error at that FROM line.
	//
	// The default is HostPlatform: linux on the host's architecture.
	Platform *ocispec.Platform

	// ContextName names the build context's local source op
	// ("local://<ContextName>"); the solver maps it to a directory.
	//
	// The default is DefaultContextName ("context").
	ContextName string

	// Excludes are the build context's .dockerignore patterns, as
	// github.com/moby/patternmatcher/ignorefile.ReadAll returns them (which
	// cleans "./x" to "x" as Docker does). They are carried on the local
	// source op; the solver applies them when it reads the context.
	//
	// The default is no patterns.
	Excludes []string

	// Filename names the Dockerfile in errors, warnings and the source map
	// of the definition.
	//
	// The default is DefaultFilename ("Dockerfile").
	Filename string

	// MetaResolver resolves base images to a digest and config. Required.
	MetaResolver MetaResolver
}

// Result is a converted Dockerfile.
type Result struct {
	// Definition is the build graph of the target stage: marshalled pb.Op
	// values in Def (inputs before the ops that use them, the last op a
	// terminal with the target as its only input), per-op metadata with
	// each op's progress name ("[stage-1 2/3] RUN make"), and Source, which
	// maps op digests to Dockerfile line ranges.
	Definition *pb.Definition

	// Image is the config of the image the target produces: the base
	// image's config with the Dockerfile's ENV, WORKDIR, USER, CMD,
	// ENTRYPOINT, SHELL, HEALTHCHECK, LABEL, EXPOSE, VOLUME, STOPSIGNAL and
	// ONBUILD applied, and one history entry per instruction after the
	// base's. RootFS holds the base's diff_ids only; the solver appends the
	// layers it builds. Created is unset; the history entries the
	// Dockerfile adds carry a time only when SOURCE_DATE_EPOCH is given.
	Image dockerspec.DockerOCIImage

	// BaseImages maps each image reference resolved through the
	// MetaResolver (normalized, as passed to it) to the digest it resolved
	// to: the images the target needs, and no other. A source op names
	// each as "docker-image://<ref>@<digest>" (as "docker-image://<ref>"
	// when ref is pinned already), except an image whose config lists no
	// layers, which is converted as scratch.
	BaseImages map[string]digest.Digest

	// Platform is the platform converted for.
	Platform ocispec.Platform

	// Epoch is the time from the SOURCE_DATE_EPOCH build arg, nil when it is
	// not given.
	Epoch *time.Time

	// Warnings are BuildKit's Dockerfile checks that failed, in the order
	// found (base images are checked in parallel, so checks on them may
	// come in any order). They do not stop the conversion unless the
	// Dockerfile asks for that with `# check=error=true`.
	Warnings []Warning
}

// Warning is one of BuildKit's Dockerfile checks that a Dockerfile failed.
type Warning struct {
	Rule    string // the check's name, as "JSONArgsRecommended"
	Message string // what is wrong, as BuildKit prints it
	URL     string // the check's documentation page, as BuildKit gives it
	Line    int    // 1-based line of the instruction; 0 when unknown
}

// String formats w as "Rule: message (line N)".
func (w Warning) String() string {
	if w.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", w.Rule, w.Message, w.Line)
	}
	return fmt.Sprintf("%s: %s", w.Rule, w.Message)
}

// Convert converts dockerfile into LLB for the target stage, as `docker
// build` would, resolving base images through opts.MetaResolver.
//
// Errors in the Dockerfile, or from resolving an image it names, are
// returned as *Error with the Dockerfile lines wherever BuildKit locates
// them (a few of BuildKit's checks, as on COPY --from=$VAR, carry no line
// and come back as plain errors). Errors in opts name the field. Convert
// reads no files and reaches no network by itself; when ctx is cancelled
// the error wraps ctx.Err().
func Convert(ctx context.Context, dockerfile []byte, opts Options) (*Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(dockerfile)) == 0 {
		return nil, fmt.Errorf("dockerfile: %s is empty: it needs at least a FROM instruction", o.Filename)
	}

	resolver := newRecordingResolver(o.MetaResolver, *o.Platform, HostPlatform())
	var (
		mu       sync.Mutex // BuildKit checks base images in parallel
		warnings []Warning
	)
	caps := pb.Caps.CapSet(pb.Caps.All())
	mainContext := llb.Local(o.ContextName,
		llb.SharedKeyHint(o.ContextName),
		llb.ExcludePatterns(o.Excludes),
		// Without a session BuildKit marks a local source with a random
		// client ID; a fixed one keeps the definition, and so every cache
		// key derived from it, a function of the inputs.
		llb.LocalUniqueID(o.ContextName),
		dockerui.WithInternalName("load build context"),
	)
	host := HostPlatform()
	copt := dockerfile2llb.ConvertOpt{
		Config: dockerui.Config{
			BuildArgs:      o.BuildArgs,
			Target:         o.Target,
			BuildPlatforms: []ocispec.Platform{host},
		},
		MainContext:    &mainContext,
		SourceMap:      llb.NewSourceMap(nil, o.Filename, "Dockerfile", dockerfile),
		TargetPlatform: o.Platform,
		MetaResolver:   resolver,
		LLBCaps:        &caps,
		Warn: func(rule, _, url, msg string, location []parser.Range) {
			w := Warning{Rule: rule, Message: msg, URL: url}
			if len(location) > 0 {
				w.Line = location[0].Start.Line
			}
			mu.Lock()
			warnings = append(warnings, w)
			mu.Unlock()
		},
	}

	res, err := dockerfile2llb.Dockerfile2LLB(ctx, dockerfile, copt)
	if err != nil {
		return nil, o.convertError(ctx, dockerfile, err, warnings)
	}
	def, err := res.State.Marshal(ctx)
	if err != nil {
		return nil, o.convertError(ctx, dockerfile, err, nil)
	}

	out := &Result{
		Definition: def.ToPB(),
		BaseImages: resolver.images(),
		Platform:   *o.Platform,
		Epoch:      res.Epoch,
		Warnings:   warnings,
	}
	if res.Image != nil {
		out.Image = *res.Image
	}
	return out, nil
}

// withDefaults checks o and fills in its defaults, without changing the
// caller's maps or slices.
func (o Options) withDefaults() (Options, error) {
	if o.MetaResolver == nil {
		return o, errors.New("dockerfile: Options.MetaResolver is nil: pass a resolver that looks images up in the store or a registry")
	}
	if o.Filename == "" {
		o.Filename = DefaultFilename
	}
	if o.ContextName == "" {
		o.ContextName = DefaultContextName
	}
	if strings.ContainsAny(o.ContextName, "\n\r\x00") {
		return o, fmt.Errorf("dockerfile: Options.ContextName %q holds a newline or NUL: use a plain name such as %q", o.ContextName, DefaultContextName)
	}
	if o.Platform == nil {
		p := HostPlatform()
		o.Platform = &p
	} else {
		p := *o.Platform
		if p.OS != "linux" {
			return o, fmt.Errorf("dockerfile: Options.Platform: os %q is not supported: snapbuild builds linux images only; set OS to \"linux\"", p.OS)
		}
		if p.Architecture == "" {
			return o, fmt.Errorf("dockerfile: Options.Platform: architecture is empty: set it, as %q", runtime.GOARCH)
		}
		o.Platform = &p
	}
	for k := range o.BuildArgs {
		if k == "" || strings.ContainsAny(k, "= \t\r\n") {
			return o, fmt.Errorf("dockerfile: build arg %q: a name must be non-empty and hold no '=' nor whitespace; pass KEY=VALUE as key KEY and value VALUE", k)
		}
	}
	if len(o.BuildArgs) > 0 {
		// BuildKit writes the resolved SOURCE_DATE_EPOCH back into this map.
		o.BuildArgs = maps.Clone(o.BuildArgs)
	}
	if len(o.Excludes) > 0 {
		if _, err := patternmatcher.New(o.Excludes); err != nil {
			return o, fmt.Errorf("dockerfile: Options.Excludes: %w; fix the pattern in .dockerignore", err)
		}
	}
	return o, nil
}

// Error is a conversion failure at a place in the Dockerfile: a syntax error,
// an instruction BuildKit refuses, an unknown stage, or a base image that
// could not be resolved.
type Error struct {
	Filename  string // Options.Filename
	StartLine int    // first line of the instruction, 1-based
	EndLine   int    // last line; equal to StartLine for one-line instructions
	Err       error  // the cause, BuildKit's or the MetaResolver's
}

// Error formats e as "Dockerfile:3: cause" or "Dockerfile:3-5: cause".
func (e *Error) Error() string {
	if e.EndLine > e.StartLine {
		return fmt.Sprintf("%s:%d-%d: %v", e.Filename, e.StartLine, e.EndLine, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.Filename, e.StartLine, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// convertError turns an error of BuildKit's converter into one that names
// the Dockerfile line and, where BuildKit does not, says what to do.
func (o Options) convertError(ctx context.Context, dockerfile []byte, err error, warnings []Warning) error {
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		return err
	}
	if o.Target != "" {
		if names, ok := stageNames(ctx, dockerfile); ok && !containsFold(names, o.Target) {
			if len(names) == 0 {
				return fmt.Errorf("dockerfile: target stage %q not found: %s names no stage; name one with FROM <image> AS %s, or build without a target", o.Target, o.Filename, o.Target)
			}
			return fmt.Errorf("dockerfile: target stage %q not found in %s: pass one of its stages (%s), or no target to build the last", o.Target, o.Filename, strings.Join(names, ", "))
		}
	}
	var le *parser.LocationError
	if !errors.As(err, &le) && len(warnings) > 0 && strings.HasPrefix(err.Error(), "lint violation found") {
		// `# check=error=true`: BuildKit names the rules only.
		var list []string
		for _, w := range warnings {
			list = append(list, w.String())
		}
		err = fmt.Errorf("%w: %s; the Dockerfile's `# check=error=true` makes failed checks errors: fix the instructions, or skip a check with `# check=skip=<rule>`", err, strings.Join(list, "; "))
		if line := warnings[0].Line; line > 0 {
			return &Error{Filename: o.Filename, StartLine: line, EndLine: line, Err: err}
		}
		return fmt.Errorf("dockerfile: converting %s: %w", o.Filename, err)
	}
	if !errors.As(err, &le) || len(le.Locations) == 0 || len(le.Locations[0]) == 0 {
		return fmt.Errorf("dockerfile: converting %s: %w", o.Filename, err)
	}
	r := le.Locations[0]
	start, end := r[0].Start.Line, r[len(r)-1].End.Line
	if end < start {
		end = start
	}
	// The cause is what BuildKit wrapped, without the location it carried.
	cause := le.Unwrap()
	if cause == nil {
		cause = err
	}
	return &Error{Filename: o.Filename, StartLine: start, EndLine: end, Err: cause}
}

// stageNames lists the names of the Dockerfile's named stages.
func stageNames(ctx context.Context, dockerfile []byte) ([]string, bool) {
	list, err := dockerfile2llb.ListTargets(ctx, dockerfile)
	if err != nil {
		return nil, false
	}
	var names []string
	for _, t := range list.Targets {
		if t.Name != "" {
			names = append(names, t.Name)
		}
	}
	sort.Strings(names)
	return names, true
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
