package snapbuild

import (
	"time"

	"github.com/snapbuild/snapbuild/internal/engine"
	"github.com/snapbuild/snapbuild/registry"
	"github.com/snapbuild/snapbuild/sandbox"
	"github.com/snapbuild/snapbuild/siteconfig"
)

// Option configures a Builder.
type Option = engine.Option

// WithRoot sets the store directory, which NewBuilder creates when it does
// not exist. The default is DefaultRoot().
func WithRoot(dir string) Option {
	return engine.WithRoot(dir)
}

// WithExistingRoot is WithRoot for a Builder that only reads or removes
// what a store holds (listing, inspecting, exporting images): when dir does
// not exist, NewBuilder creates nothing and fails with a
// *StoreNotExistError, as podman's and docker's image commands report an
// unknown image rather than make an empty store. The default is
// DefaultRoot(), created when missing.
func WithExistingRoot(dir string) Option {
	return engine.WithExistingRoot(dir)
}

// WithProgress sets where build events go. The default is plain text on
// standard error.
func WithProgress(p Progress) Option {
	return engine.WithProgress(p)
}

// WithHeartbeat sets how often a running entry that has reported nothing
// sends an EventHeartbeat (plain progress prints "#4 still running, 1m30s").
// 0 sends none. The default is 30 seconds.
func WithHeartbeat(every time.Duration) Option {
	return engine.WithHeartbeat(every)
}

// WithDebianMirror sets the Debian archive that Debian bases are bootstrapped
// from. The default is $SNAPBUILD_DEBIAN_MIRROR, else base.DefaultMirror.
func WithDebianMirror(url string) Option {
	return engine.WithDebianMirror(url)
}

// WithForceBuild rebuilds every step, ignoring and replacing cache entries.
// The default is true when MODAL_FORCE_BUILD or SNAPBUILD_FORCE_BUILD is set to
// anything but "", "0" or "false" (case-insensitive), as Modal parses it.
func WithForceBuild(force bool) Option {
	return engine.WithForceBuild(force)
}

// WithPull checks the build's bases for newer ones, as docker build --pull
// and podman build --pull do: a from_registry or FROM image that a registry
// serves is pulled again (once per Builder), and a pinned Debian base is
// checked against the Debian archive: unchanged, it stays; moved, it is
// bootstrapped again and pinned, every later step of the build runs again,
// and the progress says which release and packages changed. A
// force_build root layer (and WithForceBuild) checks a Debian base alike.
// Without it, a build contacts no registry for an image the store has and
// no Debian mirror for a base the store has pinned.
// The default is false.
func WithPull(pull bool) Option {
	return engine.WithPull(pull)
}

// WithEpoch sets the reproducibility timestamp (SOURCE_DATE_EPOCH): layer
// mtimes later than it are clamped to it, whiteouts carry it, and RUN steps
// and Debian bootstraps see it as SOURCE_DATE_EPOCH (so Python compiles
// hash-checked .pyc files, which clamped mtimes cannot invalidate). The
// default is $SOURCE_DATE_EPOCH, else DefaultEpoch.
func WithEpoch(t time.Time) Option {
	return engine.WithEpoch(t)
}

// WithNetwork sets the network of RUN steps: sandbox.NetworkHost,
// sandbox.NetworkNone (every step offline, a Dockerfile's RUN
// --network=host included) or sandbox.NetworkPrivate (every step not asked
// to be offline in a namespace of its own with outbound access through
// slirp4netns; the host's 127.0.0.1 is sandbox.PrivateGateway). The mode is
// part of each step's cache key. The default is the host's.
func WithNetwork(n sandbox.Network) Option {
	return engine.WithNetwork(n)
}

// WithSecurity sets the security mode of every RUN step and of Run.
// sandbox.SecurityInsecure is BuildKit's security.insecure entitlement
// applied to every step, as RUN --security=insecure: every capability, no
// seccomp filter, no no_new_privs. It is part of each step's cache key, so
// a step run insecure is not reused by a sandboxed build, nor the other way
// round; it also lets a Dockerfile's RUN --security=insecure run. The
// default is sandbox.SecuritySandbox (see sandbox.Security).
func WithSecurity(s sandbox.Security) Option {
	return engine.WithSecurity(s)
}

