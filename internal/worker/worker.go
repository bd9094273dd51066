package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/remotecache"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/overlay"
	"github.com/snapbuild/snapbuild/sandbox"
	"github.com/snapbuild/snapbuild/snapshot"
)

// Ref is a filesystem the Worker made, the build.Ref of this worker.
//
// An image filesystem is the committed snapshot Chain, made of Layers (base
// layer first) whose uncompressed digests are DiffIDs; an empty filesystem
// has no layers and Chain "". A local source is a directory instead (Dir set,
// no layers), read in place through its op's patterns: it can be read by
// later ops but is no image and cannot be exported.
type Ref struct {
	// Chain is the OCI chain ID of the layers, the committed snapshot's
	// name; "" for an empty filesystem or a directory.
	Chain digest.Digest
	// Layers are the layer blobs in the store, base layer first: zstd
	// for the layers the Worker wrote, an image's own (gzip or
	// uncompressed) for an image's layers, which merges keep as they are.
	Layers []ocispec.Descriptor
	// DiffIDs are the digests of the layers' uncompressed tar streams, in
	// the order of Layers.
	DiffIDs []digest.Digest
	// Dir is the directory of a local source, the one registered with
	// AddLocal (read in place: it holds what the op's patterns leave out
	// too); "" otherwise.
	Dir string
	// Capture is how long the op that made this ref spent turning its
	// writable snapshot into a layer: unmount, diff, tar, zstd, both
	// hashes, fsync and the snapshot commit. 0 for a ref that no op of
	// this process captured (one from the cache, a source, a merge). An op
	// that changed nothing returns its input, Capture and all.
	Capture time.Duration

	local *localRef // the patterns a local source is read through
}

// Worker runs LLB ops on snapshots. It implements build.Worker and, through
// Cache, build.Cache. Its methods are safe for concurrent use.
type Worker struct {
	blobs *oci.Store
	snaps *snapshot.Store
	dir   string
	opts  options

	mu     sync.Mutex
	locals map[string]local
	hashes map[string]*fileHashes // content hashes of local directories, by directory
	temps  []string               // directories to remove on Close

	fetchMu map[string]*sync.Mutex // http downloads, by source
	fetches map[string]*download   // downloads ContentKey made, for Source
}

// local is a directory registered with AddLocal.
type local struct {
	dir string
	key digest.Digest // the caller's content key (WithContentKey); "" to checksum dir
}

// LocalOption configures a local source registered with AddLocal.
type LocalOption func(*local)

// WithContentKey makes key the content key of the local source, instead of
// a checksum of its files: for a source whose identity the caller knows
// better than its bytes (run_function's module, keyed by the function's
// definition as Modal keys it, not by every line of the file). key must not
// be empty; it is used as given, for the whole source and every selection
// of it.
func WithContentKey(key digest.Digest) LocalOption {
	return func(l *local) { l.key = key }
}

// defaultEpoch is the builder's default SOURCE_DATE_EPOCH, 1980-01-01.
var defaultEpoch = time.Unix(315532800, 0).UTC()

// Option configures a Worker.
type Option func(*options) error

type options struct {
	epoch      time.Time
	keepTimes  bool // WithKeepTimestamps
	network    sandbox.Network
	security   sandbox.Security
	output     io.Writer
	outputFor  func(ctx context.Context) io.WriteCloser
	timeout    func(ctx context.Context) time.Duration
	tailKeep   int
	secrets    SecretStore
	client     *http.Client
	devices    func(ctx context.Context, devices []*pb.CDIDevice, spec *sandbox.Spec) error
	cacheDirs  func(ctx context.Context, id string) (string, bool, error)
	defaultEnv []string
	// packageCaches is WithPackageCaches'.
	packageCaches func(ctx context.Context, op *pb.ExecOp) []PackageCache
	// remote and record are WithRemoteCache's.
	remote *remotecache.Importer
	record *remotecache.Recorder
}

