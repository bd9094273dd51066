package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapbuild/snapbuild/internal/store"
)

// TestPruneFlags: every mistake is a usage error (exit 125) naming the flag,
// found before the store is opened or the question asked.
func TestPruneFlags(t *testing.T) {
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"prune", "--keep-storage", "lots"}, "snapbuild: --keep-storage lots: not a size: give bytes or a size such as 512MB or 10GB\n"},
		{[]string{"prune", "--filter", "label=x"}, "snapbuild: --filter label=x: unknown filter: snapbuild prune takes --filter until=DURATION (such as until=24h)\n"},
		{[]string{"prune", "--filter", "until=soon"}, "snapbuild: --filter until=soon: not a positive duration: give one such as until=24h or until=90m\n"},
		{[]string{"prune", "--filter", "until=1h", "--filter", "until=2h"}, "snapbuild: --filter until=2h: until is given twice: give it once\n"},
		{[]string{"prune", "images"}, "snapbuild: prune: unexpected argument \"images\": snapbuild prune takes only flags (see 'snapbuild prune --help')\n"},
		{[]string{"df", "x"}, "snapbuild: df: unexpected argument \"x\": snapbuild df takes only flags\n"},
	} {
		out, errOut, code := runCLI(t, c.argv...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errOut, strings.TrimSuffix(c.want, "\n")) {
			t.Errorf("snapbuild %s: exit %d, stdout %q, stderr %q; want exit %d, stderr %q", strings.Join(c.argv, " "), code, out, errOut, exitUsage, c.want)
		}
	}
	p, _, err := parsePrune(flag.NewFlagSet("prune", flag.ContinueOnError), []string{"-a", "--keep-storage", "1GB", "--filter", "until=90m", "-f"})
	if err != nil {
		t.Fatal(err)
	}
	want := store.PruneOptions{All: true, KeepStorage: 1 << 30, Until: 90 * time.Minute}
	if p.opts != want || !p.force {
		t.Errorf("parsePrune = %+v (force %v), want %+v and force", p.opts, p.force, want)
	}
}

func TestPruneAsks(t *testing.T) {
	for answer, yes := range map[string]bool{"y\n": true, "YES\n": true, "n\n": false, "": false, "maybe\n": false} {
		var w bytes.Buffer
		if got := confirm(strings.NewReader(answer), &w, pruneWarning(store.PruneOptions{All: true})); got != yes {
			t.Errorf("confirm(%q) = %v, want %v", answer, got, yes)
		}
		if !strings.Contains(w.String(), "WARNING! This will remove all build cache: only named images will be left.") {
			t.Errorf("question = %q", w.String())
		}
	}
}

// TestDfPruneEmptyStore: a store that does not exist holds nothing, and
// neither command makes it.
func TestDfPruneEmptyStore(t *testing.T) {
	root := filepath.Join(t.TempDir(), "none")
	out, errOut, code := runCLI(t, "df", "--json", "--root", root)
	var u store.Usage
	if code != 0 || errOut != "" || json.Unmarshal([]byte(out), &u) != nil || u.Images == nil || len(u.Cache) != 0 || u.CacheSize != 0 {
		t.Errorf("df --json on no store: exit %d, %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "prune", "-f", "--root", root)
	if code != 0 || out != "Total reclaimed space: 0B\n" || errOut != "" {
		t.Errorf("prune -f on no store: exit %d, %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("df or prune made the store %s: %v", root, err)
	}
}

// TestUsageTablePackageCaches: df prints the package caches on a row of
// their own, out of the build cache's row, and the totals still add up.
func TestUsageTablePackageCaches(t *testing.T) {
	now := time.Now()
	u := store.Usage{
		Images: []store.ImageUsage{},
		Cache: []store.CacheEntry{
			{Kind: "step", ID: "a", Size: 3000, Shared: true, LastUsed: now},
			{Kind: "solver", ID: "b", Size: 2000, LastUsed: now},
			{Kind: "package-cache", ID: "apt", Size: 10000, LastUsed: now},
			{Kind: "package-cache", ID: "pip", Size: 5000, LastUsed: now},
		},
		CacheSize: 20000, CacheReclaimable: 17000,
	}
	var b bytes.Buffer
	writeUsageTable(&b, u, false)
	fields := map[string][]string{}
	for _, line := range strings.Split(b.String(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 2 && f[0] == "Build" && f[1] == "cache":
			fields["Build cache"] = f[2:]
		case len(f) > 2 && f[0] == "Package" && f[1] == "caches":
			fields["Package caches"] = f[2:]
		}
	}
	for row, want := range map[string]string{
		"Build cache":    "2 1 5kB 2kB (40%)",
		"Package caches": "2 0 15kB 15kB (100%)",
	} {
		if got := strings.Join(fields[row], " "); got != want {
			t.Errorf("row %s = %q, want %q\n%s", row, got, want, b.String())
		}
	}
	if !strings.Contains(b.String(), "prune frees 17kB; prune --all frees 20kB") {
		t.Errorf("totals:\n%s", b.String())
	}
}
