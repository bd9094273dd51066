package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/snapbuild/snapbuild/base"
	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/store"
	"github.com/snapbuild/snapbuild/sandbox"
	"github.com/snapbuild/snapbuild/snapshot"
)

// A Debian base is pinned: the store uses, for each base definition
// (base.Debian.Definition: suite, packages, recipe version, epoch, Python
// source), the base it bootstrapped first, recorded with the state of the
// archive it came from in bases/<definition key>.json (basePin). A build
// reads the pin and asks no mirror, so a cached build works offline and a
// Debian point release rebuilds nothing behind the user's back, as Modal
// fixes debian_slim per image builder version. --pull (WithPull), a
// root layer's force_build and WithForceBuild check the archive again:
// unchanged, the pin stays; moved, the base is bootstrapped again, pinned,
// and every later step of the build runs again, since its apt-get would see
// the new archive too.
//
// The step key of a base is its definition and the sha256 of the suite's
// InRelease file it was made from (baseKey), as before bases were pinned:
// the records of older stores stay valid, and learn their archive's
// release and date the next time it is checked.

// basePinPrefix starts the text a base definition's keys are hashed from.
const basePinPrefix = "snapbuild-base/1 "

// maxChangesShown is how many changed packages a moved base lists.
const maxChangesShown = 12

// basePin is the record bases/<definition key>.json. Its step fields are at
// the top level, so that older readers (and prune) see a store.Step.
type basePin struct {
	store.Step
	Suite    string   `json:"suite,omitempty"`
	Packages []string `json:"packages,omitempty"`
	Epoch    int64    `json:"epoch,omitempty"` // SOURCE_DATE_EPOCH of the bootstrap
	// PythonDir and PythonDigest are base.Debian.Python, when set.
	PythonDir    string `json:"pythonDir,omitempty"`
	PythonDigest string `json:"pythonDigest,omitempty"`
	// Archive is the archive state the base was made from; nil in a
	// record written before bases were pinned.
	Archive *base.Archive `json:"archive,omitempty"`
	Built   time.Time     `json:"built,omitzero"` // when it was bootstrapped
}

// debian is the definition the pin was made for.
func (p basePin) debian() base.Debian {
	d := base.Debian{Suite: p.Suite, Packages: p.Packages, Epoch: time.Unix(p.Epoch, 0).UTC()}
	if p.PythonDigest != "" {
		d.Python = &base.LocalPython{Dir: p.PythonDir, Digest: p.PythonDigest}
	}
	return d
}

// setDefinition records d's definition in the pin.
func (p *basePin) setDefinition(d base.Debian) {
	p.Suite, p.Packages, p.Epoch = d.Suite, slices.Clone(d.Packages), d.Epoch.Unix()
	p.PythonDir, p.PythonDigest = "", ""
	if d.Python != nil {
		p.PythonDir, p.PythonDigest = d.Python.Dir, d.Python.Digest
	}
}

// describe is what a message calls the pinned base: "Debian 12.8 of
// 2024-11-09", or its key for a record older than pinning.
func (p basePin) describe() string {
	if p.Archive != nil {
		return p.Archive.String()
	}
	return "base " + shortHex(p.Key)
}

func shortHex(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// pinChecks is what one Engine learnt of its bases, shared by its runs
// (builds that run at once): which definitions it checked against the
// archive (each at most once in its life, however many images it builds),
// which of them moved, and which registry bases it pulled again. A run's
// own forceRest (Engine) says its base moved.
type pinChecks struct {
	mu sync.Mutex
	// done holds "checked DEFKEY", "moved DEFKEY" and "pulled USE" (USE:
	// "from_registry REF", "FROM REF": pulled again, repull).
	done map[string]bool
	// changes describe how each moved base changed (baseChanges).
	changes map[string][]string
}

// is reports whether what ("checked", "moved", "pulled") was done for k.
func (c *pinChecks) is(what, k string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done[what+" "+k]
}

// mark records that what was done for k.
func (c *pinChecks) mark(what, k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = map[string]bool{}
	}
	c.done[what+" "+k] = true
}

