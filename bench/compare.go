package main

// The compare part: snapbuild and buildah side by side on the same work,
// from the same base (README.md, "compare").

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Targets for snapbuild against buildah, from the project's goals.
const (
	coldTarget   = 0.10 // snapbuild/buildah, 10 tiny RUN steps, cold
	cachedTarget = 0.25 // snapbuild/buildah, the same, fully cached
)

// workload collects one workload's runs.
type workload struct {
	name       string
	target     float64 // ratio target, 0 for none
	snap, bud  []run
	snapValid  string // why snapbuild's runs do not measure what they should, if so
	budValid   string
	bigPayload bool // RUN payloads (apt-get) may outgrow the builder
}

// compare pulls the base into buildah, times the three workloads with both
// tools and prints the first table.
func (b *bench) compare(ctx context.Context, baseManifest string) error {
	if err := b.toBuildah(ctx, "benchbase", baseManifest); err != nil {
		return err
	}

	// Warm-up, not timed: page cache, and which bud flags this host needs.
	logf("compare: warm-up, one untimed cold build with each tool")
	yml, cf := tinyRecipe("warm")
	if _, err := b.snapbuild(ctx, "warm.yaml", yml, "warm", 5*time.Minute); err != nil {
		return err
	}
	if b.skipped == "" {
		if err := b.budWarm(ctx, "warm", cf, "warm"); err != nil {
			return err
		}
	}

	cold := &workload{name: "10 tiny RUN, cold", target: coldTarget}
	cached := &workload{name: "10 tiny RUN, cached", target: cachedTarget}
	apt := &workload{name: "apt_install git", bigPayload: true}
	token := fmt.Sprintf("%x", time.Now().UnixNano())
	for i := 1; i <= b.n; i++ {
		yml, cf = tinyRecipe(fmt.Sprintf("%s-%d", token, i))
		if err := b.pair(ctx, cold, i, "tiny.yaml", yml, "tiny", cf, false); err != nil {
			return err
		}
	}
	for i := 1; i <= b.n; i++ { // the last cold recipe again
		if err := b.pair(ctx, cached, i, "tiny.yaml", yml, "tiny", cf, false); err != nil {
			return err
		}
	}
	aptYAML := "- from_id: benchbase\n- apt_install: {packages: [git], force_build: true}\n"
	aptCF := "FROM benchbase\nRUN apt-get update\nRUN apt-get install -y git\n"
	for i := 1; i <= b.n; i++ {
		if err := b.pair(ctx, apt, i, "apt.yaml", aptYAML, "apt", aptCF, true); err != nil {
			return err
		}
	}

	// Check that each run measured what its row says.
	cold.snapValid = checkSnap(cold.snap, func(s stats) bool { return s.ContainersStarted == 10 && s.Cached == s.Steps-10 }, "10 containers, nothing but FROM cached")
	cached.snapValid = checkSnap(cached.snap, func(s stats) bool { return s.ContainersStarted == 0 && s.Cached == s.Steps }, "no container, every step cached")
	apt.snapValid = checkSnap(apt.snap, func(s stats) bool { return s.ContainersStarted == 2 }, "2 containers (update, install)")
	cold.budValid = checkBud(cold.bud, 0)
	cached.budValid = checkBud(cached.bud, 10)
	apt.budValid = checkBud(apt.bud, 0)

	b.reportCompare([]*workload{cold, cached, apt})
	return nil
}

// pair runs iteration i of a workload with both tools, snapbuild first on
// odd iterations and buildah first on even ones, so that neither always
// follows the other.
func (b *bench) pair(ctx context.Context, w *workload, i int, file, yml, tag, containerfile string, noCache bool) error {
	snap := func() error {
		r, err := b.snapbuild(ctx, file, yml, tag, 10*time.Minute)
		w.snap = append(w.snap, r)
		return err
	}
	bud := func() error {
		if b.skipped != "" {
			return nil
		}
		r, err := b.bud(ctx, tag, containerfile, tag, noCache)
		w.bud = append(w.bud, r)
		return err
	}
	first, second := snap, bud
	if i%2 == 0 {
		first, second = bud, snap
	}
	if err := first(); err != nil {
		return err
	}
	if err := second(); err != nil {
		return err
	}
	if b.verbose {
		msg := fmt.Sprintf("%s %d/%d: snapbuild %s", w.name, i, b.n, secs(w.snap[len(w.snap)-1].wall))
		if len(w.bud) > 0 {
			msg += ", buildah " + secs(w.bud[len(w.bud)-1].wall)
		}
		logf("%s", msg)
	}
	return nil
}

