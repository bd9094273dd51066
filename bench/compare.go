package main

// The compare part: snapbuild and buildah side by side on the same work,
// from the same base (README.md, "compare").

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Targets for snapbuild, from the project's goals, all on the debian_slim
// path users take.
const (
	coldTarget      = 0.07 // snapbuild/buildah, 10 tiny RUN steps, cold
	cachedTarget    = 0.10 // snapbuild/buildah, the same, fully cached
	coldKitTarget   = 0.30 // snapbuild/BuildKit, 10 tiny RUN steps, cold
	cachedKitTarget = 0.15 // snapbuild/BuildKit, the same, fully cached
	forcedTarget    = 0.50 // snapbuild/buildah, apt_install + pip_install, forced rebuild
)

// aptPackage is what the Modal-style recipe installs with apt: small, not
// in debian_slim, so the time is apt's fixed cost (update, dpkg) more than
// the download.
const aptPackage = "jq"

// appRuns caps the apt+pip rows' iterations: each cold or forced build is
// apt's and pip's seconds with every tool, and make bench should stay
// within about fifteen minutes.
const appRuns = 3

// workload collects one workload's runs.
type workload struct {
	name       string
	target     float64 // ratio target against buildah, 0 for none
	kitTarget  float64 // ratio target against BuildKit, 0 for none
	snap, bud  []run
	kit        []run  // BuildKit's runs, none when its column is skipped
	snapValid  string // why snapbuild's runs do not measure what they should, if so
	budValid   string
	kitValid   string
	bigPayload bool // RUN payloads (apt-get) may outgrow the builder
	noCache    bool // buildah and BuildKit build with --no-cache
}

// compare pulls the base into buildah and dockerd, times the workloads
// with the three tools and prints the first table.
func (b *bench) compare(ctx context.Context, baseManifest string) error {
	if err := b.toBuildah(ctx, "benchbase", baseManifest); err != nil {
		return err
	}
	if b.kitSkip = b.startKit(ctx); b.kitSkip != "" {
		b.notes = append(b.notes, "BuildKit column skipped: "+b.kitSkip)
		logf("buildkit: skipped: %s", b.kitSkip)
	} else if err := b.toKit(ctx, "benchbase"); err != nil {
		return err
	}
	index, stopIndex, err := servePackageIndex(filepath.Join(b.dir, "index"))
	if err != nil {
		return err
	}
	defer stopIndex()

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
	if b.kit != nil {
		if _, err := b.kitBuild(ctx, "warm", cf, "warm", false); err != nil {
			return err
		}
	}

	cold := &workload{name: "10 tiny RUN, cold", target: coldTarget, kitTarget: coldKitTarget}
	cached := &workload{name: "10 tiny RUN, cached", target: cachedTarget, kitTarget: cachedKitTarget}
	appCold := &workload{name: "apt+pip, cold", bigPayload: true}
	appCached := &workload{name: "apt+pip, cached", bigPayload: true}
	appForced := &workload{name: "apt+pip, forced", target: forcedTarget, bigPayload: true, noCache: true}
	token := fmt.Sprintf("%x", time.Now().UnixNano())
	for i := 1; i <= b.n; i++ {
		yml, cf = tinyRecipe(fmt.Sprintf("%s-%d", token, i))
		if err := b.pair(ctx, cold, i, "tiny.yaml", yml, "tiny", cf); err != nil {
			return err
		}
	}
	for i := 1; i <= b.n; i++ { // the last cold recipe again
		if err := b.pair(ctx, cached, i, "tiny.yaml", yml, "tiny", cf); err != nil {
			return err
		}
	}
	counts, err := b.traceCached(ctx, "tiny.yaml", "tiny", cf)
	if err != nil {
		return err
	}

	var appYAML string
	an := min(b.n, appRuns)
	for i := 1; i <= an; i++ {
		appYAML, cf = appRecipe(fmt.Sprintf("%s-%d", token, i), index, false)
		if err := b.pair(ctx, appCold, i, "app.yaml", appYAML, "app", cf); err != nil {
			return err
		}
	}
	for i := 1; i <= b.n; i++ { // cached builds are cheap: all -n
		if err := b.pair(ctx, appCached, i, "app.yaml", appYAML, "app", cf); err != nil {
			return err
		}
	}
	forcedYAML, _ := appRecipe(fmt.Sprintf("%s-%d", token, an), index, true)
	for i := 1; i <= an; i++ {
		if err := b.pair(ctx, appForced, i, "app.yaml", forcedYAML, "app", cf); err != nil {
			return err
		}
	}

	// Check that each run measured what its row says.
	cold.snapValid = checkSnap(cold.snap, func(s stats) bool { return s.ContainersStarted == 10 && s.Cached+s.Config == s.Steps-10 }, "10 containers, nothing but the base cached")
	cached.snapValid = checkSnap(cached.snap, func(s stats) bool { return s.ContainersStarted == 0 && s.Cached+s.Config == s.Steps }, "no container, every step cached")
	appCold.snapValid = checkSnap(appCold.snap, func(s stats) bool { return s.ContainersStarted == 4 && s.Cached+s.Config == s.Steps-4 }, "4 containers (echo, apt-get update, apt-get install, pip), nothing but the base cached")
	appCached.snapValid = checkSnap(appCached.snap, func(s stats) bool { return s.ContainersStarted == 0 && s.Cached+s.Config == s.Steps }, "no container, every step cached")
	appForced.snapValid = checkSnap(appForced.snap, func(s stats) bool { return s.ContainersStarted == 3 }, "3 containers (apt-get update, apt-get install, pip)")
	for _, w := range []*workload{cold, cached, appCold, appCached, appForced} {
		hits := 0
		switch w {
		case cached:
			hits = 10
		case appCached:
			hits = 4
		}
		w.budValid = checkBud(w.bud, hits)
		w.kitValid = checkKit(w.kit, hits)
	}

	b.reportCompare([]*workload{cold, cached, appCold, appCached, appForced}, counts)
	return nil
}