// moved records that the base of definition key k moved, and how.
func (c *pinChecks) moved(k string, changes []string) {
	c.mark("moved", k)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changes == nil {
		c.changes = map[string][]string{}
	}
	c.changes[k] = changes
}

// changesOf is how the base of definition key k changed, if it moved.
func (c *pinChecks) changesOf(k string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changes[k]
}

// baseDefKey is the key of definition def: its pin's file name.
func baseDefKey(def string) string { return modal.SHA256Hex(basePinPrefix + def) }

// baseKey is the step key of the base of definition def made from the
// archive state a.
func baseKey(def string, a base.Archive) string {
	return modal.SHA256Hex(basePinPrefix + def + " archive=" + a.InRelease)
}

func pinRel(defKey string) string { return filepath.Join("bases", defKey+".json") }

// WithPull is snapbuild.WithPull.
func WithPull(pull bool) Option {
	return func(b *Engine) error { b.pullBases = pull; return nil }
}

// readPin reads the pin of definition key defKey.
func (b *Engine) readPin(defKey string) (basePin, bool, error) {
	var p basePin
	ok, err := b.store.ReadJSON(pinRel(defKey), &p)
	if err != nil {
		return basePin{}, false, err
	}
	return p, ok && p.Key != "", nil
}

// pinnedStep returns the step record of a pin, when its files are all in
// the store.
func (b *Engine) pinnedStep(p basePin) (store.Step, bool, error) {
	rec, ok, err := b.store.Step(p.Key)
	if err != nil || !ok {
		return store.Step{}, false, err
	}
	return rec, b.store.StepUsable(rec), nil
}