// WithRemoteCache makes the Worker's cache (Cache) ask remote on a local
// miss, and report every record it finds or writes to record (for an
// export, build --cache-to). A record remote has is taken only once each
// layer it names is in the store with its digest and diffID checked and
// its snapshot made (no container runs for it); otherwise the op runs,
// after remote's warning. Either may be nil.
// The default is no remote cache and no recorder.
func WithRemoteCache(remote *remotecache.Importer, record *remotecache.Recorder) Option {
	return func(o *options) error {
		o.remote, o.record = remote, record
		return nil
	}
}

// WithEpoch clamps the mtime of every entry in the layers the Worker writes
// to at most t (SOURCE_DATE_EPOCH, as reproducible builds do); a later mtime
// becomes t, an earlier one is kept.
// The default is 1980-01-01T00:00:00Z, the builder's default
// (snapbuild.DefaultEpoch: the earliest time a zip file can hold).
func WithEpoch(t time.Time) Option {
	return func(o *options) error {
		o.epoch = t
		return nil
	}
}

// WithKeepTimestamps writes the mtimes that ops leave into their layers as
// they are, instead of clamping them to the epoch (WithEpoch): the choice of
// BuildKit's rewrite-timestamp=false, and of docker build without
// SOURCE_DATE_EPOCH. Layers then change with the time they are built at.
// Whiteouts carry the Unix epoch. KeySalt tells the two apart.
// The default is to clamp.
func WithKeepTimestamps() Option {
	return func(o *options) error {
		o.keepTimes = true
		return nil
	}
}

// WithNetwork sets the network of exec ops whose network mode is unset
// (pb.NetMode_UNSET, BuildKit's default "sandbox" network): the host's
// (sandbox.NetworkHost), loopback only (sandbox.NetworkNone) or a namespace
// of its own with outbound access through slirp4netns
// (sandbox.NetworkPrivate). Ops that ask for host or none get what they ask
// for. The worker's network is not part of any key: an op run in a private
// network carries NetworkConstraint(sandbox.NetworkPrivate) (see
// RequireNetwork), so that it is not reused for one run in the host's.
// The default is sandbox.NetworkHost, as snapbuild's RUN steps.
func WithNetwork(n sandbox.Network) Option {
	return func(o *options) error {
		if n == "" {
			n = sandbox.NetworkHost
		}
		if err := n.Check(); err != nil {
			return err
		}
		o.network = n
		return nil
	}
}

// NetworkLabel is BuildKit's worker label for the network that serves exec
// ops with the default network mode (pb.NetMode_UNSET): "host" or "cni" for
// BuildKit's workers, the sandbox.Network for this one.
const NetworkLabel = "org.mobyproject.buildkit.worker.network"

// NetworkConstraint returns the worker constraint (a pb.WorkerConstraints
// filter, in BuildKit's worker filter syntax) that asks for a worker whose
// default network is n, e.g.
// labels."org.mobyproject.buildkit.worker.network"==private.
func NetworkConstraint(n sandbox.Network) string {
	return fmt.Sprintf("labels.%q==%s", NetworkLabel, n)
}

// RequireNetwork adds NetworkConstraint(n) to op's worker constraints, once.
// The constraints are part of the op, so of its cache key (see
// build.KeyVersion): a result made in network n is reused only for ops that
// ask for n. The Worker does not read them: the caller gives it
// WithNetwork(n) too.
func RequireNetwork(op *pb.Op, n sandbox.Network) {
	c := NetworkConstraint(n)
	if op.Constraints == nil {
		op.Constraints = &pb.WorkerConstraints{}
	}
	if !slices.Contains(op.Constraints.Filter, c) {
		op.Constraints.Filter = append(op.Constraints.Filter, c)
	}
}

// WithSecurity sets the most an exec op may ask for: with
// sandbox.SecurityInsecure, ops whose mode is pb.SecurityMode_INSECURE
// (RUN --security=insecure) run with every capability and no seccomp
// filter, as BuildKit runs them when given the security.insecure
// entitlement; with sandbox.SecuritySandbox they are refused. Ops in the
// sandbox mode run under sandbox.SecuritySandbox either way. The mode is
// part of the op, so of its cache key: a step run insecure is never reused
// for a sandboxed one.
// The default is sandbox.SecuritySandbox.
func WithSecurity(s sandbox.Security) Option {
	return func(o *options) error {
		if err := s.Check(); err != nil {
			return err
		}
		o.security = s
		return nil
	}
}

