package main

// The parallel part: a Dockerfile whose two stages do not need each other,
// built one step at a time (--jobs 1) and with its stages at once, by
// snapbuild and by buildah (README.md, "parallel").

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// parallelTarget: snapbuild's cold build with its stages at once over the
// same build with --jobs 1 must be below this, i.e. faster.
const parallelTarget = 1.00

// stageNumbers is how many decimal numbers each stage compresses with
// gzip -9 (23 MB of text): about 1.5 s of one core's work on an idle
// 2-core host, and as much again when the host is busy.
const stageNumbers = 3000000

// parallelDockerfile has two stages, left and right, that each compress
// their own range of numbers, and a final stage that copies both results.
// Each stage's RUN prints its start and end time (Unix seconds), read back
// from the build's output to tell whether the stages ran at once. The
// TOKEN build argument makes a fresh token a cold build of both stages; the
// files the final stage copies do not depend on it (gzip writes no name or
// time for a pipe), so every build makes the same image.
func parallelDockerfile() string {
	var sb strings.Builder
	for i, name := range []string{"left", "right"} {
		first := i*stageNumbers + 1
		fmt.Fprintf(&sb, "FROM benchbase AS %s\nARG TOKEN\n", name)
		fmt.Fprintf(&sb, "RUN echo \"bench-stage %[1]s start $(date +%%s.%%N)\" && echo \"$TOKEN\" >/token"+
			" && seq %[2]d %[3]d | gzip -9 >/%[1]s.gz && echo \"bench-stage %[1]s end $(date +%%s.%%N)\"\n\n",
			name, first, first+stageNumbers-1)
	}
	sb.WriteString("FROM benchbase\nCOPY --from=left /left.gz /out/\nCOPY --from=right /right.gz /out/\n")
	return sb.String()
}

// stageLine matches what a stage's RUN prints, not the RUN's own text
// (which build output echoes, with $(date ...) unexpanded).
var stageLine = regexp.MustCompile(`bench-stage (left|right) (start|end) ([0-9]+\.[0-9]+)`)

// span is when one stage's RUN ran, in Unix seconds.
type span struct{ start, end float64 }

// stageSpans reads the spans of both stages from a build's output; ok is
// false unless both stages printed a start and an end (a cached build
// prints nothing).
func stageSpans(out string) (left, right span, ok bool) {
	seen := 0
	for _, m := range stageLine.FindAllStringSubmatch(out, -1) {
		t, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return span{}, span{}, false
		}
		s := &left
		if m[1] == "right" {
			s = &right
		}
		if m[2] == "start" {
			s.start = t
		} else {
			s.end = t
		}
		seen++
	}
	ok = seen == 4 && left.end >= left.start && right.end >= right.start && left.start > 0 && right.start > 0
	return left, right, ok
}

// overlap is the share of the shorter stage during which the other one
// ran too: 0 for one after the other, 1 for the shorter entirely within
// the other.
func overlap(a, b span) float64 {
	both := min(a.end, b.end) - max(a.start, b.start)
	shorter := min(a.end-a.start, b.end-b.start)
	if both <= 0 || shorter <= 0 {
		return 0
	}
	return both / shorter
}

// parConfig is one way of building the Dockerfile: a tool and its --jobs.
type parConfig struct {
	tool    string   // "snapbuild" or "buildah"
	flags   []string // --jobs, if any
	serial  bool     // --jobs 1: the stages must not overlap
	runs    []run
	overlap []float64       // per cold run
	stage   []time.Duration // per cold run: the mean of the two stages' RUN time
	invalid string          // why some run does not measure what it should
}

func (c *parConfig) invalidate(format string, args ...any) {
	if c.invalid == "" {
		c.invalid = fmt.Sprintf(format, args...)
	}
}