// bootstrapDebian bootstraps (or reuses) the Debian base d as the first
// layer of st, recorded as instruction in, and returns its step record. The
// base is the one pinned for d's definition, when there is one; the mirror
// is asked only when there is none (or its files were pruned), or when
// force or b.pull asks to check for a newer one (see the top of this file).
func (b *Engine) bootstrapDebian(ctx context.Context, st *buildState, d base.Debian, in instruction, force bool, ev Event) (_ bool, _ store.Step, err error) {
	def := d.Definition()
	defKey := baseDefKey(def)
	if b.plan == nil {
		// Builds running at once check and re-pin a definition one at
		// a time: the second finds it checked, or moved.
		hold := b.pool.Lock(digest.FromString("snapbuild base pin " + defKey))
		defer hold.Unlock()
	}
	pin, havePin, err := b.readPin(defKey)
	if err != nil {
		return false, store.Step{}, err
	}
	usable := false
	if havePin {
		if _, usable, err = b.pinnedStep(pin); err != nil {
			return false, store.Step{}, err
		}
	}
	if !usable && !force && !b.pullBases {
		// A base built elsewhere, from the remote cache (--cache-from).
		imported, err := b.importPin(ctx, defKey, ev)
		if err != nil {
			return false, store.Step{}, err
		}
		if imported {
			if pin, havePin, err = b.readPin(defKey); err != nil {
				return false, store.Step{}, err
			}
			if havePin {
				if _, usable, err = b.pinnedStep(pin); err != nil {
					return false, store.Step{}, err
				}
			}
		}
	}
	defer func() {
		if err == nil {
			b.recordPin(defKey)
		}
	}()
	why := "force_build"
	if b.pullBases {
		why = "--pull"
	}
	check := (force || b.pullBases) && !b.pins.is("checked", defKey)
	key := pin.Key
	var arch *base.Archive // the archive state a new pin is made from
	moved := false
	switch {
	case b.plan != nil:
		// A dry run asks no mirror.
		if !usable {
			return false, store.Step{}, &wouldRun{"bootstrap Debian " + d.Suite + ": no base for it in the store yet"}
		}
		if check {
			return false, store.Step{}, &wouldRun{"check the Debian archive for a newer " + d.Suite + " base (" + why + ")"}
		}
	case usable && !check:
		// The pinned base: no mirror is asked.
	case usable:
		a, err := d.ArchiveState(ctx)
		if err != nil {
			return false, store.Step{}, fmt.Errorf("%s: %s checks the Debian archive for a newer %s base, and %w: build without %s to use the pinned one (%s)",
				in.Text, why, d.Suite, err, why, pin.describe())
		}
		b.pins.mark("checked", defKey)
		if pin.current(def, a) {
			b.progress.Event(ev.output(fmt.Sprintf("debian: the pinned %s base is current: %s", d.Suite, a)))
			if pin.Archive == nil || pin.Suite == "" {
				// A record older than pinning learns its archive
				// and definition.
				pin.setDefinition(d)
				pin.Archive = &a
				if err := b.store.WriteJSON(pinRel(defKey), pin); err != nil {
					return false, store.Step{}, err
				}
			}
			break
		}
		b.progress.Event(ev.output(fmt.Sprintf("debian: the archive moved: %s → %s; bootstrapping %s again", pin.describe(), a, d.Suite)))
		arch, key, moved = &a, baseKey(def, a), true
	default:
		// No base yet, or the pinned one was pruned.
		if b.noSandbox {
			// The bootstrap runs in the namespace, which also tells
			// whether it can (single-ID mode): ask no mirror here.
			return false, store.Step{}, b.needsSandbox(in.Text)
		}
		if err := singleIDBootstrap(in.Text, d.Suite); err != nil {
			return false, store.Step{}, err
		}
		a, err := d.ArchiveState(ctx)
		if err != nil {
			if havePin {
				return false, store.Step{}, fmt.Errorf("%s: cannot bootstrap Debian %s: %w; the base pinned for it (%s) is no longer in the store (pruned): build where the mirror is reachable",
					in.Text, d.Suite, err, pin.describe())
			}
			return false, store.Step{}, fmt.Errorf("%s: cannot bootstrap Debian %s: %w", in.Text, d.Suite, err)
		}
		b.pins.mark("checked", defKey)
		if havePin && !pin.current(def, a) {
			b.progress.Event(ev.output(fmt.Sprintf("debian: the pinned %s base (%s) is no longer in the store; pinning the archive's current one, %s", d.Suite, pin.describe(), a)))
		}
		arch, key = &a, baseKey(def, a)
	}
	if b.pins.is("moved", defKey) {
		b.forceRest = true
	}
	*st = buildState{}
	cached, err := b.bootstrapStep(ctx, st, d, key, in, moved, ev)
	if err != nil {
		return false, store.Step{}, err
	}
	rec, _, err := b.store.Step(key)
	if err != nil {
		return false, store.Step{}, err
	}
	if b.plan != nil || arch == nil {
		return cached, rec, nil // a dry run writes nothing; the pin stays
	}
	np := basePin{Step: rec, Archive: arch, Built: time.Now().UTC()}
	np.setDefinition(d)
	if cached && havePin && pin.Key == key && !pin.Built.IsZero() {
		np.Built = pin.Built
	}
	if err := b.store.WriteJSON(pinRel(defKey), np); err != nil {
		return false, store.Step{}, err
	}
	if moved {
		b.forceRest = true
		lines := b.baseChanges(pin, np)
		for _, line := range lines {
			b.progress.Event(ev.output("debian: " + line))
		}
		b.pins.moved(defKey, lines)
	}
	return cached, rec, nil
}

// current reports whether the pin was made from archive state a.
func (p basePin) current(def string, a base.Archive) bool {
	if p.Archive != nil {
		return p.Archive.InRelease == a.InRelease
	}
	return p.Key == baseKey(def, a) // a record older than pinning
}