// WithCDISpecDirs sets the directories where GPU steps look for CDI specs
// (nvidia.com/gpu), in increasing priority. The default is /etc/cdi and
// /var/run/cdi, as the CDI tools use.
func WithCDISpecDirs(dirs ...string) Option {
	return engine.WithCDISpecDirs(dirs...)
}

// WithPackageCaches turns on or off the package caches of the installer
// methods' steps. On, the steps of apt_install, the pip_install methods,
// pip_install_private_repos, uv_pip_install, uv_sync,
// poetry_install_from_file, micromamba and micromamba_install find the
// downloads of earlier builds on the same store (apt's archives, pip's,
// uv's, poetry's and micromamba's caches, kept under the store's
// worker/pkgcache/), as a Dockerfile's RUN --mount=type=cache would give
// them: a forced rebuild, or a sibling image installing the same
// packages, downloads nothing again. The caches are in no layer and no
// cache key: images and their IDs are the same either way. run_commands,
// Dockerfile RUN and run_function steps never get them (as in Docker and
// BuildKit, a RUN gets a cache mount only by asking for one).
// Builder.Prune removes them (docs/store.md).
// The default is on.
func WithPackageCaches(on bool) Option {
	return engine.WithPackageCaches(on)
}

// WithParallelism sets how many independent ops may run at once, as
// buildah's --jobs and BuildKit's max-parallelism: the stages of a
// Dockerfile's build graph that do not depend on each other, the sources of
// a COPY, and the steps of images built at once (concurrent Build calls
// share the bound); n must be at least 1. The default is the number of CPUs the process may
// use (runtime.GOMAXPROCS).
func WithParallelism(n int) Option {
	return engine.WithParallelism(n)
}

// WithPuller sets how from_registry and Pull fetch images.
func WithPuller(p Puller) Option {
	return engine.WithPuller(p)
}

// WithRegistryOptions sets how images are pulled, pushed and exported:
// package registry's options (a registries.conf with mirrors, insecure
// registries, a CA file, a keychain). Credentials from a from_registry
// secret are added per pull.
func WithRegistryOptions(opts ...registry.Option) Option {
	return engine.WithRegistryOptions(opts...)
}

// WithCacheFrom reads step caches from refs before building, as
// docker buildx build --cache-from does with BuildKit's registry cache: a
// step the store lacks is taken from the first cache that has it, its
// layers fetched and checked (digest, size and diffID) and unpacked, so it
// runs no container. A ref is a registry reference (docker://HOST/REPO:TAG
// or HOST/REPO:TAG), an OCI layout (oci:DIR:TAG), or buildx's form
// (type=registry,ref=HOST/REPO:TAG or type=local,src=DIR). A cache that
// cannot be read, or a layer that fails a check, is a warning and the step
// runs. Registry options (WithRegistryOptions) apply. A malformed ref is an
// error of NewBuilder.
// The default is no cache but the store's.
func WithCacheFrom(refs ...string) Option {
	return engine.WithCacheFrom(refs...)
}

// WithCacheTo makes Builder.ExportCache write the steps of the builds to
// ref as an OCI artifact (docs/cache.md): a registry reference, an OCI
// layout (oci:DIR:TAG), or buildx's form (type=registry,ref=REF,mode=max,
// type=local,dest=DIR). mode=min (the default, as BuildKit's) writes the
// steps the built images are made of; mode=max every step the builds
// made or found, intermediate stages too; ignore-error=true makes a failed
// export a warning. Several refs, or several WithCacheTo, are each
// written, as buildx writes every --cache-to. A reference without a tag
// gets "latest"; a malformed ref, or one with a digest, is an error of
// NewBuilder. A store in single-ID mode marks its cache so: only another
// single-ID store takes it (docs/cache.md).
// The default is no export.
func WithCacheTo(refs ...string) Option {
	return engine.WithCacheTo(refs...)
}