// reportCompare prints the first table and files its targets.
func (b *bench) reportCompare(ws []*workload) {
	fmt.Printf("\nsnapbuild vs buildah %s, median of %d, wall time per build\n\n", b.buildahVersion(), b.n)
	row := "%-28s  %-10s  %-10s  %-7s  %s\n"
	fmt.Printf(row, "workload", "snapbuild", "buildah", "ratio", "target")
	for _, w := range ws {
		s := median(w.snap)
		bs, ratio, target := "-", "-", "-"
		if w.target > 0 {
			target = fmt.Sprintf("<= %.2fx", w.target)
		}
		if len(w.bud) > 0 {
			m := median(w.bud)
			bs = secs(m)
			r := s.Seconds() / m.Seconds()
			ratio = fmt.Sprintf("%.3fx", r)
			if w.target > 0 {
				b.verdict(r <= w.target, fmt.Sprintf("%s %s %s", w.name, ratio, target))
			}
		}
		fmt.Printf(row, w.name, secs(s), bs, ratio, target)
		if w.snapValid != "" {
			b.notes = append(b.notes, fmt.Sprintf("INVALID %s (snapbuild): %s", w.name, w.snapValid))
		}
		if w.budValid != "" {
			b.notes = append(b.notes, fmt.Sprintf("INVALID %s (buildah): %s", w.name, w.budValid))
		}
	}

	// Peak RSS. The row sets snapbuild's own figure against buildah's wait4
	// figure over the tiny-RUN builds, whose only payloads are `sh -c echo`.
	self := func(r run) int64 { return r.selfRSS }
	tree := func(r run) int64 { return r.treeRSS }
	var snapSelf, budTiny int64
	for _, w := range ws {
		snapSelf = max(snapSelf, peak(w.snap, self))
		if !w.bigPayload {
			budTiny = max(budTiny, peak(w.bud, tree))
		}
	}
	bs := "-"
	if budTiny > 0 {
		bs = mib(budTiny)
	}
	rssTarget := fmt.Sprintf("< %d MiB (snapbuild)", rssTargetMiB)
	fmt.Printf(row, "peak RSS (builder process)", mib(snapSelf), bs, "", rssTarget)
	b.verdict(snapSelf < rssTargetMiB*1024, fmt.Sprintf("peak RSS %s %s", mib(snapSelf), rssTarget))

	fmt.Printf("\npeak RSS by workload, max over its timed builds\n\n")
	row2 := "%-28s  %-15s  %-15s  %s\n"
	fmt.Printf(row2, "workload", "snapbuild self", "snapbuild tree", "buildah tree")
	for _, w := range ws {
		bt := "-"
		if len(w.bud) > 0 {
			bt = mib(peak(w.bud, tree))
		}
		fmt.Printf(row2, w.name, mib(peak(w.snap, self)), mib(peak(w.snap, tree)), bt)
	}
	fmt.Print(`
  self: the peakRSSKiB snapbuild prints (getrusage RUSAGE_SELF): the builder
        process alone, sandboxed RUN payloads excluded.
  tree: ru_maxrss from wait4 on the process the bench started: the largest
        single process (not a sum) among it and the descendants it reaped,
        such as runc, sandbox helpers and RUN payloads like apt-get.
  The "builder process" row: snapbuild self over all workloads (what the
  target is about); buildah tree over the tiny-RUN builds only, whose
  payloads are tiny shells, so that it is in practice buildah's own size
  (buildah reports no self figure).
`)
}

// tinyRecipe returns the snapbuild recipe and the Containerfile of ten RUN
// steps, each writing a tiny file that holds token.
func tinyRecipe(token string) (yml, containerfile string) {
	var cmds []string
	cf := "FROM benchbase\n"
	for i := 1; i <= 10; i++ {
		c := fmt.Sprintf("echo %s-%d > /f%d", token, i, i)
		cmds = append(cmds, fmt.Sprintf("%q", c))
		cf += "RUN " + c + "\n"
	}
	return "- from_id: benchbase\n- run_commands: [" + strings.Join(cmds, ", ") + "]\n", cf
}

// checkSnap says why some snapbuild run's stats are not the expected ones.
func checkSnap(rs []run, ok func(stats) bool, want string) string {
	for _, r := range rs {
		var out struct{ Stats stats }
		json.Unmarshal([]byte(lastLine(r.stdout)), &out)
		if !ok(out.Stats) {
			return fmt.Sprintf("want %s, got %+v", want, out.Stats)
		}
	}
	return ""
}

// checkBud says why some buildah run did not use its cache for exactly
// hits steps.
func checkBud(rs []run, hits int) string {
	for _, r := range rs {
		if n := strings.Count(r.stdout+r.stderr, "Using cache"); n != hits {
			return fmt.Sprintf("want %d cached steps, got %d", hits, n)
		}
	}
	return ""
}