// bootstrapStep is the layer step of a bootstrap under key: cached unless
// force. A base's layer is the same whatever the build's Timestamps: its
// mtimes are clamped to the epoch, as an image pulled from a registry has
// them (Debian's images clamp to SOURCE_DATE_EPOCH), so both modes share it.
func (b *Engine) bootstrapStep(ctx context.Context, st *buildState, d base.Debian, key string, in instruction, force bool, ev Event) (bool, error) {
	// The phases are what a terminal shows; mmdebstrap's own lines are
	// detail, kept by plain and JSON progress.
	var phases base.BootstrapPhases
	log := &lineWriter{keep: 20, emit: func(s string) {
		phase, detail := phases.Line(s)
		if phase != "" {
			b.progress.Event(ev.output("debian: " + phase))
		}
		out := ev.output(s)
		out.Detail = detail
		b.progress.Event(out)
	}}
	epoch := b.epoch
	return b.layerStepAt(ctx, st, key, in.Text, force, &epoch, func(a *snapshot.Active) error {
		if err := singleIDBootstrap(in.Text, d.Suite); err != nil {
			return err
		}
		err := d.Bootstrap(ctx, a.Rootfs, log)
		log.flush()
		if err != nil && ctx.Err() == nil {
			// A terminal did not show mmdebstrap's lines: say how it
			// ended.
			return fmt.Errorf("%w; its last lines:\n  %s", err, strings.Join(log.lastLines(), "\n  "))
		}
		return err
	})
}