// WithDebianSlimFromRegistry makes debian_slim pull Docker Hub's
// python:<micro>-slim-bookworm image, as Modal's builder does, instead of
// bootstrapping Debian locally; the CLI sets it when the registries.conf
// sends docker.io to a mirror (an offline site's). The image is then
// completed with Modal's debian_slim commands, except `pip install
// --upgrade pip wheel uv`, which needs PyPI.
func WithDebianSlimFromRegistry(on bool) Option {
	return engine.WithDebianSlimFromRegistry(on)
}

// WithStepEnv gives every RUN and run_function step the variables env
// ("KEY=VALUE" entries) as process environment: a site's package mirrors
// (PIP_INDEX_URL, UV_INDEX_URL, MAMBA_CHANNEL_ALIAS, ...). They fill in what
// the image's ENV and the ARG values leave unset, and a step's env= and
// secrets override them. They are not part of the image (config, history)
// nor of any step's cache key: the same definition gives the same image
// whichever mirror it was built from. A later WithStepEnv replaces an
// earlier one's variables of the same name.
func WithStepEnv(env ...string) Option {
	return engine.WithStepEnv(env...)
}

// WithPythonStandaloneDir sets where add_python finds python-build-standalone
// archives (see PythonStandaloneDir). dir must be absolute.
func WithPythonStandaloneDir(dir string) Option {
	return engine.WithPythonStandaloneDir(dir)
}

// WithToolImage makes the images a build names by reference from
// repository (a COPY --from such as uv's, Image.micromamba's base, a
// Dockerfile FROM) come from replacement instead, keeping the tag or
// digest: with WithToolImage(UvImageRepository,
// "registry.internal/astral-sh/uv"), ghcr.io/astral-sh/uv:0.8.0 is taken
// from the store, or pulled, as registry.internal/astral-sh/uv:0.8.0.
// from_registry bases are not replaced (registries.conf mirrors serve them).
//
// Cache keys follow content, not names: a step that copies from the
// replacement is keyed by the replacement's manifest digest and a
// micromamba base's image ID by the image pulled, so a faithful copy of the
// original (same digest) gives the same images and anything else gives
// other ones.
func WithToolImage(repository, replacement string) Option {
	return engine.WithToolImage(repository, replacement)
}

// WithSite applies a site configuration (package siteconfig): its step
// environment (Site.StepEnv: the pip, uv and conda mirrors, and env) as
// WithStepEnv, its Debian mirror as WithDebianMirror, its
// python-build-standalone directory as WithPythonStandaloneDir, and its uv
// and micromamba images as WithToolImage. Its registries.conf is the
// caller's to load (registry.LoadConfig, WithRegistryOptions). Options
// after WithSite override it.
func WithSite(s siteconfig.Site) Option {
	return engine.WithSite(s)
}

// WithTimestamps sets what layers keep of the mtimes that steps leave; see
// Timestamps. Layers made under one choice are not reused under the other:
// the choice is part of every step's cache key.
// The default is TimestampsClamp.
func WithTimestamps(t Timestamps) Option {
	return engine.WithTimestamps(t)
}

// DefaultEpoch is the SOURCE_DATE_EPOCH used when none is set:
// 1980-01-01T00:00:00Z (315532800), the earliest time a zip file can hold,
// so that tools which zip files from an image (wheel builders) still work.
var DefaultEpoch = engine.DefaultEpoch

// Timestamps says what the layers of a build keep of the modification times
// (mtimes) that its steps leave on files, directories and links.
type Timestamps = engine.Timestamps

// TimestampsClamp writes every mtime later than the build's epoch
// (SOURCE_DATE_EPOCH, WithEpoch; DefaultEpoch when neither is set) as
// the epoch and keeps earlier ones, so that a step that writes the same
// files gives the same layer digest whenever it runs: BuildKit's
// rewrite-timestamp=true exporter option with SOURCE_DATE_EPOCH set.
const TimestampsClamp = engine.TimestampsClamp

