package snapbuild

import (
	"context"

	"github.com/snapbuild/snapbuild/internal/engine"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// Builder builds Images into a local store. A Builder is not safe for
// concurrent use; several Builders (or processes) on one store serialize their
// builds on the store's lock.
type Builder struct{ e *engine.Engine }

// NewBuilder opens the store, creating it unless WithExistingRoot is given,
// and returns a Builder. The process must have called Init: NewBuilder fails
// when it is neither root nor in a user namespace (after WithExistingRoot's
// check, so that a missing store is reported as such everywhere).
func NewBuilder(opts ...Option) (*Builder, error) {
	e, err := engine.New(opts...)
	if err != nil {
		return nil, err
	}
	return &Builder{e: e}, nil
}

// Close releases the store.
func (b *Builder) Close() error {
	return b.e.Close()
}

// ExportCache writes the step cache of the builds this Builder made so
// far to each destination of WithCacheTo, in order, as an OCI artifact
// whose config maps cache keys to layers and whose layers are the store's
// blobs: a blob the destination already has (a registry answers a HEAD for
// it, a layout has the file) is not sent again, so a second export of the
// same builds writes no layer, only the manifest and config, and those
// only when they changed. Call it once the builds are done; it takes the
// store's lock shared. It returns what each destination got.
//
// As `snapbuild build --cache-to`, it writes nothing and fails when no
// Build has returned yet, or when any Build of this Builder failed (a
// cache is written after builds that all succeeded). A destination that
// fails is an error naming it, after the others were written; with
// ignore-error=true it is a warning (the progress's EventWarn) and left
// out of the result. Without WithCacheTo it fails.
func (b *Builder) ExportCache(ctx context.Context) ([]CacheExport, error) {
	return b.e.ExportCache(ctx)
}

// Root is the store directory.
func (b *Builder) Root() string {
	return b.e.Root()
}

// Build builds img into the store and returns the result of its last layer.
// Each Modal layer of the chain is also stored as an image of its own.
//
// Errors: the Image's own error (see Image.Err); *InvalidError for bad
// definitions found at build time (missing local files, unsupported
// instructions); *StepError when a step's process fails; ctx.Err() when
// cancelled. A failed build leaves the store consistent and its cache entries
// for the steps that succeeded.
//
// Build is safe for concurrent use: independent images build at once (give
// each a BuildLabel so that their progress can be told apart), their steps
// together bounded by WithParallelism, and a step two of them share (the
// same cache key: a common debian_slim and apt_install, say) runs once, the
// other build waiting for it and taking it from the cache, as BuildKit
// merges the equal vertices of a bake's targets.
func (b *Builder) Build(ctx context.Context, img Image, opts ...BuildOption) (Result, error) {
	if img.err != nil {
		return Result{}, img.err
	}
	return b.e.Build(ctx, img.layers, opts...)
}

// A BuildOption configures one Build.
type BuildOption = engine.BuildOption

// BuildLabel names a build in its progress events (Event.Image), so that the
// events of builds that run at once can be told apart; the text renderers
// show it in each entry's header, "#4 [web 2/3] apt_install(...)", and
// number the entries of all builds in one sequence, as BuildKit numbers the
// vertices of a bake's targets. The CLI labels each image of a recipe with
// its name when it builds several.
func BuildLabel(name string) BuildOption {
	return engine.BuildLabel(name)
}

// Plan evaluates img against the store as Build would, without running
// anything: for every step it says whether the build would take it from the
// cache, run it, or only change the config, and gives the step's cache key
// where it can be known. Nothing is written to the store (except that the
// python-build-standalone archive an add_python step copies is unpacked into
// the store's cache once, as its files are part of that step's key); no
// container starts, no image is pulled and no mirror is contacted (a
// debian_slim base is the one pinned in the store, as for a build; with
// WithPull or force_build the plan says the base would be checked).
//
// Errors are those of Build that can be found without running a step (the
// Image's own error, *InvalidError for bad definitions and missing local
// files), and ctx.Err().
func (b *Builder) Plan(ctx context.Context, img Image) (Plan, error) {
	if img.err != nil {
		return Plan{}, img.err
	}
	return b.e.Plan(ctx, img.layers)
}

// Tag names image id (or an existing name) so that later commands can use the
// name. An existing name is moved.
func (b *Builder) Tag(name, ref string) error {
	return b.e.Tag(name, ref)
}

// Bases lists the Debian bases pinned in the store, by suite: each is the
// base the store's debian_slim builds of that definition (suite, package
// set, Python source) use, with the archive state it was made from and the
// named images built on it. A build asks no mirror whether its base is
// current; WithPull, force_build and UpdateBases do.
func (b *Builder) Bases() ([]BaseInfo, error) {
	return b.e.Bases()
}

// UpdateBases checks the Debian archive for the pinned bases of suites (all
// pinned bases when none is given), as a build WithPull does: a base whose
// archive is unchanged stays pinned; one whose archive moved is
// bootstrapped again and pinned, and the update names the release and the
// packages that changed. Images built on the old base keep it until they
// are built again. Progress goes to the Builder's Progress, as a build's.
//
// Errors: a suite with no pinned base (naming the pinned suites), a mirror
// that cannot be reached (naming it), a failed bootstrap, ctx.Err().
func (b *Builder) UpdateBases(ctx context.Context, suites ...string) ([]BaseUpdate, error) {
	return b.e.UpdateBases(ctx, suites...)
}

// Images lists the named images, sorted by name.
func (b *Builder) Images() ([]ImageInfo, error) {
	return b.e.Images()
}

// Inspect describes the image named by ref (an ID or a name).
func (b *Builder) Inspect(ref string) (ImageInfo, error) {
	return b.e.Inspect(ref)
}

// Remove deletes the name ref. The image's content stays in the store (it is
// the build cache).
func (b *Builder) Remove(name string) error {
	return b.e.Remove(name)
}

// Export writes the image ref to dest, "oci:DIR[:TAG]" or
// "oci-archive:FILE[:TAG]" (skopeo's transport syntax).
func (b *Builder) Export(ref, dest string) error {
	return b.e.Export(ref, dest)
}

// ExportWith writes the image ref (a name or ID) to dest: oci:DIR[:TAG],
// oci-archive:FILE[:TAG], docker-archive:FILE[:REF] (for `docker load` and
// `podman load`) or docker://REF (a push; blobs the registry has are not
// sent again), with o's compression (see ExportOptions for each
// destination's default). A name with add_local_* copy=False files gets
// them as a last layer, as Export does.
//
// An OCI layout or archive records the image's full name ("app" is
// docker.io/library/app:latest) in its index.json, so that `podman load`
// and `ctr images import` import it under that name: as
// io.containerd.image.name, and as org.opencontainers.image.ref.name unless
// dest gives a TAG (see registry.IndexAnnotations). A docker-archive without
// REF is tagged with the image's name. An image given by ID has no name.
func (b *Builder) ExportWith(ctx context.Context, ref, dest string, o ExportOptions) error {
	return b.e.ExportWith(ctx, ref, dest, o)
}

// Push is ExportWith to a registry: dest is docker://REF or a bare REF.
func (b *Builder) Push(ctx context.Context, ref, dest string, o ExportOptions) error {
	return b.e.Push(ctx, ref, dest, o)
}

// Pull fetches ref (a registry reference or an air-gapped source, as
// FromRegistry takes it) into the store, so that from_registry(ref),
// from_id and Dockerfile FROM lines find it without the network:
// `snapbuild pull` pre-seeds a store for offline builds. A registry
// reference names the image ref. An air-gapped source (oci:, oci-archive:,
// docker-archive:) names it as `podman load` would, by the name the source
// carries (see registry.SourceName), and leaves it unnamed, found by its
// ID, when the source carries none. creds may be nil (the user's auth
// files are used).
func (b *Builder) Pull(ctx context.Context, ref string, creds *Credentials) (ImageInfo, error) {
	return b.e.Pull(ctx, ref, creds)
}

// PullAs is Pull naming the image name instead of ref (snapbuild load
// names the images of a layout by their tags).
func (b *Builder) PullAs(ctx context.Context, ref, name string, creds *Credentials) (ImageInfo, error) {
	return b.e.PullAs(ctx, ref, name, creds)
}

// Run runs a command in a throwaway container of image ref, like a Modal
// Sandbox or `docker run --rm`: args replace the image's CMD (the
// ENTRYPOINT, if any, stays in front); no args runs ENTRYPOINT + CMD;
// o.Entrypoint may replace the ENTRYPOINT. Nothing the command writes is
// kept. It returns the command's exit status (128+N when signal N ended
// it).
func (b *Builder) Run(ctx context.Context, ref string, args []string, o RunOptions) (int, error) {
	return b.e.Run(ctx, ref, args, o)
}

// Metadata returns the metadata of image ref (an ID or a name), probing the
// image the first time.
func (b *Builder) Metadata(ctx context.Context, ref string) (*Metadata, error) {
	return b.e.Metadata(ctx, ref)
}

// TagResult names the image of res, with its runtime mounts (see
// Result.Mounts), so that Run and Export of the name attach them. An
// existing name is moved. It is TagResultWith with Replace set.
func (b *Builder) TagResult(name string, res Result) error {
	return b.e.TagResult(name, res)
}

// TagResultWith names the image of res, with its runtime mounts (see
// TagResult), and records o.Source with the name. A name that already names
// another image is moved when it came from the same source or o.Replace is
// set, and the Tagged result says what it named; otherwise the name is left
// as it is and the error is a *NameTakenError.
func (b *Builder) TagResultWith(name string, res Result, o TagOptions) (Tagged, error) {
	return b.e.TagResultWith(name, res, o)
}

// CheckName reports, before a build, whether TagResultWith(name, ..., o)
// could be refused: a *NameTakenError when name names an image from
// another source (or from none recorded) and o.Replace is not set, nil
// otherwise. It is conservative: the build might make the very image the
// name already names, which TagResultWith would accept.
func (b *Builder) CheckName(name string, o TagOptions) error {
	return b.e.CheckName(name, o)
}

// StepEnv is the site environment every RUN and run_function step gets
// (WithStepEnv, WithSite), as "KEY=VALUE" entries.
func (b *Builder) StepEnv() []string {
	return b.e.StepEnv()
}

// PythonStandaloneDir is where add_python looks for python-build-standalone
// tarballs: the WithPythonStandaloneDir (or WithSite) directory, else
// $SNAPBUILD_PYTHON_STANDALONE_DIR, else <store>/python-build-standalone.
func (b *Builder) PythonStandaloneDir() string {
	return b.e.PythonStandaloneDir()
}

// ValidateName checks an image name for Tag: an image reference as docker
// and podman take it (a lower-case repository of path components, with an
// optional registry host, :tag and @digest: "myapp", "myapp:v1",
// "registry.local:5000/team/app:v1"), not starting with "im-" (reserved for
// image IDs). The error names the name and says what a name is.
func ValidateName(name string) error {
	return engine.ValidateName(name)
}

// DefaultRoot is the store directory used when none is given: $SNAPBUILD_ROOT,
// else /var/lib/snapbuild for root, else $XDG_DATA_HOME/snapbuild or
// ~/.local/share/snapbuild.
func DefaultRoot() string {
	return engine.DefaultRoot()
}

// BuilderVersion is the Modal image builder version whose commands snapbuild
// emits. Only 2025.06 (and PREVIEW, its equal) are implemented.
const BuilderVersion = modal.BuilderVersion
