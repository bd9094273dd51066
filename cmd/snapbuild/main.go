// Command snapbuild builds container images locally, rootless and offline,
// from recipes written with modal.Image's methods.
//
//	snapbuild build FILE [IMAGE...] | APP.py[::NAME] | -m PKG.MODULE [-t NAME] [--print[=json]] [flags]
//	snapbuild run NAME [-- CMD...]
//	snapbuild images | inspect NAME | rm NAME | export NAME DEST
//
// Every command accepts --root DIR (default $SNAPBUILD_ROOT, else
// /var/lib/snapbuild for root, ~/.local/share/snapbuild for users).
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

const usage = `snapbuild builds container images locally, rootless and offline.

Usage:
  snapbuild [--root DIR] COMMAND ...
  snapbuild build RECIPE.yaml [IMAGE...] [-t NAME] [flags]
  snapbuild build APP.py[::NAME]... [-t NAME] [flags]
  snapbuild build -m PKG.MODULE[::NAME] [-t NAME] [flags]
      flags: [--print[=json]] [--replace] [--progress auto|plain|tty|json] [--force-build]
             [--network host|none] [--mirror URL] [--cdi-spec-dir DIR] [site flags] [registry flags]
      A Modal file's images are named PROJECT:NAME (PROJECT: its modal.App's name, else the
      file's stem); -t NAME names the image when the file defines one (functions using the
      module's image share it). --print shows each step's cache state and key, builds nothing.
  snapbuild run [-e KEY=VALUE] [-w DIR] [--network host|none] NAME [--] [CMD [ARG...]]
  snapbuild images [--json]
  snapbuild inspect NAME
  snapbuild rm NAME
  snapbuild export NAME oci:DIR[:TAG] | oci-archive:FILE[:TAG] | docker-archive:FILE[:REF] | docker://REF [--compression zstd|gzip]
  snapbuild push NAME docker://HOST/REPO:TAG [--compression zstd|gzip]
  snapbuild pull REF...            (REF: a registry reference, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF])
  snapbuild save DIR NAME...       (an OCI layout with the named images, for an offline machine)
  snapbuild load DIR               (the images of a saved layout, under their names)
  snapbuild version

Registry flags (build, pull, push, export): --insecure-registry HOST[:PORT] (repeatable),
  --registries-conf FILE (mirrors; default: for build the site's registries_conf, else the
  containers registries.conf), --ca-file PEM

Site flags (build; see README, "Site configuration"): --site-config FILE (default:
  $SNAPBUILD_SITE_CONFIG, else /etc/snapbuild/site.yaml then ~/.config/snapbuild/site.yaml),
  --pip-index-url URL, --pip-extra-index-url URL, --pip-trusted-host HOST[:PORT],
  --uv-index-url URL, --uv-extra-index-url URL, --uv-insecure-host HOST[:PORT] (uv's defaults:
  pip's), --conda-channel-alias URL, --python-standalone-dir DIR, --uv-image REPO,
  --micromamba-image REPO; list flags are repeatable and replace the file's list

Global flag (any command): --root DIR   store directory (default: $SNAPBUILD_ROOT,
  /var/lib/snapbuild for root, $XDG_DATA_HOME/snapbuild or ~/.local/share/snapbuild)
`

func main() {
	snapbuild.Init()
	// The layer writer's parallel zstd jobs allocate briskly; a tighter GC
	// keeps the builder's peak RSS near 55 MiB instead of near 100 MiB,
	// at no measurable cost in capture time. GOGC overrides it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	os.Exit(run(os.Args[1:]))
}

// exitError carries an exit status through run.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// globalRoot is a --root given before the command.
var globalRoot string