// parallel times cold builds of parallelDockerfile with each tool, one
// stage at a time and with both at once, and cached rebuilds, and prints
// the table.
func (b *bench) parallel(ctx context.Context, baseManifest string) error {
	if err := b.toBuildah(ctx, "benchbase", baseManifest); err != nil {
		return err
	}
	dir := b.dir + "/ctx-parallel"
	df := parallelDockerfile()
	snap := func(token string, flags ...string) (run, error) {
		args := append([]string{"build", "-f", dir + "/Containerfile", "-t", "par", "--root", b.store,
			"--progress=json", "--build-arg", "TOKEN=" + token}, flags...)
		return b.snapbuildArgs(ctx, 10*time.Minute, "of the parallel Dockerfile", append(args, dir)...)
	}
	bud := func(token string, noCache bool, flags ...string) (run, error) {
		return b.bud(ctx, "parallel", df, "par", noCache, append([]string{"--build-arg", "TOKEN=" + token}, flags...)...)
	}

	// Warm-up, not timed; it also writes the Containerfile snap reads.
	logf("parallel: warm-up, one untimed build with each tool")
	if b.skipped == "" {
		if err := b.budWarm(ctx, "parallel", df, "par", "--build-arg", "TOKEN=warm"); err != nil {
			return err
		}
	} else if err := writeContext(dir, df); err != nil {
		return err
	}
	if _, err := snap("warm"); err != nil {
		return err
	}

	configs := []*parConfig{
		{tool: "snapbuild", flags: []string{"--jobs", "1"}, serial: true},
		{tool: "snapbuild"}, // the default: as many as CPUs
		{tool: "buildah", flags: []string{"--jobs", "1"}, serial: true},
		{tool: "buildah", flags: []string{"--jobs", "2"}},
	}
	if b.skipped != "" {
		configs = configs[:2]
	}
	token := fmt.Sprintf("%x", time.Now().UnixNano())
	for i := 1; i <= b.n; i++ {
		// The configurations take turns to go first.
		for k := range configs {
			c := configs[(k+i-1)%len(configs)]
			tok := fmt.Sprintf("%s-%d-%d", token, i, k)
			syscall.Sync() // no writeback of earlier builds during this one
			var r run
			var err error
			if c.tool == "snapbuild" {
				r, err = snap(tok, c.flags...)
			} else {
				r, err = bud(tok, true, c.flags...)
			}
			if err != nil {
				return err
			}
			c.runs = append(c.runs, r)
			c.checkCold(r)
		}
		if b.verbose {
			var msg []string
			for _, c := range configs {
				msg = append(msg, fmt.Sprintf("%s %s %s (overlap %.0f%%)", c.tool, c.jobs(), secs(c.runs[i-1].wall), 100*c.overlap[len(c.overlap)-1]))
			}
			logf("parallel cold %d/%d: %s", i, b.n, strings.Join(msg, ", "))
		}
	}
	// Every snapbuild build, whatever its --jobs, makes the same image.
	var manifests []string
	for _, c := range configs[:2] {
		for _, r := range c.runs {
			if !slices.Contains(manifests, r.manifest) {
				manifests = append(manifests, r.manifest)
			}
		}
	}
	if len(manifests) != 1 {
		configs[1].invalidate("snapbuild made %d different images (%s), want one whatever --jobs", len(manifests), strings.Join(manifests, ", "))
	}

	// Cached rebuilds: one untimed build makes the cache, then each tool
	// builds the same again, in parallel mode.
	cached := []*parConfig{{tool: "snapbuild"}, {tool: "buildah", flags: []string{"--jobs", "2"}}}
	if b.skipped != "" {
		cached = cached[:1]
	}
	tok := token + "-cached"
	if _, err := snap(tok); err != nil {
		return err
	}
	if b.skipped == "" {
		if _, err := bud(tok, false, "--jobs", "2"); err != nil {
			return err
		}
	}
	for i := 1; i <= b.n; i++ {
		for k := range cached {
			c := cached[(k+i-1)%len(cached)]
			var r run
			var err error
			if c.tool == "snapbuild" {
				r, err = snap(tok)
			} else {
				r, err = bud(tok, false, c.flags...)
			}
			if err != nil {
				return err
			}
			c.runs = append(c.runs, r)
			c.checkCached(r)
		}
	}

	b.reportParallel(configs, cached)
	return nil
}

// jobs is the configuration's --jobs as the table shows it.
func (c *parConfig) jobs() string {
	if len(c.flags) == 0 {
		return fmt.Sprintf("--jobs default (%d CPUs)", runtime.NumCPU())
	}
	return strings.Join(c.flags, " ")
}

// checkCold records r's stage overlap and checks that it measured a cold
// build: both stages ran (and printed their times), not at once under
// --jobs 1; snapbuild started two containers.
func (c *parConfig) checkCold(r run) {
	left, right, ok := stageSpans(r.stdout + r.stderr)
	if !ok {
		c.invalidate("a cold build did not print both stages' start and end times: a stage did not run")
		c.overlap, c.stage = append(c.overlap, 0), append(c.stage, 0)
		return
	}
	o := overlap(left, right)
	c.overlap = append(c.overlap, o)
	c.stage = append(c.stage, time.Duration((left.end-left.start+right.end-right.start)/2*float64(time.Second)))
	if c.serial && o > 0 {
		c.invalidate("with --jobs 1 the stages overlapped (%.0f%% of the shorter one)", 100*o)
	}
	if c.tool == "snapbuild" {
		if s := snapStats(r); s.ContainersStarted != 2 {
			c.invalidate("a cold build started %d containers, want 2 (the stages' RUN)", s.ContainersStarted)
		}
	} else if n := strings.Count(r.stdout+r.stderr, "Using cache"); n != 0 {
		c.invalidate("a cold build used its cache for %d steps, want none", n)
	}
}

// checkCached checks that r ran no stage; snapbuild must also have taken
// every step from its cache and started no container.
func (c *parConfig) checkCached(r run) {
	if stageLine.MatchString(r.stdout + r.stderr) {
		c.invalidate("a cached rebuild ran a stage's RUN")
	}
	if c.tool == "snapbuild" {
		if s := snapStats(r); s.ContainersStarted != 0 || s.Cached+s.Config != s.Steps {
			c.invalidate("a cached rebuild started %d containers and took %d of %d steps from the cache (%d set metadata only), want none and all", s.ContainersStarted, s.Cached, s.Steps, s.Config)
		}
	}
}

