// Command bench measures snapbuild and prints tables of medians against
// targets. It has four parts (see README.md), all run by default. The
// compare part (compare.go) runs snapbuild, buildah and, where Debian's
// dockerd can run, BuildKit side by side on the debian_slim path, from the
// same local base image: median wall times, ratios, peak RSS, and the
// execve and network connect counts of a cached build. The parallel part
// (parallel.go, images.go) builds a Dockerfile with two independent stages
// one step at a time (--jobs 1) and in parallel, with both tools, and a
// recipe of two independent images together and one at a time. The capture part
// (capture.go) measures the cost of capturing a step's layer:
// commit time on a small and a 2 GB base, capture throughput on a ~200 MB
// change against `tar -c | zstd -3 -T0`, and peak RSS by layer size. The
// context part (context.go) times a rebuild, nothing changed, of a
// Dockerfile whose build context holds 30 000 files, with both tools.
//
//	go run -tags "$(TAGS)" ./bench -bin bin/snapbuild [-n 5] [-only compare|parallel|capture|context|cache] [-keep] [-v]
//
// It builds a debian_slim base once with snapbuild; buildah gets the same
// content by pulling snapbuild's OCI export, dockerd by loading its
// docker-archive export. Everything lives in one
// temporary directory, removed at the end.
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

// rssTargetMiB is the project's bound on snapbuild's own peak RSS.
const rssTargetMiB = 64