// WithOutput copies the stdout and stderr of every exec op to w. Writes to
// w may come from several ops at once; w must be safe for concurrent use.
// The default is to keep only the last lines of each op's output, for its
// error.
func WithOutput(w io.Writer) Option {
	return func(o *options) error {
		o.output = w
		return nil
	}
}

// WithOutputFor gives each exec op a writer of its own for its stdout and
// stderr: fn is called with the context of the Exec call (build.VertexFrom
// names the op's vertex) before the process starts, and the writer it
// returns is closed once the process has ended; a nil writer drops the
// output. It replaces WithOutput.
// The default is WithOutput's.
func WithOutputFor(fn func(ctx context.Context) io.WriteCloser) Option {
	return func(o *options) error {
		o.outputFor = fn
		return nil
	}
}

// WithTailLines sets how many of an exec op's last output lines an
// *ExitError holds (default 20).
func WithTailLines(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("tail lines: %d, want at least 1", n)
		}
		o.tailKeep = n
		return nil
	}
}

// WithTimeout limits how long an exec op's process may run: fn is called
// with the context of the Exec call (build.VertexFrom names the op's
// vertex) and returns the limit, 0 for none. A process still running at
// the limit is killed and the op fails with an *ExitError whose TimedOut
// is the limit. The limit is not part of the op, so not of its cache key
// (as Modal leaves run_function's timeout out of the layer's identity).
// The default is no limit.
func WithTimeout(fn func(ctx context.Context) time.Duration) Option {
	return func(o *options) error {
		o.timeout = fn
		return nil
	}
}

// WithDevices gives exec ops that name CDI devices (pb.ExecOp.CdiDevices,
// RUN --device) to fn, which adds what they need (device nodes, mounts, env,
// hooks) to the op's sandbox spec once the rest of it is set, just before
// the process starts. Its error fails the op. The names are the front
// end's; fn decides what they mean and refuses the ones it does not know.
// The default is to refuse ops with CDI devices.
func WithDevices(fn func(ctx context.Context, devices []*pb.CDIDevice, spec *sandbox.Spec) error) Option {
	return func(o *options) error {
		o.devices = fn
		return nil
	}
}

// WithCacheDirs lets the front end give some cache mounts a directory of
// its own: fn is asked for each cache mount's ID, and when it returns a
// directory (ok), that directory is mounted as it is, shared, with no
// seeding, locking or ownership change: a persistent directory the front
// end keeps, such as a Modal volume. Other IDs get the worker's caches.
// The default is the worker's caches for every ID.
func WithCacheDirs(fn func(ctx context.Context, id string) (dir string, ok bool, err error)) Option {
	return func(o *options) error {
		o.cacheDirs = fn
		return nil
	}
}

// WithDefaultEnv adds env ("NAME=value" entries) to the environment of
// every exec op that does not set the name itself. The entries are the
// worker's, not the op's: they are in no cache key, as BuildKit keeps proxy
// variables out of keys. For what a site sets for every step (a package
// index mirror) that must not change which results are reused.
// The default is none (PATH is always added when unset).
func WithDefaultEnv(env []string) Option {
	return func(o *options) error {
		for _, kv := range env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return fmt.Errorf("default env %q: give NAME=value", kv)
			}
		}
		o.defaultEnv = slices.Clone(env)
		return nil
	}
}

// sandboxSeq numbers the sandboxes of every Worker of the process: their
// IDs (and state directories) must differ while Workers run at once.
var sandboxSeq atomic.Int64

// The locks Workers that run at once in one process share: a cache mount's
// directory for locked sharing, a snapshot being unpacked from its layers.
var (
	sharedMu    sync.Mutex
	cacheLocks  = map[string]*sync.Mutex{}
	unpackLocks = map[digest.Digest]*sync.Mutex{}
)