func snapStats(r run) stats {
	var out struct{ Stats stats }
	json.Unmarshal([]byte(summaryLine(r.stdout)), &out)
	return out.Stats
}

// reportParallel prints the parallel table and files its target.
func (b *bench) reportParallel(cold, cached []*parConfig) {
	fmt.Printf("\nparallel stages: two independent stages (seq | gzip -9 of %d numbers each) and COPY --from both,\n"+
		"snapbuild and buildah %s, median of %d, wall time per build\n\n", stageNumbers, b.buildahVersion(), b.n)
	row := "%-32s  %-10s  %-10s  %s\n"
	fmt.Printf(row, "build", "snapbuild", "buildah", "snapbuild/buildah")
	col := func(cs []*parConfig, i int, f func(*parConfig) string) string {
		if i >= len(cs) {
			return "-"
		}
		return f(cs[i])
	}
	wall := func(c *parConfig) string { return secs(median(c.runs)) }
	ratio := func(a, b []*parConfig, i int) string {
		if i >= len(b) {
			return "-"
		}
		return fmt.Sprintf("%.2fx", median(a[i].runs).Seconds()/median(b[i].runs).Seconds())
	}
	snapCold, budCold := cold[:2], cold[min(2, len(cold)):]
	fmt.Printf(row, "cold, --jobs 1", col(snapCold, 0, wall), col(budCold, 0, wall), ratio(snapCold, budCold, 0))
	fmt.Printf(row, "cold, stages at once", col(snapCold, 1, wall), col(budCold, 1, wall), ratio(snapCold, budCold, 1))
	fmt.Printf(row, "cached rebuild", col(cached, 0, wall), col(cached, 1, wall), ratio(cached[:1], cached[1:], 0))
	speedup := func(cs []*parConfig) (string, float64) {
		if len(cs) < 2 {
			return "-", 0
		}
		r := median(cs[1].runs).Seconds() / median(cs[0].runs).Seconds()
		return fmt.Sprintf("%.2fx", r), r
	}
	ss, sr := speedup(snapCold)
	bs, _ := speedup(budCold)
	target := fmt.Sprintf("< %.2fx", parallelTarget)
	fmt.Printf(row, "at once / --jobs 1 (cold)", ss, bs, "target (snapbuild) "+target)
	// The same per round, where both builds met about the same load.
	paired := func(cs []*parConfig) string {
		if len(cs) < 2 {
			return "-"
		}
		var r []float64
		for i := range min(len(cs[0].runs), len(cs[1].runs)) {
			r = append(r, cs[1].runs[i].wall.Seconds()/cs[0].runs[i].wall.Seconds())
		}
		return fmt.Sprintf("%.2fx", medianFloat(r))
	}
	fmt.Printf(row, "  the same, median per round", paired(snapCold), paired(budCold), "")
	pct := func(c *parConfig) string { return fmt.Sprintf("%.0f%%", 100*medianFloat(c.overlap)) }
	stage := func(c *parConfig) string { return secs(medianOf(c.stage)) }
	fmt.Printf(row, "stages overlapped, --jobs 1", col(snapCold, 0, pct), col(budCold, 0, pct), "")
	fmt.Printf(row, "stages overlapped, at once", col(snapCold, 1, pct), col(budCold, 1, pct), "")
	fmt.Printf(row, "a stage's RUN, --jobs 1", col(snapCold, 0, stage), col(budCold, 0, stage), "")
	fmt.Printf(row, "a stage's RUN, at once", col(snapCold, 1, stage), col(budCold, 1, stage), "")
	par := cold[1].jobs()
	if len(budCold) > 1 {
		par += ", buildah " + budCold[1].jobs()
	}
	fmt.Printf(`
  cold: a fresh TOKEN build argument per build, so both stages run; buildah
        also gets --no-cache. "at once": snapbuild %s.
  cached rebuild: the same TOKEN again, in the "at once" mode.
  median per round: the median of each round's at once / --jobs 1, the two
        builds of a round having met about the same load on the host.
  stages overlapped: median share of the shorter stage's RUN during which
        the other one ran too, from the times each RUN prints.
  a stage's RUN: median time of one stage's RUN command (the mean of the
        two), as it printed it; on a host with few free cores it grows when
        the stages share them.
`, par)

	b.verdict(sr > 0 && sr < parallelTarget, fmt.Sprintf("parallel stages: snapbuild at once / --jobs 1 %s %s", ss, target))
	for _, c := range append(slices.Clone(cold), cached...) {
		if c.invalid != "" {
			b.notes = append(b.notes, fmt.Sprintf("INVALID parallel stages, %s %s: %s", c.tool, c.jobs(), c.invalid))
		}
	}
}

func medianFloat(f []float64) float64 {
	if len(f) == 0 {
		return 0
	}
	f = slices.Sorted(slices.Values(f))
	if len(f)%2 == 1 {
		return f[len(f)/2]
	}
	return (f[len(f)/2-1] + f[len(f)/2]) / 2
}
