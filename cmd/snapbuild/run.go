package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/snapbuild/snapbuild"
	"github.com/snapbuild/snapbuild/sandbox"
)

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