// TimestampsKeep writes mtimes as the steps left them, to the
// nanosecond: what docker build does when SOURCE_DATE_EPOCH is unset
// (BuildKit's rewrite-timestamp=false), for tools that compare mtimes
// (make, the mtime-checked .pyc files of a Python that does not see
// SOURCE_DATE_EPOCH). Layers then change with the time they are built
// at: rebuilding a step without its cache gives another digest.
// Whiteouts carry the Unix epoch. RUN steps and Debian bootstraps still
// see SOURCE_DATE_EPOCH, as with a build arg of that name and
// rewrite-timestamp=false. Bases are as they come: a pulled image's
// mtimes are its own, and a Debian bootstrap is clamped in both modes
// (as Debian's own images are), so both share it.
const TimestampsKeep = engine.TimestampsKeep

// ParseTimestamps returns the Timestamps named s: "clamp" or "keep".
func ParseTimestamps(s string) (Timestamps, error) {
	return engine.ParseTimestamps(s)
}

// Puller fetches an image for a reference: the registry protocol, or an
// air-gapped source. The default is set by package registry's wiring in
// NewBuilder; tests may replace it with WithPuller.
type Puller = engine.Puller

const UvImageRepository = engine.UvImageRepository

const MicromambaImageRepository = engine.MicromambaImageRepository

// WithoutSandbox makes a Builder that mounts no snapshot and starts no
// sandbox, for a process that has not entered the build namespace
// (sandbox.Entered is false: it called sandbox.Init, not
// sandbox.EnterNamespace). Build runs in this process for as long as every
// step is cached or changes only the config, and at the first one that
// would run, pull or bootstrap a base (not cached, force_build) it stops
// with an error wrapping ErrNeedsSandbox. Until the build completes, it
// holds back the image records it makes, so a build that stops has named
// nothing and recorded nothing; only manifest and config blobs of cached
// layers may be new in the store, unreferenced (prune removes them). The
// progress it reported is the start of a build that did not happen: a
// caller shows it only once Build returns without ErrNeedsSandbox, as the
// snapbuild command does. Run, pulls and a Metadata that must probe an image
// also stop with ErrNeedsSandbox. The caller then enters the namespace
// (sandbox.EnterNamespace) and builds again with a Builder made without this
// option. A fully cached build so runs as one process, with no namespace,
// mount or container, as BuildKit answers a cached build without starting
// one. A non-root process may make such a Builder.
// The default is a Builder that runs every step, in a process that entered
// the namespace (snapbuild.Init).
func WithoutSandbox() Option {
	return engine.WithoutSandbox()
}

// BuilderTLS is how to reach a BuildKit daemon that serves TLS, as
// buildctl's --tlscacert, --tlscert, --tlskey and --tlsservername give it:
// paths of PEM files. The zero value is no TLS.
type BuilderTLS = engine.BuilderTLS

// WithBuilder builds every step on the BuildKit daemon (buildkitd) at addr
// instead of this machine's sandbox, as buildctl --addr does:
// "unix:///PATH/buildkitd.sock" or "tcp://HOST:PORT", optionally written
// with the "buildkit://" prefix; tls is the zero BuilderTLS for none.
//
// Each Modal layer (and a Dockerfile) is one solve of its LLB definition
// on the daemon. The bases the store holds (a layer's parent, a Debian
// bootstrap, a pulled image) are given to the daemon as OCI layout sources
// read from the store through BuildKit's session, the build context and
// run_function's sources as local sources, secrets through BuildKit's
// secret provider (never in the definition); the result, an OCI tarball
// from BuildKit's exporter, is imported into the store by digest and named
// as a local build names it. Debian bootstraps still run here
// (mmdebstrap). Layer digests are those of BuildKit's differ and zstd
// compressor, and the step cache is the daemon's, not the store's.
// Layers with gpu= or volumes=, and WithNetwork(sandbox.NetworkPrivate),
// are refused with an error. docs/buildkit.md lists what differs.
//
// A bad address or TLS setting is an error from NewBuilder; an unreachable
// daemon fails the first build. The default is to build on this machine.
func WithBuilder(addr string, tls BuilderTLS) Option {
	return engine.WithBuilder(addr, tls)
}