// New returns a Worker that keeps layers and image blobs in blobs, snapshots
// in snaps, and its own files (sandbox state, cache mounts, copies of local
// sources) under dir, which it creates. The process must have been set up by
// sandbox.Init for exec ops and for ops on non-empty snapshots (they mount
// overlays); file ops on an empty filesystem and local sources need neither.
func New(blobs *oci.Store, snaps *snapshot.Store, dir string, opts ...Option) (*Worker, error) {
	if blobs == nil || snaps == nil {
		return nil, errors.New("new worker: the blob store and the snapshot store are both needed")
	}
	o := options{epoch: defaultEpoch, network: sandbox.NetworkHost, tailKeep: 20}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("new worker: %w", err)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("new worker: %w", err)
	}
	for _, d := range []string{"tmp", "run", "cache"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("new worker: %w", err)
		}
	}
	return &Worker{blobs: blobs, snaps: snaps, dir: abs, opts: o,
		locals: map[string]local{}, hashes: map[string]*fileHashes{},
		fetchMu: map[string]*sync.Mutex{}, fetches: map[string]*download{}}, nil
}

// KeySalt describes the settings that change what the Worker makes of the
// same op (the mtime clamp or its absence, the layer format); pass it to
// build.WithKeySalt so that results made under other settings are not
// reused.
func (w *Worker) KeySalt() string {
	if w.opts.keepTimes {
		return "snapbuild-worker/1 layers=zstd timestamps=keep"
	}
	return fmt.Sprintf("snapbuild-worker/1 layers=zstd epoch=%d", w.opts.epoch.Unix())
}

// layerEpoch is overlay.DiffOptions.Epoch for the Worker's layers: nil when
// real mtimes are kept.
func (w *Worker) layerEpoch() *time.Time {
	if w.opts.keepTimes {
		return nil
	}
	return &w.opts.epoch
}

