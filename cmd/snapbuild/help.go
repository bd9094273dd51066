package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// A command is one snapbuild subcommand. Its --help is this text plus the
// flags of the FlagSet the command parses its arguments with (see parse),
// so a flag added to a command shows up in its help.
type command struct {
	name     string
	summary  string   // one line, shown in the command list and under Usage
	usage    []string // synopses, after "snapbuild "
	details  string   // paragraphs after the summary; may be ""
	examples []string // command lines, with "  # comment" lines allowed
	run      func(ctx context.Context, args []string) error
	// ns says when the command enters the build namespace.
	ns nsUse
}

// nsUse says when a command enters the build namespace
// (sandbox.EnterNamespace), which re-executes snapbuild once: only commands
// that mount snapshots or start containers need it, and the others run as
// one process. --help never enters it.
type nsUse int

const (
	// nsFirst: before the command runs; it mounts snapshots or starts
	// containers (run, pull and load apply layers, prune removes
	// snapshot files owned by subordinate IDs).
	nsFirst nsUse = iota
	// nsNever: the command only reads and writes the store's files.
	nsNever
	// nsOnDemand: the command runs in this process and fails with
	// snapbuild.ErrNeedsSandbox where it needs the namespace (a build
	// with a step to run, an inspect that probes an image); it then runs
	// again, from the start, in the namespace.
	nsOnDemand
	// nsRootless: before the command runs when not real root (df reads
	// snapshot files owned by subordinate IDs).
	nsRootless
)