func run(argv []string) int {
	for len(argv) > 0 && strings.HasPrefix(argv[0], "--root") {
		if v, ok := strings.CutPrefix(argv[0], "--root="); ok {
			globalRoot, argv = v, argv[1:]
		} else if argv[0] == "--root" && len(argv) > 1 {
			globalRoot, argv = argv[1], argv[2:]
		} else {
			break
		}
	}
	if len(argv) == 0 || argv[0] == "-h" || argv[0] == "--help" || argv[0] == "help" {
		fmt.Print(usage)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := argv[0], argv[1:]; cmd {
	case "build":
		err = cmdBuild(ctx, args)
	case "run":
		err = cmdRun(ctx, args)
	case "images":
		err = cmdImages(args)
	case "inspect":
		err = cmdInspect(args)
	case "rm":
		err = cmdRm(args)
	case "export":
		err = cmdExport(ctx, args)
	case "push":
		err = cmdPush(ctx, args)
	case "pull":
		err = cmdPull(ctx, args)
	case "save":
		err = cmdSave(ctx, args)
	case "load":
		err = cmdLoad(ctx, args)
	case "version":
		err = cmdVersion()
	default:
		err = fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
	var ee exitError
	switch {
	case errors.As(err, &ee):
		return int(ee)
	case errors.Is(err, flag.ErrHelp):
		fmt.Print(usage)
		return 0
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "snapbuild: interrupted")
		return 130
	case errors.Is(err, sandbox.ErrCommandNotFound):
		fmt.Fprintf(os.Stderr, "snapbuild: %v\n", err)
		return 127
	case errors.Is(err, sandbox.ErrCommandNotExecutable):
		fmt.Fprintf(os.Stderr, "snapbuild: %v\n", err)
		return 126
	case err != nil:
		fmt.Fprintf(os.Stderr, "snapbuild: %v\n", err)
		return 1
	}
	return 0
}

// parse parses flags that may come before, between or after positional
// arguments, up to a "--"; it returns the positional arguments and what
// follows "--".
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
				return nil, nil, err
			}
			return nil, nil, fmt.Errorf("%s: %w", fs.Name(), err)
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

func newBuilder(root string, opts ...snapbuild.Option) (*snapbuild.Builder, error) {
	return snapbuild.NewBuilder(append(opts, snapbuild.WithRoot(storeRoot(root)))...)
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

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	root := fs.String("root", "", "store directory")
	workdir := fs.String("w", "", "working directory")
	network := fs.String("network", "host", "host or none")
	var env listFlag
	fs.Var(&env, "e", "KEY=VALUE (repeatable)")
	fs.SetOutput(io.Discard)
	// Flags come before the image name; everything after it is the command
	// ("--" before the command is optional).
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("run: %w", err)
	}
	rest := fs.Args()
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return errors.New("run: give an image: snapbuild run [FLAGS] NAME [--] [CMD...]")
	}
	pos := rest[:1]
	rest = rest[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	for _, e := range env {
		if !strings.Contains(e, "=") {
			return fmt.Errorf("run: -e %q: want KEY=VALUE", e)
		}
	}
	b, err := newBuilder(*root, snapbuild.WithNetwork(sandbox.Network(*network)))
	if err != nil {
		return err
	}
	defer b.Close()
	code, err := b.Run(ctx, pos[0], rest, snapbuild.RunOptions{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: env, Workdir: *workdir,
	})
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError(code)
	}
	return nil
}

func cmdImages(args []string) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	root := fs.String("root", "", "store directory")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, _, err := parse(fs, args); err != nil {
		return err
	}
	b, err := newBuilder(*root)
	if err != nil {
		return err
	}
	defer b.Close()
	imgs, err := b.Images()
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
// checks their count against want (a usage line), and opens the store.
func storeArgs(name string, args []string, ok func(n int) bool, want string) (*snapbuild.Builder, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	root := fs.String("root", "", "store directory")
	pos, _, err := parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if !ok(len(pos)) {
		return nil, nil, fmt.Errorf("%s: usage: snapbuild %s", name, want)
	}
	b, err := newBuilder(*root)
	return b, pos, err
}

func exactly(n int) func(int) bool { return func(m int) bool { return m == n } }

func cmdInspect(args []string) error {
	b, pos, err := storeArgs("inspect", args, exactly(1), "inspect NAME|ID")
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := b.Metadata(context.Background(), pos[0]); err != nil {
		fmt.Fprintf(os.Stderr, "snapbuild: could not probe the image's metadata: %v\n", err)
	}
	info, err := b.Inspect(pos[0])
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(info)
}

// cmdRm removes each name given, reporting every failure.
func cmdRm(args []string) error {
	b, pos, err := storeArgs("rm", args, func(n int) bool { return n > 0 }, "rm NAME...")
	if err != nil {
		return err
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

func cmdVersion() error {
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