// cachedCounts are the traced cached builds of the tiny recipe, per tool.
type cachedCounts struct {
	snap, bud, kit *traceCounts
}

// traceCached builds the tiny recipe, cached, once more with each tool
// under strace (untimed), and counts processes and connections.
func (b *bench) traceCached(ctx context.Context, file, tag, containerfile string) (cachedCounts, error) {
	var c cachedCounts
	t, err := b.traced(ctx, nil, b.bin, "build", filepath.Join(b.dir, file), "-t", tag, "--root", b.store, "--progress=json")
	if err != nil {
		return c, err
	}
	c.snap = &t
	if b.skipped == "" {
		dir := filepath.Join(b.dir, "ctx-"+tag)
		args := append(slices.Clone(b.buildah[1:]), "bud", "--layers", "--pull-never", "--isolation", "oci",
			"--runtime", b.runc, "--network", "host", "-t", tag)
		args = append(args, b.budArgs...)
		args = append(args, "-f", filepath.Join(dir, "Containerfile"), dir)
		t, err := b.traced(ctx, nil, b.buildah[0], args...)
		if err != nil {
			return c, err
		}
		c.bud = &t
	}
	if b.kit != nil {
		dir := filepath.Join(b.dir, "ctx-"+tag)
		t, err := b.traced(ctx, b.kit.env, dockerPath, "build", "--progress", "plain", "--network", "host", "-t", tag,
			"-f", filepath.Join(dir, "Containerfile"), dir)
		if err != nil {
			return c, err
		}
		c.kit = &t
	}
	return c, nil
}

// pair runs iteration i of a workload with each tool, the first tool
// changing from one iteration to the next, so that none always follows
// another.
func (b *bench) pair(ctx context.Context, w *workload, i int, file, yml, tag, containerfile string) error {
	snap := func() error {
		r, err := b.snapbuild(ctx, file, yml, tag, 10*time.Minute)
		w.snap = append(w.snap, r)
		return err
	}
	bud := func() error {
		if b.skipped != "" {
			return nil
		}
		r, err := b.bud(ctx, tag, containerfile, tag, w.noCache)
		w.bud = append(w.bud, r)
		return err
	}
	kit := func() error {
		if b.kit == nil {
			return nil
		}
		r, err := b.kitBuild(ctx, tag, containerfile, tag, w.noCache)
		w.kit = append(w.kit, r)
		return err
	}
	order := []func() error{snap, bud, kit}
	r := (i - 1) % len(order)
	for _, f := range append(order[r:], order[:r]...) {
		if err := f(); err != nil {
			return err
		}
	}
	if b.verbose {
		msg := fmt.Sprintf("%s %d/%d: snapbuild %s", w.name, i, b.n, secs(w.snap[len(w.snap)-1].wall))
		if len(w.bud) > 0 {
			msg += ", buildah " + secs(w.bud[len(w.bud)-1].wall)
		}
		if len(w.kit) > 0 {
			msg += ", BuildKit " + secs(w.kit[len(w.kit)-1].wall)
		}
		logf("%s", msg)
	}
	return nil
}

