package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/storage/pkg/unshare"

	"github.com/snapbuild/snapbuild/base"
	"github.com/snapbuild/snapbuild/internal/store"
	"github.com/snapbuild/snapbuild/sandbox"
)

// fakeMirror serves one suite's InRelease file, which the test changes,
// and counts the requests.
type fakeMirror struct {
	srv      *httptest.Server
	mu       sync.Mutex
	body     string
	requests atomic.Int32
}

func newFakeMirror(t *testing.T, version string) *fakeMirror {
	m := &fakeMirror{}
	m.set(version)
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.requests.Add(1)
		if r.URL.Path != "/debian/dists/bookworm/InRelease" {
			http.NotFound(w, r)
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		w.Write([]byte(m.body))
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMirror) set(version string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.body = "Origin: Debian\nLabel: Debian\nSuite: stable\nVersion: " + version + "\nCodename: bookworm\nDate: Sat, 09 Nov 2024 10:02:43 UTC\nSHA256:\n"
}

// fakeMmdebstrap puts an mmdebstrap on PATH that makes a rootfs of one
// file and a dpkg status listing libc6 at the version written to the file
// it returns.
func fakeMmdebstrap(t *testing.T) (libc string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("Bootstrap starts mmdebstrap in new pid and mount namespaces: needs root")
	}
	dir := t.TempDir()
	libc = filepath.Join(dir, "libc-version")
	script := `#!/bin/sh
for a; do rootfs=$prev; prev=$a; done
mkdir -p "$rootfs/var/lib/dpkg" "$rootfs/dev"
printf 'Package: libc6\nStatus: install ok installed\nArchitecture: all\nVersion: %s\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a\n' "$(cat ` + libc + `)" > "$rootfs/var/lib/dpkg/status"
echo "I: running apt-get update..."
`
	if err := os.WriteFile(filepath.Join(dir, "mmdebstrap"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return libc
}

// pinEngine is an Engine on store root whose Debian mirror is m, with its
// events in *events.
func pinEngine(t *testing.T, root string, m *fakeMirror, events *[]string) *Engine {
	t.Helper()
	s, err := store.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var mu sync.Mutex
	b := &Engine{store: s, mirror: m.srv.URL + "/debian", epoch: DefaultEpoch, progress: ProgressFunc(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Kind == EventOutput && strings.HasPrefix(e.Line, "debian: ") {
			*events = append(*events, e.Line)
		}
	})}
	if err := b.share(); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBasePin(t *testing.T) {
	libc := fakeMmdebstrap(t)
	write := func(v string) {
		if err := os.WriteFile(libc, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("2.36-9+deb12u8")
	m := newFakeMirror(t, "12.8")
	root := t.TempDir()
	d := base.Debian{Suite: "bookworm", Packages: []string{"python3"}, Epoch: DefaultEpoch, Mirror: m.srv.URL + "/debian"}
	in := instruction{Text: "FROM python:3.11-slim-bookworm", Line: 1}
	var events []string
	// boot runs one build's base step on a fresh Engine (whose checks
	// are its own) and returns whether it was cached, its key, and the
	// mirror requests it made.
	boot := func(pull bool) (cached bool, key string, requests int32, b *Engine) {
		t.Helper()
		events = nil
		b = pinEngine(t, root, m, &events)
		b.pullBases = pull
		before := m.requests.Load()
		var st buildState
		cached, rec, err := b.bootstrapDebian(context.Background(), &st, d, in, false, Event{})
		if err != nil {
			t.Fatalf("bootstrapDebian: %v", err)
		}
		return cached, rec.Key, m.requests.Load() - before, b
	}
	readPin := func() basePin {
		t.Helper()
		var p basePin
		data, err := os.ReadFile(filepath.Join(root, "bases", baseDefKey(d.Definition())+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The first build asks the mirror and pins what it made.
	cached, key, n, _ := boot(false)
	if cached || n != 1 {
		t.Fatalf("first build: cached %v, %d requests; want a bootstrap after one request", cached, n)
	}
	p := readPin()
	if p.Key != key || p.Suite != "bookworm" || p.Archive == nil || p.Archive.Release != "Debian 12.8" || p.Built.IsZero() || p.Epoch != DefaultEpoch.Unix() {
		t.Fatalf("pin = %+v", p)
	}
	// Its key is the one stores made before pinning: their bases stay.
	if key != baseKey(d.Definition(), *p.Archive) || baseKey(d.Definition(), *p.Archive) != oldKey(d.Definition(), p.Archive.InRelease) {
		t.Errorf("base key %s is not the key of before", key)
	}

	// Cached: no request, even with the archive moved or the mirror down.
	m.set("12.9")
	if cached, k, n, _ := boot(false); !cached || k != key || n != 0 || len(events) != 0 {
		t.Errorf("cached build with the archive moved: cached %v, key %s, %d requests, events %q; want the pin, no request, no word", cached, k, n, events)
	}
	m.set("12.8")

	// --timestamps keep shares the base: its layer is clamped either way.
	{
		b := pinEngine(t, root, m, &events)
		b.timestamps = TimestampsKeep
		var st buildState
		cached, rec, err := b.bootstrapDebian(context.Background(), &st, d, in, false, Event{})
		if err != nil || !cached || rec.Key != key {
			t.Errorf("--timestamps keep: cached %v, same key %v, %v", cached, rec.Key == key, err)
		}
	}

	// --pull, unchanged: one request, the pin stays.
	if cached, k, n, _ := boot(true); !cached || k != key || n != 1 || len(events) != 1 || !strings.Contains(events[0], "is current: Debian 12.8 of 2024-11-09") {
		t.Errorf("--pull, archive unchanged: cached %v, key %s, %d requests, events %q", cached, k, n, events)
	}

	// A pin written before pins recorded their archive learns it.
	old := readPin()
	old.Archive, old.Suite, old.Packages, old.Epoch = nil, "", nil, 0
	data, _ := json.Marshal(old.Step) // what older snapbuilds wrote
	os.WriteFile(filepath.Join(root, "bases", baseDefKey(d.Definition())+".json"), data, 0o644)
	if cached, k, _, _ := boot(true); !cached || k != key || readPin().Archive == nil || readPin().Suite != "bookworm" || readPin().Epoch != DefaultEpoch.Unix() {
		t.Errorf("--pull on an old record: cached %v, key %s, pin %+v", cached, k, readPin())
	}

	// The archive moves: --pull bootstraps again and says what changed.
	m.set("12.9")
	write("2.36-9+deb12u9")
	cached, key2, n, b := boot(true)
	if cached || key2 == key || n != 1 || !b.forceRest {
		t.Errorf("--pull, archive moved: cached %v, new key %v, %d requests, rest forced %v", cached, key2 != key, n, b.forceRest)
	}
	want := []string{"debian: the archive moved: Debian 12.8 of 2024-11-09 → Debian 12.9 of 2024-11-09; bootstrapping bookworm again",
		"debian: updating package lists",
		"debian: release Debian 12.8 → Debian 12.9", "debian: 1 package changed:", "debian:   libc6 2.36-9+deb12u8 → 2.36-9+deb12u9"}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Errorf("--pull, archive moved: events\n%s\nwant\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	if p := readPin(); p.Key != key2 || p.Archive.Release != "Debian 12.9" {
		t.Errorf("new pin = %+v", p)
	}
	// The next build uses the new pin, asking nobody.
	if cached, k, n, _ := boot(false); !cached || k != key2 || n != 0 {
		t.Errorf("build after the update: cached %v, key is new %v, %d requests", cached, k == key2, n)
	}

	// base ls and base update.
	b = pinEngine(t, root, m, &events)
	bases, err := b.Bases()
	if err != nil || len(bases) != 1 || bases[0].Suite != "bookworm" || bases[0].Release != "Debian 12.9" || !bases[0].Present || len(bases[0].Images) != 0 {
		t.Errorf("Bases = %+v, %v", bases, err)
	}
	if _, err := b.UpdateBases(context.Background(), "trixie"); err == nil || err.Error() != `no Debian base of suite "trixie" is pinned in the store: pinned suites are bookworm` {
		t.Errorf("UpdateBases(trixie): %v", err)
	}
	m.set("12.10")
	write("2.36-9+deb12u10")
	ups, err := b.UpdateBases(context.Background())
	if err != nil || len(ups) != 1 || !ups[0].Updated || ups[0].Old != "Debian 12.9 of 2024-11-09" || ups[0].New != "Debian 12.10 of 2024-11-09" ||
		strings.Join(ups[0].Changes, "|") != "release Debian 12.9 → Debian 12.10|1 package changed:|libc6 2.36-9+deb12u9 → 2.36-9+deb12u10" {
		t.Errorf("UpdateBases = %+v, %v", ups, err)
	}
	if ups, err := pinEngine(t, root, m, &events).UpdateBases(context.Background(), "bookworm"); err != nil || len(ups) != 1 || ups[0].Updated || ups[0].New != "Debian 12.10 of 2024-11-09" {
		t.Errorf("UpdateBases, unchanged = %+v, %v", ups, err)
	}

	// The pinned base pruned and the mirror down: the error says both.
	os.RemoveAll(filepath.Join(root, "snapshots"))
	os.MkdirAll(filepath.Join(root, "snapshots", ".tmp"), 0o700)
	m.srv.Close()
	b = pinEngine(t, root, m, &events)
	var st buildState
	_, _, err = b.bootstrapDebian(context.Background(), &st, d, in, false, Event{})
	if err == nil || !strings.Contains(err.Error(), "cannot bootstrap Debian bookworm: debian mirror") ||
		!strings.Contains(err.Error(), "the base pinned for it (Debian 12.10 of 2024-11-09) is no longer in the store") {
		t.Errorf("pruned base, mirror down: %v", err)
	}
}

// oldKey is how snapbuild keyed a Debian base before bases were pinned.
func oldKey(def, inRelease string) string {
	sum := sha256.Sum256([]byte("snapbuild-base/1 " + def + " archive=" + inRelease))
	return hex.EncodeToString(sum[:])
}

func TestSuiteOf(t *testing.T) {
	for in, want := range map[string]string{
		"FROM python:3.11-slim-bookworm": "bookworm",
		"FROM python:3.13-slim-trixie":   "trixie",
		"FROM":                           "",
	} {
		if got := suiteOf(in); got != want {
			t.Errorf("suiteOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBaseChangesCapped(t *testing.T) {
	b := uBuilder(t)
	// Two committed snapshots by hand: their dpkg status files differ in
	// 20 packages.
	snap := func(id digest.Digest, version string) store.Step {
		dir := filepath.Join(b.store.Root(), "snapshots", id.Encoded())
		var status strings.Builder
		for i := range 20 {
			fmt.Fprintf(&status, "Package: pkg%02d\nStatus: install ok installed\nArchitecture: all\nVersion: %s\n\n", i, version)
		}
		os.MkdirAll(filepath.Join(dir, "fs/var/lib/dpkg"), 0o755)
		os.WriteFile(filepath.Join(dir, "parent"), nil, 0o644)
		os.WriteFile(filepath.Join(dir, "fs/var/lib/dpkg/status"), []byte(status.String()), 0o644)
		return store.Step{Key: string(id.Encoded()), ChainID: id, Layer: ocispec.Descriptor{Digest: id}}
	}
	old := basePin{Step: snap(digest.FromString("old"), "1"), Archive: &base.Archive{Release: "Debian 12.7"}}
	np := basePin{Step: snap(digest.FromString("new"), "2"), Archive: &base.Archive{Release: "Debian 12.8"}}
	got := b.baseChanges(old, np)
	if len(got) != 2+maxChangesShown+1 || got[0] != "release Debian 12.7 → Debian 12.8" || got[1] != "20 packages changed:" ||
		got[2] != "  pkg00 1 → 2" || got[len(got)-1] != "  and 8 more" {
		t.Errorf("baseChanges =\n%s", strings.Join(got, "\n"))
	}
	if got := b.baseChanges(old, old); strings.Join(got, "|") != "the new base is the same as the old one: no package changed" {
		t.Errorf("baseChanges of the same base = %q", got)
	}
}

// TestSingleIDBootstrap: in single-ID mode a debian_slim base that the
// store lacks is refused before the mirror is asked or mmdebstrap runs,
// with the error naming the ways out; a base the store holds (made
// elsewhere, imported) is used as before.
func TestSingleIDBootstrap(t *testing.T) {
	libc := fakeMmdebstrap(t)
	if err := os.WriteFile(libc, []byte("2.36-9+deb12u8"), 0o644); err != nil {
		t.Fatal(err)
	}
	ran := filepath.Join(t.TempDir(), "ran")
	// Wrap the fake to record that it ran.
	dir := t.TempDir()
	wrapper := "#!/bin/sh\ntouch " + ran + "\nexec " + filepath.Join(filepath.Dir(libc), "mmdebstrap") + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "mmdebstrap"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	m := newFakeMirror(t, "12.8")
	root := t.TempDir()
	d := base.Debian{Suite: "bookworm", Packages: []string{"python3"}, Epoch: DefaultEpoch, Mirror: m.srv.URL + "/debian"}
	in := instruction{Text: "FROM python:3.11-slim-bookworm", Line: 1}
	// single makes sandbox.SingleID true or false, as EnterNamespace's
	// single-ID re-execution marks the process (the store is opened
	// before, as root: its snapshots are the test's own).
	single := func(on bool) {
		v := ""
		if on {
			v = "1"
		}
		t.Setenv(unshare.UsernsEnvName, v)
		t.Setenv("_SNAPBUILD_USERNS_SINGLE", v)
		if sandbox.SingleID() != on {
			t.Fatalf("sandbox.SingleID() = %v, want %v", !on, on)
		}
	}
	boot := func() (bool, error) {
		var events []string
		b := pinEngine(t, root, m, &events)
		single(true)
		defer single(false)
		var st buildState
		cached, _, err := b.bootstrapDebian(context.Background(), &st, d, in, false, Event{})
		return cached, err
	}

	_, err := boot()
	if !errors.Is(err, sandbox.ErrSingleID) {
		t.Fatalf("bootstrap in single-ID mode: error = %v, want one wrapping sandbox.ErrSingleID", err)
	}
	for _, want := range []string{"FROM python:3.11-slim-bookworm", "bootstrapping Debian bookworm", "system groups", "--cache-from", "--cache-to", "from_registry", "from_id", "usermod --add-subuids"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	}
	if n := m.requests.Load(); n != 0 {
		t.Errorf("the refused bootstrap asked the mirror %d times, want 0", n)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("mmdebstrap ran in single-ID mode")
	}

	// The base made outside single-ID mode (as a cache import brings it)
	// is then used in single-ID mode: no bootstrap, no error.
	var events []string
	b := pinEngine(t, root, m, &events)
	var st buildState
	if _, _, err := b.bootstrapDebian(context.Background(), &st, d, in, false, Event{}); err != nil {
		t.Fatalf("bootstrap outside single-ID mode: %v", err)
	}
	if err := os.Remove(ran); err != nil {
		t.Fatalf("mmdebstrap did not run outside single-ID mode: %v", err)
	}
	cached, err := boot()
	if err != nil || !cached {
		t.Fatalf("single-ID build on a base the store holds: cached %v, error %v; want the cached base", cached, err)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("mmdebstrap ran again for a base the store holds")
	}
}
