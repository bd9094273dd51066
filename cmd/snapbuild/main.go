// Command snapbuild builds container images locally, rootless and offline,
// from recipes written with modal.Image's methods, or from Dockerfiles.
//
//	snapbuild build FILE [IMAGE...] | APP.py[::NAME] | -m PKG.MODULE [-t NAME] [--print[=json]] [flags]
//	snapbuild build [-f Dockerfile] [--build-arg K=V]... [--target STAGE] [-t NAME] [CONTEXT]
//	snapbuild run [-it] [--entrypoint CMD] NAME [-- CMD...]
//	snapbuild images | inspect NAME | rm NAME | export NAME DEST | push | pull | save | load
//	snapbuild --help | --version | COMMAND --help | help COMMAND
//
// Every command accepts --root DIR (default $SNAPBUILD_ROOT, else
// /var/lib/snapbuild for root, ~/.local/share/snapbuild for users). The
// commands and their help are listed in help.go.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/snapbuild/snapbuild"
	"github.com/snapbuild/snapbuild/sandbox"
)

func main() {
	// Only libcontainer's and storage's re-executed roles: a command
	// enters the build namespace when it needs it (command.ns).
	sandbox.Init()
	enterNamespace = sandbox.EnterNamespace
	// Layer capture (the differ's reads, zstd's buffers) allocates
	// briskly; a tighter GC keeps the builder's peak RSS near 45 MiB,
	// even capturing a 2 GB layer. GOGC overrides it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	os.Exit(run(os.Args[1:]))
}

// exitError carries an exit status through run.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// enterNamespace moves the process into the build namespace, re-executing
// it (sandbox.EnterNamespace); main sets it. Tests that call run leave it
// nil: their commands run in the test's process.
var enterNamespace func()

// globalRoot is a --root given before the command.
var globalRoot string

// run runs the command line argv (without the program name) and returns
// the exit status.
func run(argv []string) int {
	for len(argv) > 0 && strings.HasPrefix(argv[0], "--root") {
		if v, ok := strings.CutPrefix(argv[0], "--root="); ok {
			globalRoot, argv = v, argv[1:]
		} else if argv[0] == "--root" && len(argv) > 1 {
			globalRoot, argv = argv[1], argv[2:]
		} else {
			return report(usagef("--root needs a directory: snapbuild --root DIR COMMAND"))
		}
	}
	if len(argv) == 0 {
		writeUsage(os.Stdout)
		return 0
	}
	switch name, args := argv[0], argv[1:]; name {
	case "-h", "-help", "--help":
		writeUsage(os.Stdout)
		return 0
	case "-v", "-version", "--version":
		argv = []string{"version"}
	case "help":
		// snapbuild help COMMAND is snapbuild COMMAND --help.
		if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
			writeUsage(os.Stdout)
			return 0
		}
		if lookup(args[0]) == nil {
			return report(unknownCommand(args[0]))
		}
		argv = []string{args[0], "--help"}
	default:
		if strings.HasPrefix(name, "-") {
			return report(usagef("unknown flag %s before the command: only --root DIR, --help and --version go there (see 'snapbuild --help')", name))
		}
	}
	c := lookup(argv[0])
	if c == nil {
		return report(unknownCommand(argv[0]))
	}
	if (c.ns == nsFirst || c.ns == nsRootless && os.Geteuid() != 0) && !wantsHelp(argv[1:]) && enterNamespace != nil {
		enterNamespace() // re-executes snapbuild once, here
	}
	ctx, stop := signalContext()
	err := c.run(ctx, argv[1:])
	if c.ns == nsOnDemand && errors.Is(err, snapbuild.ErrNeedsSandbox) && !sandbox.Entered() && enterNamespace != nil {
		// The command stopped before changing the store: it runs again,
		// from the start, in the namespace, and this process exits with
		// its status.
		stop()
		handOver()
		enterNamespace()
	}
	defer stop()
	var sig signalled
	if errors.Is(err, context.Canceled) && errors.As(context.Cause(ctx), &sig) {
		err = sig // the exit status tells SIGINT (130) from SIGTERM (143)
	}
	var help *helpError
	switch {
	case errors.As(err, &help):
		writeHelp(os.Stdout, c, help.fs)
		return 0
	case errors.Is(err, flag.ErrHelp):
		writeHelp(os.Stdout, c, nil)
		return 0
	}
	return report(err)
}