// AddLocal registers dir as the content of local://name sources. dir must be
// an existing directory; a name can be registered once.
func (w *Worker) AddLocal(name, dir string, opts ...LocalOption) error {
	if name == "" {
		return errors.New("add local source: the name is empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("add local source %q: %w", name, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("add local source %q: %w", name, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("add local source %q: %s is not a directory", name, abs)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if l, ok := w.locals[name]; ok {
		return fmt.Errorf("add local source %q: already registered as %s", name, l.dir)
	}
	l := local{dir: abs}
	for _, o := range opts {
		o(&l)
	}
	if o := len(opts); o > 0 && l.key == "" {
		return fmt.Errorf("add local source %q: the content key is empty", name)
	}
	w.locals[name] = l
	return nil
}

// Close removes the directories the Worker made for local sources, tmpfs
// mounts and downloads; Refs to local sources are unusable afterwards. Snapshots,
// layers and cache mounts stay, and so do the content hashes of the local
// sources' files, for the next Worker on the same directory. Close is
// idempotent.
func (w *Worker) Close() error {
	errs := []error{w.saveHashes()}
	w.mu.Lock()
	temps := w.temps
	w.temps = nil
	clear(w.fetches)
	w.mu.Unlock()
	for _, d := range temps {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}

// tempDir makes a directory under the Worker's tmp/ that Close removes.
func (w *Worker) tempDir(pattern string) (string, error) {
	d, err := os.MkdirTemp(filepath.Join(w.dir, "tmp"), pattern)
	if err != nil {
		return "", err
	}
	w.mu.Lock()
	w.temps = append(w.temps, d)
	w.mu.Unlock()
	return d, nil
}

// keyedLock returns the lock of key k in locks, made on first use; mu
// guards locks.
func keyedLock[K comparable](mu *sync.Mutex, locks map[K]*sync.Mutex, k K) *sync.Mutex {
	mu.Lock()
	defer mu.Unlock()
	l, ok := locks[k]
	if !ok {
		l = &sync.Mutex{}
		locks[k] = l
	}
	return l
}

// asRef converts a solver input to *Ref; nil stays nil (an empty filesystem).
func asRef(r build.Ref) (*Ref, error) {
	switch r := r.(type) {
	case nil:
		return nil, nil
	case *Ref:
		return r, nil
	}
	return nil, fmt.Errorf("input of type %T was not made by this worker", r)
}

// inputRef returns the result an op's input index names: -1 (pb.Empty) is an
// empty filesystem.
func inputRef(inputs []build.Ref, i int64) (*Ref, error) {
	if i < 0 {
		return nil, nil
	}
	if i >= int64(len(inputs)) {
		return nil, fmt.Errorf("input %d: the op has %d inputs", i, len(inputs))
	}
	return asRef(inputs[i])
}

// chainOf is the snapshot a writable snapshot on r starts from.
func chainOf(r *Ref) (digest.Digest, error) {
	if r == nil {
		return "", nil
	}
	if r.Dir != "" {
		return "", fmt.Errorf("a local source (%s) cannot be the base of a writable filesystem: copy from it instead", r.Dir)
	}
	return r.Chain, nil
}

// prepare makes a writable snapshot on r, mounted.
func (w *Worker) prepare(r *Ref) (*snapshot.Active, error) {
	chain, err := chainOf(r)
	if err != nil {
		return nil, err
	}
	return w.snaps.Prepare(chain)
}

// view returns a read-only directory holding r's files and a function that
// releases it: a mounted view of a snapshot, a local source's selection
// (localRef.selection), or an empty directory.
func (w *Worker) view(ctx context.Context, r *Ref) (string, func(), error) {
	switch {
	case r != nil && r.local != nil:
		d, err := r.local.selection(ctx, w)
		return d, func() {}, err
	case r != nil && r.Dir != "":
		return r.Dir, func() {}, nil
	case r == nil || r.Chain == "":
		d, err := os.MkdirTemp(filepath.Join(w.dir, "tmp"), "empty-")
		if err != nil {
			return "", nil, err
		}
		return d, func() { os.RemoveAll(d) }, nil
	}
	a, err := w.snaps.View(r.Chain)
	if err != nil {
		return "", nil, err
	}
	return a.Rootfs, func() { a.Remove() }, nil
}

// commit diffs the writable snapshot a (on base) into one layer and commits
// it. A diff with no entries commits nothing and returns base (an empty
// filesystem for nil). a is removed in every case.
func (w *Worker) commit(ctx context.Context, a *snapshot.Active, base *Ref) (*Ref, error) {
	defer a.Remove()
	t0 := time.Now()
	layer, stats, err := w.writeDiff(ctx, a)
	if err != nil {
		return nil, err
	}
	if stats.Entries == 0 {
		if base == nil {
			return &Ref{}, nil
		}
		return base, nil
	}
	var parent digest.Digest
	var r Ref
	if base != nil {
		parent = base.Chain
		r.Layers, r.DiffIDs = slices.Clone(base.Layers), slices.Clone(base.DiffIDs)
	}
	r.Chain = snapshot.ChainID(parent, layer.DiffID)
	r.Layers = append(r.Layers, layer.Descriptor)
	r.DiffIDs = append(r.DiffIDs, layer.DiffID)
	if err := w.snaps.Commit(a, r.Chain); err != nil {
		return nil, err
	}
	r.Capture = time.Since(t0)
	return &r, nil
}

// writeDiff unmounts a, writes the changes in its upper dir as one zstd
// layer (overlay.Diff into oci.Store.WriteLayer) with the Worker's mtime
// clamp, and clamps the upper dir the same way (overlay.ClampPyc before the
// diff, overlay.ClampTimes after it), so that the snapshot holds what the
// layer holds. a stays, unmounted.
func (w *Worker) writeDiff(ctx context.Context, a *snapshot.Active) (oci.Layer, overlay.Stats, error) {
	if err := a.Unmount(); err != nil {
		return oci.Layer{}, overlay.Stats{}, err
	}
	if e := w.layerEpoch(); e != nil {
		// .pyc files stay valid once their sources are clamped.
		if err := overlay.ClampPyc(ctx, a.Upper, *e); err != nil {
			return oci.Layer{}, overlay.Stats{}, err
		}
	}
	var stats overlay.Stats
	layer, err := w.blobs.WriteLayer(ctx, func(out io.Writer) error {
		var err error
		stats, err = overlay.Diff(ctx, out, a.Upper, overlay.DiffOptions{Lowers: a.Lowers, UserXattr: w.snaps.UserXattr(), Epoch: w.layerEpoch()})
		return err
	})
	if e := w.layerEpoch(); err == nil && e != nil {
		// The snapshot holds the times the layer holds.
		err = overlay.ClampTimes(ctx, a.Upper, *e)
	}
	return layer, stats, err
}

var _ build.Worker = (*Worker)(nil)