// baseChanges describes how the base of pin np differs from that of the
// pin old it replaces: the release, and the packages whose versions
// changed (at most maxChangesShown of them named).
func (b *Engine) baseChanges(old, np basePin) []string {
	var lines []string
	if old.Archive != nil && np.Archive != nil && old.Archive.Release != np.Archive.Release && np.Archive.Release != "" {
		lines = append(lines, fmt.Sprintf("release %s → %s", orUnknown(old.Archive.Release), np.Archive.Release))
	}
	if old.ChainID == np.ChainID && old.Layer.Digest == np.Layer.Digest {
		return append(lines, "the new base is the same as the old one: no package changed")
	}
	oldPkgs, err1 := b.basePackages(old.Step)
	newPkgs, err2 := b.basePackages(np.Step)
	if err := errors.Join(err1, err2); err != nil {
		return append(lines, "the changed packages cannot be told: "+err.Error())
	}
	ch := base.ChangedPackages(oldPkgs, newPkgs)
	if len(ch) == 0 {
		return append(lines, "no package changed")
	}
	if len(ch) == 1 {
		lines = append(lines, "1 package changed:")
	} else {
		lines = append(lines, fmt.Sprintf("%d packages changed:", len(ch)))
	}
	for i, c := range ch {
		if i == maxChangesShown {
			lines = append(lines, fmt.Sprintf("  and %d more", len(ch)-maxChangesShown))
			break
		}
		lines = append(lines, "  "+c.String())
	}
	return lines
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// basePackages reads the installed packages of a base's snapshot.
func (b *Engine) basePackages(rec store.Step) (map[string]string, error) {
	if rec.Empty || rec.ChainID == "" || !b.store.Snapshots().Exists(rec.ChainID) {
		return nil, fmt.Errorf("the snapshot of base %s is not in the store", shortHex(rec.Key))
	}
	return base.Packages(b.store.Snapshots().FS(rec.ChainID))
}

// BaseInfo is snapbuild.BaseInfo.
type BaseInfo struct {
	// ID is the short hash of the base's definition (its pin's name).
	ID       string   `json:"id"`
	Suite    string   `json:"suite"`
	Packages []string `json:"packages"`
	// Python is the Python version in the base ("" when unknown).
	Python string `json:"python,omitempty"`
	// Release, ArchiveDate and InRelease tell the archive state the base
	// was made from; empty for a base pinned before they were recorded
	// (snapbuild base update fills them in).
	Release     string    `json:"release,omitempty"`
	ArchiveDate time.Time `json:"archiveDate,omitzero"`
	InRelease   string    `json:"inRelease,omitempty"`
	// Built is when the base was bootstrapped (zero when unknown).
	Built time.Time `json:"built,omitzero"`
	// Size is the size of the base's layer, compressed, in bytes.
	Size int64 `json:"size"`
	// Images are the named images built on the base, sorted.
	Images []string `json:"images"`
	// Present is false when the base's files were pruned: the next build
	// bootstraps the archive's current base.
	Present bool `json:"present"`
}

// Bases is snapbuild.Builder.Bases.
func (b *Engine) Bases() ([]BaseInfo, error) {
	if err := b.store.LockShared(); err != nil {
		return nil, err
	}
	defer b.store.Unlock()
	pins, err := b.pinsIn()
	if err != nil {
		return nil, err
	}
	users, err := b.chainUsers()
	if err != nil {
		return nil, err
	}
	var out []BaseInfo
	for _, p := range pins {
		rec, usable, err := b.pinnedStep(p.basePin)
		if err != nil {
			return nil, err
		}
		bi := BaseInfo{ID: shortHex(p.defKey), Suite: p.Suite, Packages: slices.Clone(p.Packages), Python: rec.Python,
			Built: p.Built, Size: rec.Layer.Size, Present: usable, Images: users[rec.ChainID]}
		if bi.Python == "" {
			bi.Python = p.Python
		}
		if bi.Packages == nil {
			bi.Packages = []string{}
		}
		if bi.Images == nil {
			bi.Images = []string{}
		}
		if a := p.Archive; a != nil {
			bi.Release, bi.ArchiveDate, bi.InRelease = a.Release, a.Date, a.InRelease
		}
		out = append(out, bi)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Suite != out[j].Suite {
			return out[i].Suite < out[j].Suite
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// namedPin is a pin and its definition key.
type namedPin struct {
	basePin
	defKey string
}

// pinsIn lists the store's Debian base pins (bases/ also holds the records
// of from_registry bases, which are not pins).
func (b *Engine) pinsIn() ([]namedPin, error) {
	dir := filepath.Join(b.store.Root(), "bases")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []namedPin
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, "registry-") || strings.HasPrefix(name, ".") {
			continue
		}
		p, ok, err := b.readPin(name)
		if err != nil {
			return nil, err
		}
		if ok && p.Suite == "" {
			// Written before pins named their suite: the
			// instruction does ("FROM python:3.11-slim-bookworm").
			p.Suite = suiteOf(p.Instruction)
		}
		if ok {
			out = append(out, namedPin{p, name})
		}
	}
	return out, nil
}

// suiteOf guesses the suite of a base from its instruction: the word after
// the last "-" of the image it names ("python:3.11-slim-bookworm").
func suiteOf(instr string) string {
	f := strings.Fields(instr)
	if len(f) < 2 {
		return ""
	}
	i := strings.LastIndexByte(f[1], '-')
	return f[1][i+1:]
}

// chainUsers maps each snapshot chain to the named images built on it,
// sorted.
func (b *Engine) chainUsers() (map[digest.Digest][]string, error) {
	names, err := b.store.Names()
	if err != nil {
		return nil, err
	}
	users := map[digest.Digest][]string{}
	for name, id := range names {
		rec, ok, err := b.store.Image(id)
		if err != nil || !ok {
			continue // a broken name is prune's and rm's business
		}
		for c := rec.ChainID; c != ""; {
			users[c] = append(users[c], name)
			p, err := b.store.Snapshots().Parent(c)
			if err != nil {
				break
			}
			c = p
		}
	}
	for _, u := range users {
		sort.Strings(u)
	}
	return users, nil
}

// BaseUpdate is snapbuild.BaseUpdate.
type BaseUpdate struct {
	ID    string `json:"id"` // as BaseInfo.ID
	Suite string `json:"suite"`
	// Old and New are the archive states ("Debian 12.8 of 2024-11-09")
	// of the pinned base before and after; equal when it is current.
	Old string `json:"old"`
	New string `json:"new"`
	// Updated is true when the base was bootstrapped again and pinned.
	Updated bool `json:"updated"`
	// Changes describe an update: the release, then the packages whose
	// versions changed ("name old → new"), at most 12, then "and N more".
	Changes []string `json:"changes,omitempty"`
}

// UpdateBases is snapbuild.Builder.UpdateBases.
func (b *Engine) UpdateBases(ctx context.Context, suites ...string) ([]BaseUpdate, error) {
	if err := b.store.LockExclusive(); err != nil {
		return nil, err
	}
	defer func() {
		_ = store.CleanDir(filepath.Join(b.store.Root(), "tmp"))
		b.store.Unlock()
	}()
	pins, err := b.pinsIn()
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, p := range pins {
		known[p.Suite] = true
	}
	for _, s := range suites {
		if !known[s] {
			have := slices.Sorted(func(yield func(string) bool) {
				for k := range known {
					if !yield(k) {
						return
					}
				}
			})
			if len(have) == 0 {
				return nil, fmt.Errorf("no Debian base of suite %q is pinned in the store: none is (a build of debian_slim makes one)", s)
			}
			return nil, fmt.Errorf("no Debian base of suite %q is pinned in the store: pinned suites are %s", s, strings.Join(have, ", "))
		}
	}
	var out []BaseUpdate
	for _, p := range pins {
		if len(suites) > 0 && !slices.Contains(suites, p.Suite) {
			continue
		}
		if p.Packages == nil && p.Epoch == 0 {
			return out, fmt.Errorf("base %s (%s) was pinned by an older snapbuild, which did not record its definition: build an image on it with --pull instead",
				shortHex(p.defKey), p.Suite)
		}
		u, err := b.updateBase(ctx, p)
		if err != nil {
			return out, err
		}
		out = append(out, u)
	}
	return out, nil
}

// updateBase runs --pull's check for one pin, reporting the bootstrap as a
// one-step build would.
func (b *Engine) updateBase(ctx context.Context, p namedPin) (BaseUpdate, error) {
	d := p.debian()
	d.Mirror = b.mirror
	if d.Python != nil {
		if _, err := os.Stat(d.Python.Dir); err != nil {
			return BaseUpdate{}, fmt.Errorf("base %s (%s): its Python tree %s is gone: build an image on it with --pull instead", shortHex(p.defKey), p.Suite, d.Python.Dir)
		}
	}
	u := BaseUpdate{ID: shortHex(p.defKey), Suite: p.Suite, Old: p.describe()}
	instr := p.Instruction
	if instr == "" {
		instr = "FROM debian " + p.Suite
	}
	ev := Event{Step: 1, Total: 1, Instruction: instr, Entry: 1, Entries: 1}
	savedPull := b.pullBases
	b.pullBases = true
	defer func() { b.pullBases = savedPull }()
	var st buildState
	if _, _, err := b.bootstrapDebian(ctx, &st, d, instruction{Text: instr, Line: 1}, true, ev); err != nil {
		return u, err
	}
	np, _, err := b.readPin(p.defKey)
	if err != nil {
		return u, err
	}
	u.New = np.describe()
	u.Updated = b.pins.is("moved", p.defKey)
	for _, c := range b.pins.changesOf(p.defKey) {
		u.Changes = append(u.Changes, strings.TrimSpace(c))
	}
	return u, nil
}

// singleIDBootstrap refuses, in single-ID mode (sandbox.SingleID), to
// bootstrap the Debian suite for the instruction instr, before mmdebstrap
// runs: Debian's files belong to system groups (staff, shadow, utmp, ...)
// that a namespace mapping one ID cannot own, so mmdebstrap fails deep in
// its unpacking. The error wraps sandbox.ErrSingleID and names the ways
// out: a base from a step cache, a base image made elsewhere, or leaving
// single-ID mode. nil when not in single-ID mode.
func singleIDBootstrap(instr, suite string) error {
	if !sandbox.SingleID() {
		return nil
	}
	return singleIDBootstrapError(instr, suite, sandbox.SingleIDFix())
}

// singleIDBootstrapError is singleIDBootstrap's error, with fix the way out
// of single-ID mode (sandbox.SingleIDFix).
func singleIDBootstrapError(instr, suite, fix string) error {
	return fmt.Errorf("%s: bootstrapping Debian %s: %w: making a Debian base needs subordinate IDs, as Debian's files belong to system groups (staff, shadow, ...) that single-ID mode cannot own; "+
		"take the base from a step cache that holds it (--cache-from REF, exported once with --cache-to REF by a build with subordinate IDs or as root), "+
		"or build on an image made elsewhere (from_registry, or from_id of an image in the store) instead of debian_slim; or %s",
		instr, suite, sandbox.ErrSingleID, fix)
}