// wantsHelp reports whether a command's arguments ask for its help (-h,
// -help or --help before any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// signalled is the cause of a command's cancellation by a signal.
type signalled struct{ syscall.Signal }

func (s signalled) Error() string {
	if s.Signal == syscall.SIGINT {
		return "interrupted"
	}
	return s.Signal.String()
}

// Is reports a signal as the cancellation it causes, so that a step it
// stopped reports CANCELED, as one stopped by another step's failure does.
func (s signalled) Is(target error) bool { return target == context.Canceled }

// signalContext is a context cancelled, with a signalled cause, by the
// first SIGINT or SIGTERM; stop ends the watch and restores the default
// handling.
func signalContext() (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			cancel(signalled{s.(syscall.Signal)})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// report prints err, if any, once on standard error and returns the exit
// status it calls for.
func report(err error) int {
	var ee exitError
	var ue *usageError
	var sig signalled
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return int(ee)
	case errors.As(err, &sig):
		// As a shell reports a process killed by the signal: 128+N. The
		// signal may come wrapped in what it stopped (a build step).
		fmt.Fprintf(os.Stderr, "snapbuild: %v\n", err)
		return 128 + int(sig.Signal)
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "snapbuild: interrupted")
		return 130
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "snapbuild: %v\n", err)
		return exitUsage
	case errors.Is(err, sandbox.ErrCommandNotFound):
		fmt.Fprintf(os.Stderr, "snapbuild: %v\n", err)
		return 127
	case errors.Is(err, sandbox.ErrCommandNotExecutable):
		fmt.Fprintf(os.Stderr, "snapbuild: %v\n", err)
		return 126
	}
	fmt.Fprintf(os.Stderr, "snapbuild: %v\n", err)
	return 1
}

