// Command bench runs snapbuild and buildah side by side on the same work,
// from the same local base image, and prints a table of median wall times,
// snapbuild/buildah ratios and peak RSS.
//
//	go run -tags "$(TAGS)" ./bench -bin bin/snapbuild [-n 5] [-keep] [-v]
//
// It builds a debian_slim base once with snapbuild, exports it as an OCI
// layout and pulls that into a private buildah store, so both tools start
// from identical content; then it times three workloads (see README.md).
// Everything lives in one temporary directory, removed at the end.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Targets for snapbuild, from the project's goals.
const (
	coldTarget   = 0.10 // snapbuild/buildah, 10 tiny RUN steps, cold
	cachedTarget = 0.25 // snapbuild/buildah, the same, fully cached
	rssTargetMiB = 64   // snapbuild's own peak RSS
)

func main() {
	b := &bench{}
	flag.StringVar(&b.bin, "bin", "bin/snapbuild", "snapbuild binary")
	flag.IntVar(&b.n, "n", 5, "timed iterations per workload and tool")
	flag.BoolVar(&b.keep, "keep", false, "keep the temporary directory (stores, recipes)")
	flag.BoolVar(&b.verbose, "v", false, "print every iteration's times")
	flag.Parse()
	if b.n < 1 {
		fmt.Fprintln(os.Stderr, "bench: -n must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := b.main(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type bench struct {
	bin     string
	n       int
	keep    bool
	verbose bool

	dir     string   // temporary directory holding everything
	store   string   // snapbuild --root
	runc    string   // runtime for buildah
	buildah []string // buildah and its global flags
	skipped string   // why buildah is skipped; "" when it runs
	budArgs []string // extra `buildah bud` flags found to be needed
	notes   []string // printed under the table
}

// run is one timed command.
type run struct {
	wall    time.Duration
	treeRSS int64 // KiB: wait4's ru_maxrss, the largest process of the tree it reaped
	selfRSS int64 // KiB: snapbuild's own peakRSSKiB (0 for buildah)
	stdout  string
	stderr  string
}

// workload collects one workload's runs.
type workload struct {
	name       string
	target     float64 // ratio target, 0 for none
	snap, bud  []run
	snapValid  string // why snapbuild's runs do not measure what they should, if so
	budValid   string
	bigPayload bool // RUN payloads (apt-get) may outgrow the builder
}

func (b *bench) main(ctx context.Context) (err error) {
	if err := b.checkTools(); err != nil {
		return err
	}
	if b.dir, err = os.MkdirTemp("", "snapbuild-bench-"); err != nil {
		return err
	}
	b.store = filepath.Join(b.dir, "snapbuild")
	defer b.cleanup()
	start, load0 := time.Now(), loadAvg()

	// The base: snapbuild builds and exports it; buildah pulls that export.
	logf("base: building debian_slim python 3.11 with snapbuild (needs deb.debian.org)")
	base, err := b.snapbuild(ctx, "base.yaml", "- debian_slim: {python_version: \"3.11\"}\n", "benchbase", 15*time.Minute)
	if err != nil {
		return err
	}
	var baseOut struct{ Manifest string }
	json.Unmarshal([]byte(lastLine(base.stdout)), &baseOut)
	logf("base: built in %s, manifest %s", secs(base.wall), baseOut.Manifest)
	oci := filepath.Join(b.dir, "base-oci")
	if _, err := b.command(ctx, time.Minute, b.bin, "export", "benchbase", "--root", b.store, "oci:"+oci+":base"); err != nil {
		return err
	}
	if b.skipped == "" {
		if err := b.setupBuildah(ctx, oci, baseOut.Manifest); err != nil {
			if os.Geteuid() == 0 {
				return err
			}
			b.skipBuildah(fmt.Sprintf("rootless buildah did not work here (%v)", firstLine(err.Error())))
		}
	}

	// Warm-up, not timed: page cache, and which bud flags this host needs.
	logf("warm-up: one untimed cold build with each tool")
	yml, cf := tinyRecipe("warm")
	if _, err := b.snapbuild(ctx, "warm.yaml", yml, "warm", 5*time.Minute); err != nil {
		return err
	}
	if b.skipped == "" {
		if _, err := b.bud(ctx, "warm", cf, "warm", false); err != nil {
			if msg := strings.ToLower(err.Error()); !strings.Contains(msg, "rlimit") && !strings.Contains(msg, "ulimit") {
				return err
			}
			// Raising hard rlimits is not permitted in some sandboxes.
			b.budArgs = []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
			b.notes = append(b.notes, "buildah needed --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 here")
			if _, err := b.bud(ctx, "warm", cf, "warm", false); err != nil {
				return err
			}
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

	b.notes = append(b.notes, fmt.Sprintf("load average %s at the start, %s at the end, on %d CPUs (other work on the host skews the times)",
		load0, loadAvg(), runtime.NumCPU()))
	b.report([]*workload{cold, cached, apt})
	logf("bench took %s", time.Since(start).Round(time.Second))
	return nil
}

// checkTools fails early, naming the Debian package, when a tool is missing,
// and decides whether and how buildah runs.
func (b *bench) checkTools() error {
	abs, err := filepath.Abs(b.bin)
	if err != nil {
		return err
	}
	b.bin = abs
	if fi, err := os.Stat(b.bin); err != nil || fi.IsDir() {
		return fmt.Errorf("no snapbuild binary at %s: run `make build` first, or give -bin", b.bin)
	}
	bud, err := exec.LookPath("buildah")
	if err != nil {
		return errors.New("buildah not found: install the Debian package buildah (apt-get install -y buildah)")
	}
	if b.runc, err = lookPath("runc"); err != nil {
		return errors.New("runc not found: install the Debian package runc (apt-get install -y runc)")
	}
	b.buildah = []string{bud, "--storage-driver", "overlay"}
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err == nil && (!hasSubIDs("/etc/subuid", u.Username) || !hasSubIDs("/etc/subgid", u.Username)) {
			b.skipBuildah(fmt.Sprintf("user %s has no /etc/subuid and /etc/subgid range, which rootless buildah needs", u.Username))
		} else {
			b.notes = append(b.notes, "not root: both tools run rootless")
		}
	}
	return nil
}

func (b *bench) skipBuildah(why string) {
	b.skipped = why
	b.notes = append(b.notes, "buildah skipped: "+why+"; run as root to compare")
	logf("buildah skipped: %s", why)
}

// setupBuildah points buildah at private directories and pulls the base
// once, before any timing, tagged benchbase like snapbuild's.
func (b *bench) setupBuildah(ctx context.Context, oci, manifest string) error {
	b.buildah = append(b.buildah, "--root", filepath.Join(b.dir, "buildah-root"), "--runroot", filepath.Join(b.dir, "buildah-run"))
	r, err := b.command(ctx, 5*time.Minute, b.buildah[0], append(b.buildah[1:], "pull", "-q", "oci:"+oci+":base")...)
	if err != nil {
		return err
	}
	id := lastLine(r.stdout)
	if _, err := b.command(ctx, time.Minute, b.buildah[0], append(b.buildah[1:], "tag", id, "benchbase")...); err != nil {
		return err
	}
	r, err = b.command(ctx, time.Minute, b.buildah[0], append(b.buildah[1:], "inspect", "--type", "image", "--format", "{{.FromImageDigest}}", "benchbase")...)
	if err != nil {
		return err
	}
	if got := lastLine(r.stdout); got != manifest {
		return fmt.Errorf("buildah's benchbase has manifest %s, snapbuild's %s: not the same base", got, manifest)
	}
	logf("base: pulled into buildah (same manifest)")
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

// snapbuild writes recipe text to file and builds it as tag with JSON
// progress; the final stdout line carries stats and peakRSSKiB.
func (b *bench) snapbuild(ctx context.Context, file, recipe, tag string, limit time.Duration) (run, error) {
	path := filepath.Join(b.dir, file)
	if err := os.WriteFile(path, []byte(recipe), 0o644); err != nil {
		return run{}, err
	}
	r, err := b.command(ctx, limit, b.bin, "build", path, "-t", tag, "--root", b.store, "--progress=json")
	if err != nil {
		return r, err
	}
	var out struct {
		PeakRSSKiB int64
		Stats      stats
	}
	if err := json.Unmarshal([]byte(lastLine(r.stdout)), &out); err != nil {
		return r, fmt.Errorf("snapbuild build %s: cannot read its final JSON line %q: %v", file, lastLine(r.stdout), err)
	}
	r.selfRSS = out.PeakRSSKiB
	return r, nil
}

type stats struct{ Steps, Cached, ContainersStarted int }

// bud writes a Containerfile to a context directory named ctxName and
// builds it with buildah as tag, with runc and the host network (as
// snapbuild's RUN steps use by default).
func (b *bench) bud(ctx context.Context, ctxName, containerfile, tag string, noCache bool) (run, error) {
	dir := filepath.Join(b.dir, "ctx-"+ctxName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return run{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(containerfile), 0o644); err != nil {
		return run{}, err
	}
	args := append(slices.Clone(b.buildah[1:]), "bud", "--layers", "--pull-never", "--isolation", "oci",
		"--runtime", b.runc, "--network", "host", "-t", tag)
	if noCache {
		args = append(args, "--no-cache")
	}
	args = append(args, b.budArgs...)
	args = append(args, "-f", filepath.Join(dir, "Containerfile"), dir)
	return b.command(ctx, 10*time.Minute, b.buildah[0], args...)
}

// command runs a command, timing it from start to exit, and returns an error
// that shows the end of its output when it fails.
func (b *bench) command(ctx context.Context, limit time.Duration, name string, args ...string) (run, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	t0 := time.Now()
	err := cmd.Run()
	r := run{wall: time.Since(t0), stdout: stdout.String(), stderr: stderr.String()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.treeRSS = ru.Maxrss
		}
	}
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s", limit)
		}
		return r, fmt.Errorf("%s %s: %v\n--- output (end) ---\n%s", filepath.Base(name), strings.Join(args, " "), err,
			tail(r.stdout+r.stderr, 40))
	}
	return r, nil
}

// cleanup removes the temporary directory: buildah's images first, then any
// mount left below it, then the files.
func (b *bench) cleanup() {
	if b.dir == "" {
		return
	}
	if b.keep {
		logf("kept %s", b.dir)
		return
	}
	if slices.Contains(b.buildah, "--root") { // buildah's store was made
		for _, a := range [][]string{{"rm", "-a"}, {"rmi", "-af"}} {
			exec.Command(b.buildah[0], append(slices.Clone(b.buildah[1:]), a...)...).Run()
		}
	}
	mounts := mountsUnder(b.dir)
	for i := len(mounts) - 1; i >= 0; i-- {
		syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
	err := os.RemoveAll(b.dir)
	if err != nil && slices.Contains(b.buildah, "--root") && os.Geteuid() != 0 {
		// Rootless buildah leaves files owned by subordinate IDs.
		err = exec.Command(b.buildah[0], "unshare", "rm", "-rf", b.dir).Run()
	}
	if err != nil {
		logf("could not remove %s: %v", b.dir, err)
	}
}

// report prints the table, the notes and which targets are met.
func (b *bench) report(ws []*workload) {
	fmt.Printf("\nsnapbuild vs buildah %s, median of %d, wall time per build\n\n", b.buildahVersion(), b.n)
	row := "%-28s  %-10s  %-10s  %-7s  %s\n"
	fmt.Printf(row, "workload", "snapbuild", "buildah", "ratio", "target")
	var met, missed []string
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
				name := fmt.Sprintf("%s %s %s", w.name, ratio, target)
				if r <= w.target {
					met = append(met, name)
				} else {
					missed = append(missed, name)
				}
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
	name := fmt.Sprintf("peak RSS %s %s", mib(snapSelf), rssTarget)
	if snapSelf < rssTargetMiB*1024 {
		met = append(met, name)
	} else {
		missed = append(missed, name)
	}

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
	if len(b.notes) > 0 {
		fmt.Println()
	}
	for _, n := range b.notes {
		fmt.Printf("note: %s\n", n)
	}
	fmt.Printf("\ntargets met: %s\n", listOrNone(met))
	fmt.Printf("targets missed: %s\n", listOrNone(missed))
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

// peak is the largest of f over rs.
func peak(rs []run, f func(run) int64) (m int64) {
	for _, r := range rs {
		m = max(m, f(r))
	}
	return m
}

func median(rs []run) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	d := make([]time.Duration, len(rs))
	for i, r := range rs {
		d[i] = r.wall
	}
	slices.Sort(d)
	if len(d)%2 == 1 {
		return d[len(d)/2]
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2
}

func (b *bench) buildahVersion() string {
	if b.skipped != "" {
		return "(buildah skipped)"
	}
	out, _ := exec.Command(b.buildah[0], "--version").Output()
	return strings.TrimPrefix(firstLine(string(out)), "buildah version ")
}

// lookPath finds a program on PATH or in the sbin directories, which a
// user's PATH often lacks.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if p := filepath.Join(d, name); exec.Command(p, "--version").Run() == nil {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func hasSubIDs(file, name string) bool {
	data, _ := os.ReadFile(file)
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, name+":") {
			return true
		}
	}
	return false
}

// mountsUnder lists mount points at or below dir, in mount order.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 {
			if p := fields[4]; p == dir || strings.HasPrefix(p, dir+"/") {
				out = append(out, p)
			}
		}
	}
	return out
}

// loadAvg is the one-minute load average.
func loadAvg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func secs(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", d.Seconds()*1000)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", d.Seconds()*1000)
	case d < 10*time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, "; ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