// reportCompare prints the first table and files its targets.
func (b *bench) reportCompare(ws []*workload, counts cachedCounts) {
	kitName := "BuildKit (skipped)"
	if b.kit != nil {
		kitName = "BuildKit (dockerd " + b.kit.version + ")"
	}
	fmt.Printf("\nsnapbuild vs buildah %s and %s, median of %d (apt+pip cold and forced: %d), wall time per build\n\n",
		b.buildahVersion(), kitName, b.n, min(b.n, appRuns))
	row := "%-22s  %-9s  %-9s  %-9s  %-8s  %-8s  %s\n"
	fmt.Printf(row, "workload", "snapbuild", "buildah", "BuildKit", "/buildah", "/BuildKit", "targets")
	for _, w := range ws {
		s := median(w.snap)
		bs, ks, ratio, kratio := "-", "-", "-", "-"
		var targets []string
		if w.target > 0 {
			targets = append(targets, fmt.Sprintf("<= %.2fx buildah", w.target))
		}
		if w.kitTarget > 0 {
			targets = append(targets, fmt.Sprintf("<= %.2fx BuildKit", w.kitTarget))
		}
		if len(w.bud) > 0 {
			m := median(w.bud)
			bs = secs(m)
			r := s.Seconds() / m.Seconds()
			ratio = fmt.Sprintf("%.3fx", r)
			if w.target > 0 {
				b.verdict(r <= w.target, fmt.Sprintf("%s %s <= %.2fx buildah", w.name, ratio, w.target))
			}
		}
		if len(w.kit) > 0 {
			m := median(w.kit)
			ks = secs(m)
			r := s.Seconds() / m.Seconds()
			kratio = fmt.Sprintf("%.3fx", r)
			if w.kitTarget > 0 {
				b.verdict(r <= w.kitTarget, fmt.Sprintf("%s %s <= %.2fx BuildKit", w.name, kratio, w.kitTarget))
			}
		}
		fmt.Printf(row, w.name, secs(s), bs, ks, ratio, kratio, strings.Join(targets, ", "))
		for tool, why := range map[string]string{"snapbuild": w.snapValid, "buildah": w.budValid, "BuildKit": w.kitValid} {
			if why != "" {
				b.notes = append(b.notes, fmt.Sprintf("INVALID %s (%s): %s", w.name, tool, why))
			}
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
	fmt.Printf(row, "peak RSS (builder)", mib(snapSelf), bs, "-", "", "", rssTarget)
	b.verdict(snapSelf < rssTargetMiB*1024, fmt.Sprintf("peak RSS %s %s", mib(snapSelf), rssTarget))

	fmt.Printf("\npeak RSS by workload, max over its timed builds\n\n")
	row2 := "%-22s  %-15s  %-15s  %-13s  %s\n"
	fmt.Printf(row2, "workload", "snapbuild self", "snapbuild tree", "buildah tree", "docker client tree")
	for _, w := range ws {
		bt, kt := "-", "-"
		if len(w.bud) > 0 {
			bt = mib(peak(w.bud, tree))
		}
		if len(w.kit) > 0 {
			kt = mib(peak(w.kit, tree))
		}
		fmt.Printf(row2, w.name, mib(peak(w.snap, self)), mib(peak(w.snap, tree)), bt, kt)
	}

	fmt.Printf("\nprocesses and connections of one more cached build of the 10 tiny RUN recipe (strace -f, untimed)\n\n")
	row3 := "%-10s  %-7s  %-16s  %s\n"
	fmt.Printf(row3, "tool", "execve", "network connects", "to")
	for _, t := range []struct {
		name string
		c    *traceCounts
	}{{"snapbuild", counts.snap}, {"buildah", counts.bud}, {"BuildKit", counts.kit}} {
		if t.c == nil {
			fmt.Printf(row3, t.name, "-", "-", "")
			continue
		}
		fmt.Printf(row3, t.name, fmt.Sprint(t.c.execs), fmt.Sprint(t.c.inet), strings.Join(t.c.targets, "; "))
	}
	if counts.snap != nil {
		b.verdict(counts.snap.inet == 0, fmt.Sprintf("cached build makes %d network connects (target 0)", counts.snap.inet))
		b.verdict(counts.snap.execs <= 1, fmt.Sprintf("cached build runs %d execve (target 1)", counts.snap.execs))
	}
	fmt.Print(`
  Workloads, all on the debian_slim path (snapbuild: "- debian_slim:
  {python_version: '3.11'}" first, cached from the base build; buildah
  and BuildKit: FROM the same image, loaded from snapbuild's export):
  10 tiny RUN: ten "echo TOKEN-i > /fi" RUN steps, a fresh token per cold
  build; cached: the last one again. apt+pip: a Modal-style recipe, RUN
  echo TOKEN, apt_install [` + aptPackage + `] (RUN apt-get update; RUN apt-get
  install -y), pip_install of three wheels from a PEP 503 index the bench
  serves on 127.0.0.1 (RUN python -m pip install ... --index-url); cold with
  a fresh token, cached, and forced (snapbuild: force_build on apt_install
  and pip_install; the others: --no-cache, which also reruns the echo).
  self: the peakRSSKiB snapbuild prints (getrusage RUSAGE_SELF): the builder
        process alone, sandboxed RUN payloads excluded.
  tree: ru_maxrss from wait4 on the process the bench started: the largest
        single process (not a sum) among it and the descendants it reaped,
        such as runc, sandbox helpers and RUN payloads like apt-get.
  The "builder" row: snapbuild self over all workloads (what the target is
  about); buildah tree over the tiny-RUN builds only, whose payloads are
  tiny shells, so that it is in practice buildah's own size (buildah
  reports no self figure). BuildKit's work happens in dockerd, not in the
  docker client the bench starts, so it has no such figure.
  execve: successful execve calls in the traced tree (a re-execution of the
  same binary counts, so 1 is one process); network connects: connect(2)
  to AF_INET or AF_INET6 addresses, failed ones included. For BuildKit only
  the docker client is traced (the build runs in dockerd).
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
	return baseStep + "- run_commands: [" + strings.Join(cmds, ", ") + "]\n", cf
}

// baseStep is the recipe step of the base image (benchbase): the
// debian_slim path users take.
const baseStep = "- debian_slim: {python_version: \"3.11\"}\n"

// appRecipe returns a Modal-style recipe, a RUN that writes token, then
// apt_install and pip_install from the package index at index (with
// force_build on both when forced), and the Containerfile of the same RUN
// lines.
func appRecipe(token, index string, forced bool) (yml, containerfile string) {
	force := ""
	if forced {
		force = ", force_build: true"
	}
	yml = baseStep +
		fmt.Sprintf("- run_commands: [\"echo %s > /token\"]\n", token) +
		fmt.Sprintf("- apt_install: {packages: [%s]%s}\n", aptPackage, force) +
		fmt.Sprintf("- pip_install: {packages: [%s], index_url: %q%s}\n", strings.Join(wheelNames, ", "), index, force)
	containerfile = "FROM benchbase\n" +
		fmt.Sprintf("RUN echo %s > /token\n", token) +
		"RUN apt-get update\n" +
		"RUN apt-get install -y " + aptPackage + "\n" +
		"RUN python -m pip install " + strings.Join(wheelNames, " ") + " --index-url " + index + "\n"
	return yml, containerfile
}

// checkSnap says why some snapbuild run's stats are not the expected ones.
func checkSnap(rs []run, ok func(stats) bool, want string) string {
	for _, r := range rs {
		var out struct{ Stats stats }
		json.Unmarshal([]byte(summaryLine(r.stdout)), &out)
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