// parse parses flags that may come before, between or after positional
// arguments, up to a "--"; it returns the positional arguments and what
// follows "--". On -h or --help it returns a *helpError with fs, for the
// command's help; other flag errors are usage errors that point at it.
func parse(fs *flag.FlagSet, args []string) (pos, rest []string, err error) {
	fs.SetOutput(io.Discard)
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, &helpError{fs}
			}
			return nil, nil, flagError(fs, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, rest, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// storeRoot is the store directory a command uses: its --root, else the
// --root given before the command, else snapbuild.DefaultRoot().
func storeRoot(root string) string {
	if root == "" {
		root = globalRoot
	}
	if root == "" {
		root = snapbuild.DefaultRoot()
	}
	return root
}

// newBuilder opens the store, creating it when missing: for commands that
// write images into it (build, pull, load).
func newBuilder(root string, opts ...snapbuild.Option) (*snapbuild.Builder, error) {
	return snapbuild.NewBuilder(append(sandboxOptions(opts), snapbuild.WithRoot(storeRoot(root)))...)
}

// openBuilder opens the store only when it exists, and otherwise fails with
// a *snapbuild.StoreNotExistError: for commands that read or remove what a
// store holds, so that a mistyped --root leaves no directory behind.
func openBuilder(root string, opts ...snapbuild.Option) (*snapbuild.Builder, error) {
	return snapbuild.NewBuilder(append(sandboxOptions(opts), snapbuild.WithExistingRoot(storeRoot(root)))...)
}

// sandboxOptions is opts, with snapbuild.WithoutSandbox outside the build
// namespace: the Builder then stops with snapbuild.ErrNeedsSandbox where it
// would need it.
func sandboxOptions(opts []snapbuild.Option) []snapbuild.Option {
	if sandbox.Entered() {
		return opts
	}
	return append(opts[:len(opts):len(opts)], snapbuild.WithoutSandbox())
}

// noImage is the error of a command given image names when the store does
// not exist: err, which is a *snapbuild.StoreNotExistError, explains.
func noImage(names []string, err error) error {
	var nse *snapbuild.StoreNotExistError
	if !errors.As(err, &nse) {
		return err
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	what := "no image"
	if len(q) > 1 {
		what = "no images"
	}
	return fmt.Errorf("%s %s: %w (build, pull or load an image to make it, or give the store with --root or SNAPBUILD_ROOT)", what, strings.Join(q, ", "), err)
}

func progressFor(mode string) (snapbuild.Progress, error) {
	switch mode {
	case "auto":
		// A terminal that cannot erase a line (TERM=dumb) gets plain
		// lines, as BuildKit gives it.
		if term.IsTerminal(int(os.Stderr.Fd())) && os.Getenv("TERM") != "dumb" {
			return snapbuild.NewTTYProgress(os.Stderr), nil
		}
		return snapbuild.NewPlainProgress(os.Stderr), nil
	case "plain":
		return snapbuild.NewPlainProgress(os.Stderr), nil
	case "tty":
		return snapbuild.NewTTYProgress(os.Stderr), nil
	case "json":
		return snapbuild.NewJSONProgress(os.Stderr), nil
	}
	return nil, fmt.Errorf("--progress=%s: use plain, tty, json or auto", mode)
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// listStore lists what the store at root holds with list: nothing (an empty
// list, JSON's [] rather than null) when the store does not exist.
func listStore[T any](root string, list func(*snapbuild.Builder) ([]T, error)) ([]T, error) {
	b, err := openBuilder(root)
	var nse *snapbuild.StoreNotExistError
	switch {
	case errors.As(err, &nse):
		return []T{}, nil
	case err != nil:
		return nil, err
	}
	defer b.Close()
	items, err := list(b)
	if items == nil && err == nil {
		items = []T{}
	}
	return items, err
}

func cmdImages(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	root := rootFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON: a list of image descriptions, as snapbuild inspect gives them")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("images: unexpected argument %q: snapbuild images takes no name (see 'snapbuild inspect NAME')", pos[0])
	}
	imgs, err := listStore(*root, (*snapbuild.Builder).Images)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(imgs)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIMAGE ID\tMANIFEST\tLAYERS\tSIZE")
	for _, im := range imgs {
		for _, n := range im.Names {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f MB\n", n, im.ID, im.Manifest.Digest.Encoded()[:12],
				len(im.Config.RootFS.DiffIDs), float64(im.Size)/1e6)
		}
	}
	return tw.Flush()
}

// storeArgs parses a command that takes --root and positional arguments,
// checks their count against want (a usage line), and opens the store with
// open (newBuilder or openBuilder).
func storeArgs(name string, args []string, ok func(n int) bool, want string,
	open func(root string, opts ...snapbuild.Option) (*snapbuild.Builder, error)) (*snapbuild.Builder, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	root := rootFlag(fs)
	pos, _, err := parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if !ok(len(pos)) {
		return nil, nil, usagef("%s: usage: snapbuild %s (see 'snapbuild %s --help')", name, want, name)
	}
	b, err := open(*root)
	return b, pos, err
}

func exactly(n int) func(int) bool { return func(m int) bool { return m == n } }

func cmdInspect(ctx context.Context, args []string) error {
	b, pos, err := storeArgs("inspect", args, exactly(1), "inspect NAME|ID", openBuilder)
	if err != nil {
		return noImage(pos, err)
	}
	defer b.Close()
	info, err := b.Inspect(pos[0])
	if err != nil {
		return err
	}
	if info.Metadata == nil {
		// The first inspect of a pulled image probes its metadata (Python
		// version, ...); the description is worth printing without it.
		m, err := b.Metadata(ctx, pos[0])
		if errors.Is(err, snapbuild.ErrNeedsSandbox) && !sandbox.Entered() {
			if nerr := sandbox.CheckNamespace(); nerr != nil {
				// Without a namespace to probe in, the description
				// still stands.
				err = nerr
			} else {
				return err // probed in the namespace (command.ns)
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "snapbuild: warning: the image's metadata could not be probed: %v\n", err)
		}
		info.Metadata = m
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(info)
}

// cmdRm removes each name given, reporting every failure.
func cmdRm(ctx context.Context, args []string) error {
	b, pos, err := storeArgs("rm", args, func(n int) bool { return n > 0 }, "rm NAME...", openBuilder)
	if err != nil {
		return noImage(pos, err)
	}
	defer b.Close()
	var errs []error
	for _, n := range pos {
		errs = append(errs, b.Remove(n))
	}
	return errors.Join(errs...)
}

// peakRSSKiB is this process's peak resident set size (the builder itself,
// not the sandboxed processes), in KiB.
func peakRSSKiB() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss
}

func cmdVersion(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("version: unexpected argument %q", pos[0])
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += " " + s.Value
			}
		}
		fmt.Printf("snapbuild %s (%s, Modal image builder %s)\n", v, bi.GoVersion, snapbuild.BuilderVersion)
		return nil
	}
	fmt.Println("snapbuild", v)
	return nil
}