// commands are snapbuild's subcommands, in the order the top-level help
// lists them.
var commands = []*command{
	{
		name:    "build",
		summary: "Build the images of a recipe, of Modal files, of a Python module or of a Dockerfile, and name them",
		usage: []string{
			"build RECIPE.yaml [IMAGE...] [flags]",
			"build APP.py[::NAME]... [flags]",
			"build -m PKG.MODULE[::NAME] [flags]",
			"build [-f Dockerfile] [--build-arg NAME=VALUE]... [--target STAGE] [-t NAME] [CONTEXT] [flags]",
		},
		details: `A recipe is a YAML list of modal.Image methods with Modal's arguments (one image, named
after the file, or -t NAME), or a mapping of image names to such lists. A Modal file's
images are named PROJECT:NAME (PROJECT: its modal.App's name, else the file's stem); -t
names the image when the file defines one. A Dockerfile is built as docker build builds it:
CONTEXT (default ".") is the build context, -f defaults to CONTEXT/Dockerfile (else
Containerfile, as podman), and the image is named -t NAME, else after the context directory;
the context is filtered by <Dockerfile>.dockerignore, else .containerignore (as podman),
else .dockerignore.
Every step is cached by content: an unchanged step runs nothing. Steps that do not need each
other, such as a Dockerfile's independent stages and the images of one recipe or Python file,
run at once, up to --jobs N (default: the number of CPUs); a step two images share runs once. --print shows each step's cache state and key and builds nothing.
--cache-to REF writes the step cache of a build that succeeded to a registry or OCI layout
(repeatable: each REF is written); --cache-from REF lets a store that lacks a step take it
from there (layers checked by digest and diffID; a bad cache is a warning and the step runs;
--print does not consult it): docs/cache.md.`,
		examples: []string{
			"snapbuild build examples/hello/hello.yaml",
			"snapbuild build app.py::image -t app:latest",
			"snapbuild build --print examples/hello/hello.yaml   # what would run, and why",
			"snapbuild build -t app:dev --build-arg VERSION=1.2 --target runtime .   # ./Dockerfile",
			"snapbuild build --jobs 1 -f Dockerfile .   # one step at a time",
			"id=$(snapbuild build -q -t app .)   # no progress: only the image ID",
			"snapbuild build --platform linux/amd64 -t app .   # accepted on an amd64 host only",
			"snapbuild build app.py --cache-from reg:5000/ci/cache:main --cache-to reg:5000/ci/cache:main   # CI runners share steps",
			"snapbuild build --builder buildkit://unix:///run/buildkit/buildkitd.sock examples/hello/hello.yaml   # steps run on buildkitd",
		},
		run: cmdBuild,
		ns:  nsOnDemand,
	},
	{
		name:    "run",
		summary: "Run a command in a throwaway container of an image",
		usage:   []string{"run [flags] NAME [--] [CMD [ARG...]]"},
		details: `Like a Modal Sandbox, or docker run --rm: the container's changes are discarded. Standard
input and the exit status pass through (127: command not found, 126: not executable).
Flags come before NAME; everything after NAME is the command.`,
		examples: []string{
			"snapbuild run hello",
			"snapbuild run -e GREETING=hi -w /tmp hello -- sh -c 'echo $GREETING from $(pwd)'",
			"snapbuild run -it hello bash              # an interactive shell on a terminal",
			"snapbuild run --entrypoint env hello      # replace the image's ENTRYPOINT (and CMD)",
		},
		run: cmdRun,
		ns:  nsFirst,
	},
	{
		name:     "images",
		summary:  "List the named images of the store",
		usage:    []string{"images [flags]"},
		examples: []string{"snapbuild images", "snapbuild images --json | jq -r '.[].id'"},
		run:      cmdImages,
		ns:       nsNever,
	},
	{
		name:     "inspect",
		summary:  "Describe an image as JSON: ID, manifest, config, size, names, metadata",
		usage:    []string{"inspect [flags] NAME|ID"},
		examples: []string{"snapbuild inspect hello", "snapbuild inspect hello | jq .config.config.Env"},
		run:      cmdInspect,
		ns:       nsOnDemand,
	},
	{
		name:    "rm",
		summary: "Remove image names (the content stays: it is the build cache)",
		usage:   []string{"rm [flags] NAME..."},
		details: `The image's layers and snapshots stay as build cache until snapbuild prune removes
what no named image uses (see 'snapbuild prune --help').`,
		examples: []string{
			"snapbuild rm hello",
		},
		run: cmdRm,
		ns:  nsNever,
	},
	{
		name:    "prune",
		summary: "Remove build cache that no named image uses, and content nothing references",
		usage:   []string{"prune [-a] [--filter until=DURATION] [--keep-storage SIZE] [-f] [flags]"},
		details: `As docker builder prune. Named images, with everything they hold, are never removed (remove
a name with snapbuild rm first), nor Modal volumes, nor what a running container uses.
Build cache entries are the step and solver cache records, Debian and registry base
records, images no name points at, cache mounts and file hash caches. An entry is kept
(shared) when every layer and snapshot it names is in a named image, so rebuilding a
named image stays cached; the others (dangling) are removed, with the layers, snapshots
and blobs only they held. --all removes every entry: only the named images are left, and
rebuilding them runs their steps again. --filter until=24h removes only entries last used
more than 24 hours ago. --keep-storage SIZE removes the chosen entries oldest first, and
stops once the build cache takes at most SIZE. Blobs, snapshots and records nothing
references, and what killed processes left, are removed by every prune.
prune waits until running builds have finished (their images named), and builds wait for it.`,
		examples: []string{
			"snapbuild prune -f",
			"snapbuild prune --all -f                 # keep only the named images",
			"snapbuild prune --filter until=168h -f   # dangling entries unused for a week",
			"snapbuild prune --all --keep-storage 10GB -f",
		},
		run: cmdPrune,
		ns:  nsFirst,
	},
	{
		name:    "df",
		summary: "Show what uses the store's space: images, build cache, unreferenced content",
		usage:   []string{"df [-v] [--json] [flags]"},
		details: `As podman system df and docker buildx du. Images: what the named images hold (each
layer, snapshot and blob once). Build cache: what the cache entries hold beyond the named
images; KEPT counts the shared entries prune keeps, RECLAIMABLE is what prune frees of it
(prune --all frees all of it). Package caches: the downloads of installer steps (apt, pip,
uv, poetry, micromamba), which every prune frees. Unreferenced: content nothing references
and what killed processes left. Volumes and Build logs (the last 20 builds' output): kept by prune.
Sizes are the apparent sizes of the files, in units of 1000.`,
		examples: []string{"snapbuild df", "snapbuild df -v", "snapbuild df --json | jq .cacheReclaimable"},
		run:      cmdDf,
		ns:       nsRootless,
	},
	{
		name:    "base",
		summary: "List the pinned Debian bases, or check the Debian archive for newer ones",
		usage:   []string{"base ls [--json] [flags]", "base update [SUITE...] [flags]"},
		details: `A debian_slim build uses the Debian base the store bootstrapped first for its definition
(suite, package set, Python source, snapbuild's recipe), pinned with the archive state it
came from: a build asks no mirror whether it is current, works offline, and a Debian point
release rebuilds nothing unasked (Modal fixes debian_slim per image builder version).
ls shows each pinned base: suite, base ID (its definition's hash), release and archive
date it was made from, Python, when it was built, its layer's size, and the named images
built on it. update checks the archive for the pinned bases of each SUITE (all when none
is given), as build --pull does: a base whose archive is unchanged stays; one whose
archive moved is bootstrapped again and pinned, and update names the release and the
packages whose versions changed. Images built on the old base keep it until they are
built again; build --pull (or force_build) also runs every step after a moved base.`,
		examples: []string{
			"snapbuild base ls",
			"snapbuild base ls --json | jq -r '.[] | .suite + \" \" + .release'",
			"snapbuild base update            # every pinned base",
			"snapbuild base update bookworm",
			"snapbuild build --pull app.yaml  # check the base while building",
		},
		run: cmdBase,
		ns:  nsNever, // base update enters the namespace itself (cmdBase)
	},
	{
		name:    "export",
		summary: "Write an image to an OCI layout or archive, a docker-archive, or a registry",
		usage: []string{
			"export [flags] NAME oci:DIR[:TAG]",
			"export [flags] NAME oci-archive:FILE[:TAG]",
			"export [flags] NAME docker-archive:FILE[:REF]",
			"export [flags] NAME docker://REF",
		},
		details: `A destination needs its transport prefix. Layers are gzip-compressed for docker://,
docker-archive: (always) and oci-archive:, which every consumer reads (Docker before 23
and umoci 0.4 read no zstd); oci: keeps the store's zstd layers. --compression chooses.
An OCI layout or archive records the image's full name (org.opencontainers.image.ref.name
without :TAG, and io.containerd.image.name), so podman load and ctr import name it; a
docker-archive is tagged with the image's name unless :REF is given.`,
		examples: []string{
			"snapbuild export hello oci:/tmp/hello:latest",
			"snapbuild export hello oci-archive:hello.tar && podman load -i hello.tar",
			"snapbuild export hello docker-archive:hello.tar && docker load -i hello.tar",
			"snapbuild export --compression gzip hello oci:/tmp/hello-gz   # for umoci 0.4",
		},
		run: cmdExport,
		ns:  nsOnDemand, // add_local_* copy=False files become a layer in the namespace
	},
	{
		name:    "push",
		summary: "Push an image to a registry (blobs the registry has are not sent again)",
		usage:   []string{"push [flags] NAME [docker://]HOST/REPO:TAG"},
		details: `Layers are pushed gzip-compressed, which every registry client reads (Docker before 23
reads no zstd); --compression zstd keeps the store's zstd layers for containerd, podman,
buildah, crane and Docker 23 or newer.`,
		examples: []string{
			"snapbuild push hello registry.example:5000/hello:latest",
			"snapbuild push --insecure-registry localhost:5000 hello docker://localhost:5000/hello:1   # a plain-HTTP registry",
		},
		run: cmdPush,
		ns:  nsOnDemand, // add_local_* copy=False files become a layer in the namespace
	},
	{
		name:    "pull",
		summary: "Pull images into the store, named as given, for later offline builds",
		usage:   []string{"pull [flags] REF..."},
		details: `REF is a registry reference (docker://REF or REF), oci:DIR[:TAG], oci-archive:FILE[:TAG]
or docker-archive:FILE[:REF].`,
		examples: []string{
			"snapbuild pull python:3.11-slim-bookworm",
			"snapbuild pull oci-archive:hello.tar:latest",
		},
		run: cmdPull,
		ns:  nsFirst,
	},
	{
		name:     "save",
		summary:  "Write named images to an OCI layout directory, for an offline machine",
		usage:    []string{"save [flags] DIR NAME..."},
		details:  `Each image is tagged with its name in DIR; tar DIR to carry it. snapbuild load reads it back.`,
		examples: []string{"snapbuild save /media/usb/images hello app:image"},
		run:      cmdSave,
		ns:       nsOnDemand, // as export
	},
	{
		name:     "load",
		summary:  "Read the images of a saved OCI layout into the store, under their names",
		usage:    []string{"load [flags] DIR"},
		examples: []string{"snapbuild load /media/usb/images"},
		run:      cmdLoad,
		ns:       nsFirst,
	},
	{
		name:     "version",
		summary:  "Print snapbuild's version (also snapbuild --version, -v)",
		usage:    []string{"version"},
		examples: []string{"snapbuild version"},
		run:      cmdVersion,
		ns:       nsNever,
	},
}

