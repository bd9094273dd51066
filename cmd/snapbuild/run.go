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
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/snapbuild/snapbuild"
	"github.com/snapbuild/snapbuild/sandbox"
)

// runValueFlags are run's flags that take a value; the others are booleans.
var runValueFlags = map[string]bool{"e": true, "w": true, "network": true, "security": true, "root": true, "entrypoint": true}

// runShortBools are run's one-letter boolean flags, which may be combined
// as in docker and podman ("-it").
const runShortBools = "it"

// splitShortFlags expands combined one-letter boolean flags ("-it" into
// "-i", "-t") among the flags before the image name, which is the first
// argument that is not a flag or a flag's value.
func splitShortFlags(args []string) []string {
	out := make([]string, 0, len(args)+1)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || a == "-" || !strings.HasPrefix(a, "-") {
			return append(out, args[i:]...)
		}
		name := strings.TrimLeft(a, "-")
		switch {
		case strings.Contains(name, "="):
		case runValueFlags[name]:
			if i+1 < len(args) {
				out = append(out, a)
				i++
				a = args[i]
			}
		case !strings.HasPrefix(a, "--") && len(name) > 1 && strings.Trim(name, runShortBools) == "":
			for _, c := range name {
				out = append(out, "-"+string(c))
			}
			continue
		}
		out = append(out, a)
	}
	return out
}

// parseEntrypoint reads --entrypoint as docker does (one program, not split
// at spaces; "" clears the image's), or as podman also allows, a JSON array
// of strings.
func parseEntrypoint(v string) ([]string, error) {
	if strings.HasPrefix(strings.TrimSpace(v), "[") {
		var ep []string
		if err := json.Unmarshal([]byte(v), &ep); err != nil {
			return nil, fmt.Errorf("run: --entrypoint %s: a JSON array of strings was expected (%v); give one program, or [\"PROGRAM\", \"ARG\", ...]", v, err)
		}
		return ep, nil
	}
	if v == "" {
		return nil, nil
	}
	return []string{v}, nil
}

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	root := rootFlag(fs)
	workdir := fs.String("w", "", "run the command in `DIR` (default: the image's WORKDIR)")
	network := fs.String("network", "host", "`MODE`: host (the host's network), none (loopback only) or private (a namespace of its own with outbound access through slirp4netns; the host's 127.0.0.1 is 10.0.2.2)")
	security := fs.String("security", "sandbox", "`MODE`: sandbox (Docker's default capabilities, seccomp profile and no_new_privs) or insecure (every capability, no seccomp filter), as build --security")
	entrypoint := fs.String("entrypoint", "", "replace the image's ENTRYPOINT with `CMD` (\"\" clears it; a JSON array gives arguments too); the image's CMD is then not used")
	var interactive, tty bool
	fs.BoolVar(&interactive, "i", false, "keep stdin open: pass it to the command")
	fs.BoolVar(&interactive, "interactive", false, "keep stdin open: pass it to the command")
	fs.BoolVar(&tty, "t", false, "allocate a pseudo-terminal")
	fs.BoolVar(&tty, "tty", false, "allocate a pseudo-terminal")
	fs.Bool("rm", false, "accepted as docker and podman take it: the container is always removed")
	var env listFlag
	fs.Var(&env, "e", "set `KEY=VALUE` in the command's environment (repeatable; a bare KEY passes KEY's value here, if set)")
	fs.SetOutput(io.Discard)
	// Flags come before the image name; everything after it is the command
	// ("--" before the command is optional).
	if err := fs.Parse(splitShortFlags(args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &helpError{fs}
		}
		return flagError(fs, err)
	}
	if err := checkNetwork("run", *network); err != nil {
		return err
	}
	if err := checkSecurity("run", *security); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return usagef("run: give an image: snapbuild run [FLAGS] NAME [--] [CMD...] (see 'snapbuild run --help')")
	}
	pos := rest[:1]
	rest = rest[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	envs, err := runEnv(env, os.LookupEnv)
	if err != nil {
		return err
	}
	opts := snapbuild.RunOptions{Stdout: os.Stdout, Stderr: os.Stderr, Env: envs, Workdir: *workdir}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "entrypoint" {
			opts.ReplaceEntrypoint = true
		}
	})
	if opts.ReplaceEntrypoint {
		ep, err := parseEntrypoint(*entrypoint)
		if err != nil {
			return err
		}
		opts.Entrypoint = ep
	}
	// As docker run: without -i the command gets no stdin.
	if interactive {
		opts.Stdin = os.Stdin
	}
	if tty {
		restore, t, err := hostTerminal(interactive)
		if err != nil {
			return err
		}
		defer restore()
		opts.Terminal = t
	}
	b, err := openBuilder(*root, snapbuild.WithNetwork(sandbox.Network(*network)), snapbuild.WithSecurity(sandbox.Security(*security)))
	if err != nil {
		return noImage(pos, err)
	}
	defer b.Close()
	code, err := b.Run(ctx, pos[0], rest, opts)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError(code)
	}
	return nil
}

// hostTerminal prepares the host side of `run -t`: the window size of the
// host terminal (stdin's, else stdout's) now and on SIGWINCH and, with -i,
// stdin in raw mode, so that every key (Ctrl-C too) reaches the container's
// pty, whose line discipline acts on it. restore undoes both.
func hostTerminal(interactive bool) (restore func(), t *sandbox.Terminal, err error) {
	inFd, outFd := int(os.Stdin.Fd()), int(os.Stdout.Fd())
	sizeFd := -1
	switch {
	case term.IsTerminal(inFd):
		sizeFd = inFd
	case term.IsTerminal(outFd):
		sizeFd = outFd
	}
	if interactive && sizeFd != inFd {
		// docker's words.
		return nil, nil, errors.New("run: the input device is not a TTY: -it needs stdin to be a terminal; drop -t to pipe stdin into the command")
	}
	t = &sandbox.Terminal{}
	var stops []func()
	restore = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if sizeFd < 0 {
		return restore, t, nil
	}
	size := func() sandbox.WinSize {
		w, h, err := term.GetSize(sizeFd)
		if err != nil || w < 0 || h < 0 || w > 0xffff || h > 0xffff {
			return sandbox.WinSize{}
		}
		return sandbox.WinSize{Width: uint16(w), Height: uint16(h)}
	}
	t.Size = size()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	resize := make(chan sandbox.WinSize, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				select {
				case resize <- size():
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	t.Resize = resize
	stops = append(stops, func() { signal.Stop(winch); close(done) })
	if interactive {
		old, err := term.MakeRaw(inFd)
		if err != nil {
			restore()
			return nil, nil, fmt.Errorf("run: putting the terminal in raw mode: %w", err)
		}
		stops = append(stops, func() { _ = term.Restore(inFd, old) })
	}
	return restore, t, nil
}

// runEnv resolves run's -e values as docker and podman do: KEY=VALUE is
// kept, a bare KEY takes the value KEY has here and is left out when KEY is
// not set.
func runEnv(env []string, lookup func(string) (string, bool)) ([]string, error) {
	var out []string
	for _, e := range env {
		switch k, _, ok := strings.Cut(e, "="); {
		case k == "":
			return nil, usagef("run: -e %q: want KEY=VALUE or KEY", e)
		case ok:
			out = append(out, e)
		default:
			if v, set := lookup(k); set {
				out = append(out, k+"="+v)
			}
		}
	}
	return out, nil
}