func main() {
	b := &bench{}
	flag.StringVar(&b.bin, "bin", "bin/snapbuild", "snapbuild binary")
	flag.IntVar(&b.n, "n", 5, "timed iterations per workload and tool")
	flag.StringVar(&b.only, "only", "", "run one part only: compare (snapbuild vs buildah and BuildKit), parallel (independent stages), capture (layer capture), context (cached rebuild of a 30k-file build context) or cache (a fresh store from build --cache-from against a pull of the same layers)")
	flag.BoolVar(&b.keep, "keep", false, "keep the temporary directory (stores, recipes)")
	flag.StringVar(&b.store, "store", "", "snapbuild store (--root) to use instead of a fresh one in the temporary directory, e.g. the snapbuild/ a -keep run left: its cached base skips the bootstrap; it is kept")
	flag.BoolVar(&b.verbose, "v", false, "print every iteration's times")
	flag.Parse()
	if b.n < 1 {
		fmt.Fprintln(os.Stderr, "bench: -n must be at least 1")
		os.Exit(2)
	}
	if !slices.Contains([]string{"", "all", "compare", "parallel", "capture", "context", "cache"}, b.only) {
		fmt.Fprintf(os.Stderr, "bench: -only must be compare, parallel, capture, context or cache, not %q\n", b.only)
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
	only    string // "compare", "parallel", "capture", "context", "cache", or "" / "all" for every part
	keep    bool
	verbose bool

	dir      string            // temporary directory holding everything
	store    string            // snapbuild --root
	runc     string            // runtime for buildah
	strace   string            // strace, for the process and connection counts
	buildah  []string          // buildah and its global flags
	budStore bool              // buildah's private store may hold something
	skipped  string            // why buildah is skipped; "" when it runs
	budArgs  []string          // extra `buildah bud` flags found to be needed
	pulled   map[string]string // tag: manifest, images pulled into buildah

	kit     *kit   // the dockerd of the BuildKit column, nil when not running
	kitSkip string // why the BuildKit column is skipped; "" when it runs

	notes  []string // printed under the tables
	met    []string // targets met, over all parts
	missed []string // targets missed
}

// run is one timed command.
type run struct {
	wall     time.Duration
	treeRSS  int64  // KiB: wait4's ru_maxrss, the largest process of the tree it reaped
	selfRSS  int64  // KiB: snapbuild's own peakRSSKiB (0 for buildah)
	manifest string // snapbuild: the image's manifest digest
	stdout   string
	stderr   string
}

func (b *bench) part(name string) bool { return b.only == "" || b.only == "all" || b.only == name }

func (b *bench) main(ctx context.Context) (err error) {
	if err := b.checkTools(); err != nil {
		return err
	}
	if b.dir, err = os.MkdirTemp("", "snapbuild-bench-"); err != nil {
		return err
	}
	if b.store == "" {
		b.store = filepath.Join(b.dir, "snapbuild")
	} else if b.store, err = filepath.Abs(b.store); err != nil {
		return err
	}
	defer b.cleanup()
	start, load0 := time.Now(), loadAvg()

	// The base, for every part but context; buildah pulls it in compare.
	var base run
	if b.part("compare") || b.part("parallel") || b.part("capture") || b.part("cache") {
		logf("base: building debian_slim python 3.11 with snapbuild (needs deb.debian.org)")
		if base, err = b.snapbuild(ctx, "base.yaml", "- debian_slim: {python_version: \"3.11\"}\n", "benchbase", 15*time.Minute); err != nil {
			return err
		}
		logf("base: built in %s, manifest %s", secs(base.wall), base.manifest)
	}

	if b.part("compare") {
		if err := b.compare(ctx, base.manifest); err != nil {
			return err
		}
	}
	if b.part("parallel") {
		if err := b.parallel(ctx, base.manifest); err != nil {
			return err
		}
		if err := b.images(ctx); err != nil {
			return err
		}
	}
	if b.part("capture") {
		if err := b.capture(ctx); err != nil {
			return err
		}
	}
	if b.part("context") {
		if err := b.contextPart(ctx); err != nil {
			return err
		}
	}
	if b.part("cache") {
		if err := b.cachePart(ctx); err != nil {
			return err
		}
	}

	b.notes = append(b.notes, fmt.Sprintf("load average %s at the start, %s at the end, on %d CPUs (other work on the host skews the times)",
		load0, loadAvg(), runtime.NumCPU()))
	if len(b.notes) > 0 {
		fmt.Println()
	}
	for _, n := range b.notes {
		fmt.Printf("note: %s\n", n)
	}
	fmt.Printf("\ntargets met: %s\n", listOrNone(b.met))
	fmt.Printf("targets missed: %s\n", listOrNone(b.missed))
	logf("bench took %s", time.Since(start).Round(time.Second))
	return nil
}

// verdict files a target under met or missed.
func (b *bench) verdict(ok bool, what string) {
	if ok {
		b.met = append(b.met, what)
	} else {
		b.missed = append(b.missed, what)
	}
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
	if b.part("compare") {
		if b.strace, err = exec.LookPath("strace"); err != nil {
			return errors.New("strace not found (compare counts a cached build's processes and connections with it): install the Debian package strace (apt-get install -y strace)")
		}
	}
	if b.part("capture") {
		for _, t := range []string{"tar", "zstd", "du", "bash"} {
			if _, err := exec.LookPath(t); err != nil {
				return fmt.Errorf("%s not found (the capture part's peer needs it): install the Debian package %s", t, t)
			}
		}
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

// toBuildah gives buildah snapbuild's image tag, untimed: snapbuild exports
// it as an OCI layout, buildah (with private --root and --runroot) pulls
// that and tags it the same; both must then show the same manifest digest.
// As a user, a buildah that does not work is skipped rather than fatal.
func (b *bench) toBuildah(ctx context.Context, tag, manifest string) error {
	if b.skipped != "" || b.pulled[tag] == manifest {
		return nil
	}
	err := b.pullIntoBuildah(ctx, tag, manifest)
	if err == nil {
		if b.pulled == nil {
			b.pulled = map[string]string{}
		}
		b.pulled[tag] = manifest
	}
	if err != nil && os.Geteuid() != 0 {
		b.skipBuildah(fmt.Sprintf("rootless buildah did not work here (%v)", firstLine(err.Error())))
		return nil
	}
	return err
}

func (b *bench) pullIntoBuildah(ctx context.Context, tag, manifest string) error {
	if !b.budStore {
		b.buildah = append(b.buildah, "--root", filepath.Join(b.dir, "buildah-root"), "--runroot", filepath.Join(b.dir, "buildah-run"))
		b.budStore = true
	}
	oci := filepath.Join(b.dir, "oci-"+tag)
	defer os.RemoveAll(oci) // buildah copies what it needs
	if _, err := b.command(ctx, 10*time.Minute, b.bin, "export", tag, "--root", b.store, "oci:"+oci+":"+tag); err != nil {
		return err
	}
	r, err := b.command(ctx, 10*time.Minute, b.buildah[0], append(b.buildah[1:], "pull", "-q", "oci:"+oci+":"+tag)...)
	if err != nil {
		return err
	}
	id := lastLine(r.stdout)
	if _, err := b.command(ctx, time.Minute, b.buildah[0], append(b.buildah[1:], "tag", id, tag)...); err != nil {
		return err
	}
	r, err = b.command(ctx, time.Minute, b.buildah[0], append(b.buildah[1:], "inspect", "--type", "image", "--format", "{{.FromImageDigest}}", tag)...)
	if err != nil {
		return err
	}
	if got := lastLine(r.stdout); got != manifest {
		return fmt.Errorf("buildah's %s has manifest %s, snapbuild's %s: not the same image", tag, got, manifest)
	}
	logf("%s: pulled into buildah (same manifest)", tag)
	return nil
}

// snapbuild writes recipe text to file and builds it as tag with JSON
// progress; the final stdout line carries the manifest, stats and
// peakRSSKiB, and stderr holds one JSON event per line.
func (b *bench) snapbuild(ctx context.Context, file, recipe, tag string, limit time.Duration) (run, error) {
	path := filepath.Join(b.dir, file)
	if err := os.WriteFile(path, []byte(recipe), 0o644); err != nil {
		return run{}, err
	}
	return b.snapbuildArgs(ctx, limit, file, "build", path, "-t", tag, "--root", b.store, "--progress=json")
}

// snapbuildArgs runs snapbuild with args, which must include
// --progress=json, and reads the manifest and peakRSSKiB from its final
// stdout line; what names what is built, for errors.
func (b *bench) snapbuildArgs(ctx context.Context, limit time.Duration, what string, args ...string) (run, error) {
	r, err := b.command(ctx, limit, b.bin, args...)
	if err != nil {
		return r, err
	}
	var out struct {
		Manifest   string
		PeakRSSKiB int64
		Stats      stats
	}
	line := summaryLine(r.stdout)
	if err := json.Unmarshal([]byte(line), &out); err != nil || out.Manifest == "" {
		return r, fmt.Errorf("snapbuild build %s: no image summary (a JSON line with a manifest) on stdout, last line %q", what, lastLine(r.stdout))
	}
	r.selfRSS, r.manifest = out.PeakRSSKiB, out.Manifest
	return r, nil
}

// stats is the final JSON line's "stats": Config counts the steps that
// only set image metadata (ARG, ENV, ...), neither run nor cached.
type stats struct{ Steps, Cached, Config, ContainersStarted int }

// bud writes a Containerfile to a context directory named ctxName and
// builds it with buildah as tag, with runc and the host network (as
// snapbuild's RUN steps use by default); extra are more `buildah bud`
// flags.
func (b *bench) bud(ctx context.Context, ctxName, containerfile, tag string, noCache bool, extra ...string) (run, error) {
	dir := filepath.Join(b.dir, "ctx-"+ctxName)
	if err := writeContext(dir, containerfile); err != nil {
		return run{}, err
	}
	args := append(slices.Clone(b.buildah[1:]), "bud", "--layers", "--pull-never", "--isolation", "oci",
		"--runtime", b.runc, "--network", "host", "-t", tag)
	if noCache {
		args = append(args, "--no-cache")
	}
	args = append(args, b.budArgs...)
	args = append(args, extra...)
	args = append(args, "-f", filepath.Join(dir, "Containerfile"), dir)
	return b.command(ctx, 10*time.Minute, b.buildah[0], args...)
}

// writeContext makes dir, a build context that holds only a Containerfile.
func writeContext(dir, containerfile string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(containerfile), 0o644)
}

// budWarm is an untimed `bud` that also finds out whether this host needs
// fixed rlimits: if buildah fails to raise them (some sandboxes forbid it),
// it retries with --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 and
// keeps those flags from then on.
func (b *bench) budWarm(ctx context.Context, ctxName, containerfile, tag string, extra ...string) error {
	_, err := b.bud(ctx, ctxName, containerfile, tag, false, extra...)
	if err == nil || len(b.budArgs) > 0 {
		return err
	}
	if msg := strings.ToLower(err.Error()); !strings.Contains(msg, "rlimit") && !strings.Contains(msg, "ulimit") {
		return err
	}
	b.budArgs = []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
	b.notes = append(b.notes, "buildah needed --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 here")
	_, err = b.bud(ctx, ctxName, containerfile, tag, false, extra...)
	return err
}

// command runs a command, timing it from start to exit, and returns an error
// that shows the end of its output when it fails.
func (b *bench) command(ctx context.Context, limit time.Duration, name string, args ...string) (run, error) {
	return b.commandEnv(ctx, limit, nil, name, args...)
}

// commandEnv is command with the environment env (nil: the bench's own).
func (b *bench) commandEnv(ctx context.Context, limit time.Duration, env []string, name string, args ...string) (run, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
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
	b.kitCleanup()
	if b.keep {
		logf("kept %s", b.dir)
		return
	}
	if b.budStore {
		for _, a := range [][]string{{"rm", "-a"}, {"rmi", "-af"}} {
			exec.Command(b.buildah[0], append(slices.Clone(b.buildah[1:]), a...)...).Run()
		}
	}
	mounts := mountsUnder(b.dir)
	for i := len(mounts) - 1; i >= 0; i-- {
		syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
	err := os.RemoveAll(b.dir)
	if err != nil && b.budStore && os.Geteuid() != 0 {
		// Rootless buildah leaves files owned by subordinate IDs.
		err = exec.Command(b.buildah[0], "unshare", "rm", "-rf", b.dir).Run()
	}
	if err != nil {
		logf("could not remove %s: %v", b.dir, err)
	}
}

func (b *bench) buildahVersion() string {
	if b.skipped != "" {
		return "(buildah skipped)"
	}
	out, _ := exec.Command(b.buildah[0], "--version").Output()
	return strings.TrimPrefix(firstLine(string(out)), "buildah version ")
}

// peak is the largest of f over rs.
func peak(rs []run, f func(run) int64) (m int64) {
	for _, r := range rs {
		m = max(m, f(r))
	}
	return m
}

// median is the median wall time of rs.
func median(rs []run) time.Duration {
	d := make([]time.Duration, len(rs))
	for i, r := range rs {
		d[i] = r.wall
	}
	return medianOf(d)
}

func medianOf(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Sorted(slices.Values(d))
	if len(d)%2 == 1 {
		return d[len(d)/2]
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2
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

// summaryLine is the last image summary ({"kind": "image", ...}) among
// the JSON lines snapbuild writes on stdout with --progress=json; a
// {"kind": "log"} line follows it.
func summaryLine(stdout string) string {
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var l struct{ Kind string }
		if json.Unmarshal([]byte(lines[i]), &l) == nil && l.Kind == "image" {
			return lines[i]
		}
	}
	return lastLine(stdout)
}

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