// rootUsage is the help text of every command's --root.
const rootUsage = "store `DIR` (default: $SNAPBUILD_ROOT, else /var/lib/snapbuild for root, $XDG_DATA_HOME/snapbuild or ~/.local/share/snapbuild for users)"

// rootFlag adds --root to a command's flags.
func rootFlag(fs *flag.FlagSet) *string { return fs.String("root", "", rootUsage) }

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// writeUsage writes the top-level help.
func writeUsage(w io.Writer) {
	fmt.Fprint(w, `snapbuild builds container images locally, rootless and offline, with the API of Modal's
modal.Image.

Usage:
  snapbuild [--root DIR] COMMAND [ARG...]
  snapbuild --help | --version

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	fmt.Fprintf(tw, "  help\tPrint the help of a command: snapbuild help COMMAND\n")
	tw.Flush()
	fmt.Fprintf(w, `
Global flags (before COMMAND; every command takes --root too):
  --root DIR      %s
  -h, --help      print this help
  -v, --version   print the version

Run 'snapbuild COMMAND --help' for more information on a command.
`, strings.ReplaceAll(rootUsage, "`", ""))
}

// writeHelp writes a command's help; fs is the FlagSet it parses, or nil
// when the command did not report one (then no flags are listed).
func writeHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintln(w, "Usage:")
	for _, u := range c.usage {
		fmt.Fprintf(w, "  snapbuild %s\n", u)
	}
	fmt.Fprintf(w, "\n%s\n", c.summary)
	if c.details != "" {
		fmt.Fprintf(w, "\n%s\n", c.details)
	}
	if len(c.examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	if fs != nil && hasFlags(fs) {
		fmt.Fprintln(w, "\nFlags:")
		writeFlags(w, fs)
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// writeFlags writes fs's flags as docker and podman do, one a line, sorted:
// "-t NAME" for a one-letter flag, "--name VALUE" for the others (Go's flag
// package takes both spellings), the value's name from a `backquoted` word
// of the usage text, and the default when it is not the zero value. Flags
// that set the same variable are spellings of one flag, listed together
// ("-i, --interactive").
func writeFlags(w io.Writer, fs *flag.FlagSet) {
	var order []flag.Value
	spellings := map[flag.Value][]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) {
		if _, seen := spellings[f.Value]; !seen {
			order = append(order, f.Value)
		}
		spellings[f.Value] = append(spellings[f.Value], f)
	})
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, v := range order {
		fl := spellings[v]
		sort.SliceStable(fl, func(i, j int) bool { return len(fl[i].Name) < len(fl[j].Name) })
		var names []string
		for _, f := range fl {
			names = append(names, dashes(f.Name))
		}
		f := fl[len(fl)-1]
		name, usage := flag.UnquoteUsage(f)
		left := strings.Join(names, ", ")
		switch name {
		case "":
		case "string", "value":
			left += " " + strings.ToUpper(f.Name)
		default:
			left += " " + name
		}
		switch f.DefValue {
		case "", "false", "0", "[]":
		default:
			usage += fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", left, usage)
	}
	tw.Flush()
}

// helpError asks run to print a command's help: its FlagSet saw -h or
// --help.
type helpError struct{ fs *flag.FlagSet }

func (e *helpError) Error() string { return flag.ErrHelp.Error() }
func (e *helpError) Unwrap() error { return flag.ErrHelp }

// usageError is a mistake in a command line (an unknown command or flag, a
// missing argument): run prints it once and exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitUsage is the exit status of a usage error: 125, as podman's (and
// docker run's) for an error of the tool itself, so that it cannot be taken
// for the status of a command that snapbuild run ran in a container, which
// passes through.
const exitUsage = 125

// flagError turns an error of fs.Parse into one that names the command,
// suggests the flag meant, and points at the command's help.
func flagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		name = strings.TrimPrefix(name, "-")
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		msg = "unknown flag " + dashes(name)
		if h, ok := dockerFlagHints[fs.Name()+" "+name]; ok {
			msg += ": " + h
		} else if s := suggest(name, names); s != "" {
			msg += "; did you mean " + dashes(s) + "?"
		}
	}
	// flag spells a bad value's flag with one dash (invalid value "0"
	// for flag -jobs: ...); the help spells it --jobs.
	if before, after, ok := strings.Cut(msg, " for flag -"); ok && strings.HasPrefix(before, "invalid value ") {
		if name, rest, ok := strings.Cut(after, ":"); ok {
			// flag's Duration says only "parse error" ("5" lacks a unit).
			if f := fs.Lookup(name); f != nil && strings.TrimSpace(rest) == "parse error" {
				if g, ok := f.Value.(flag.Getter); ok {
					if _, ok := g.Get().(time.Duration); ok {
						rest = " not a duration: give a number with a unit, such as 30s, 5m or 1h30m"
					}
				}
			}
			msg = before + " for flag " + dashes(name) + ":" + rest
		}
	}
	return usagef("%s: %s (see 'snapbuild %s --help')", fs.Name(), msg, fs.Name())
}

// dockerFlagHints answer flags docker and podman users type out of habit
// ("COMMAND NAME"), where a suggestion by spelling would mislead.
var dockerFlagHints = map[string]string{
	"build no-cache": "snapbuild's --force-build rebuilds every step",
}

// dashes spells a flag name as the help does.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// suggest returns the candidate closest to s, as cobra's "did you mean"
// does: within an edit distance of 2 (or 1 for names of up to 3 letters),
// or having s as a prefix; "" when none is close.
func suggest(s string, candidates []string) string {
	limit := 2
	if len(s) <= 3 {
		limit = 1
	}
	best, bestD := "", limit+1
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	for _, c := range sorted {
		d := editDistance(strings.ToLower(s), c)
		if d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" && len(s) >= 2 {
		for _, c := range sorted {
			if strings.HasPrefix(c, strings.ToLower(s)) {
				return c
			}
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, with a swap of
// two neighbours counting 1 ("biuld" is 1 from "build").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// unknownCommand is the error for a command snapbuild does not have.
func unknownCommand(name string) error {
	names := []string{"help"}
	for _, c := range commands {
		names = append(names, c.name)
	}
	msg := fmt.Sprintf("unknown command %q", name)
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return usagef("%s (see 'snapbuild --help')", msg)
}
