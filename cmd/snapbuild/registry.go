package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/snapbuild/snapbuild"
	"github.com/snapbuild/snapbuild/registry"
)

// registryFlags are the flags of every command that talks to registries.
type registryFlags struct {
	insecure listFlag
	conf     *string
	caFile   *string
}

func addRegistryFlags(fs *flag.FlagSet) *registryFlags {
	r := &registryFlags{}
	fs.Var(&r.insecure, "insecure-registry", "`HOST[:PORT]` to reach over plain HTTP or unverified TLS (repeatable)")
	r.conf = fs.String("registries-conf", "", "registries.conf `FILE` with mirrors (default: $CONTAINERS_REGISTRIES_CONF, ~/.config/containers/registries.conf, /etc/containers/registries.conf)")
	r.caFile = fs.String("ca-file", "", "PEM `FILE` of extra CA certificates for registries")
	return r
}

// options turns the flags into builder options.
func (r *registryFlags) options() ([]snapbuild.Option, error) {
	var conf *registry.Config
	var err error
	if *r.conf != "" {
		conf, err = registry.LoadConfig(*r.conf)
	} else {
		conf, err = registry.LoadFirstConfig(registry.DefaultConfigPaths()...)
	}
	if err != nil {
		return nil, err
	}
	opts := []registry.Option{registry.WithRegistriesConfig(conf), registry.WithLogf(func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	})}
	if len(r.insecure) > 0 {
		opts = append(opts, registry.WithInsecureRegistries(r.insecure...))
	}
	if *r.caFile != "" {
		opts = append(opts, registry.WithCAFile(*r.caFile))
	}
	return []snapbuild.Option{snapbuild.WithRegistryOptions(opts...),
		// An offline site's mirror of Docker Hub serves debian_slim's
		// python image, as on Modal; otherwise Debian is bootstrapped.
		snapbuild.WithDebianSlimFromRegistry(conf.Redirected(snapbuild.DebianSlimImage("3.11")))}, nil
}

func cmdPull(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	root := rootFlag(fs)
	reg := addRegistryFlags(fs)
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("pull: usage: snapbuild pull REF... (docker://REF, REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF]; see 'snapbuild pull --help')")
	}
	for _, ref := range pos {
		// Before the store is made: a failed pull leaves no store behind.
		if err := checkPullRef(ref); err != nil {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
	}
	opts, err := reg.options()
	if err != nil {
		return err
	}
	p, err := progressFor("plain")
	if err != nil {
		return err
	}
	b, err := newBuilder(*root, append(opts, snapbuild.WithProgress(p))...)
	if err != nil {
		return err
	}
	defer b.Close()
	for _, ref := range pos {
		info, err := b.Pull(ctx, ref, nil)
		if err != nil {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		fmt.Printf("%s %s %s\n", ref, info.ID, info.Manifest.Digest)
		switch {
		case len(info.Names) == 0:
			fmt.Fprintf(os.Stderr, "snapbuild: %s names no image: refer to it by its ID, %s (from_id, run, export)\n", ref, info.ID)
		case !slices.Contains(info.Names, strings.TrimPrefix(ref, "docker://")):
			fmt.Fprintf(os.Stderr, "snapbuild: %s is named %s\n", ref, strings.Join(info.Names, ", "))
		}
	}
	return nil
}

// checkPullRef checks a pull's reference before the store is made: its
// form, and that an air-gapped source's file or directory exists.
func checkPullRef(ref string) error {
	r, err := registry.ParseReference(ref)
	if err != nil {
		return err
	}
	if r.Transport == registry.Docker {
		return snapbuild.ValidateName(strings.TrimPrefix(ref, "docker://"))
	}
	if _, err := os.Stat(r.Path); err != nil {
		return fmt.Errorf("%s: %w", r.Transport, err)
	}
	return nil
}

// cmdExport writes an image to a file, a layout or a registry; cmdPush is
// the same for registries only.
func cmdExport(ctx context.Context, args []string) error { return exportOrPush(ctx, "export", args) }
func cmdPush(ctx context.Context, args []string) error   { return exportOrPush(ctx, "push", args) }

func exportOrPush(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	root := rootFlag(fs)
	compression := fs.String("compression", "", "layer compression `ALGORITHM`: gzip or zstd (default: gzip for push, docker-archive: and oci-archive:, which Docker before 23 and umoci 0.4 need; oci: keeps the store's zstd)")
	reg := addRegistryFlags(fs)
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		if name == "push" {
			return usagef("push: usage: snapbuild push NAME docker://HOST/REPO:TAG [--compression gzip|zstd] (see 'snapbuild push --help')")
		}
		return usagef("export: usage: snapbuild export NAME oci:DIR[:TAG] | oci-archive:FILE[:TAG] | docker-archive:FILE[:REF] | docker://REF [--compression gzip|zstd] (see 'snapbuild export --help')")
	}
	opts, err := reg.options()
	if err != nil {
		return err
	}
	b, err := openBuilder(*root, opts...)
	if err != nil {
		return noImage(pos[:1], err)
	}
	defer b.Close()
	o := snapbuild.ExportOptions{Compression: *compression}
	if name == "push" {
		err = b.Push(ctx, pos[0], pos[1], o)
	} else {
		err = b.ExportWith(ctx, pos[0], pos[1], o)
	}
	if err == nil {
		fmt.Printf("%s %s\n", map[string]string{"push": "pushed", "export": "exported"}[name], pos[1])
	}
	return err
}

// cmdSave writes named images into one OCI layout directory, each tagged
// with its name, for moving them to an offline machine; cmdLoad reads them
// back (or any oci:, oci-archive: or docker-archive: source) under their
// names.
func cmdSave(ctx context.Context, args []string) error {
	b, pos, err := storeArgs("save", args, func(n int) bool { return n >= 2 }, "save DIR NAME... (an OCI layout directory; tar it to carry it)", openBuilder)
	if err != nil {
		return noImage(pos[min(1, len(pos)):], err)
	}
	defer b.Close()
	dir, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	if strings.Contains(dir, ":") {
		return fmt.Errorf("save: %s: the directory path cannot contain \":\"", dir)
	}
	for _, n := range pos[1:] {
		if err := b.Export(n, "oci:"+dir+":"+n); err != nil {
			return fmt.Errorf("save %s: %w", n, err)
		}
		fmt.Printf("saved %s\n", n)
	}
	return nil
}

func cmdLoad(ctx context.Context, args []string) error {
	// The store is made only once DIR is known to hold images, so that a
	// failed load leaves no store behind.
	var root string
	_, pos, err := storeArgs("load", args, exactly(1), "load DIR (a directory written by snapbuild save, or any OCI layout)",
		func(r string, _ ...snapbuild.Option) (*snapbuild.Builder, error) { root = r; return nil, nil })
	if err != nil {
		return err
	}
	names, err := registry.LayoutNames(pos[0])
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if len(names) == 0 {
		return fmt.Errorf("load: %s holds no tagged image (snapbuild save tags each image with its name)", pos[0])
	}
	b, err := newBuilder(root)
	if err != nil {
		return err
	}
	defer b.Close()
	dir, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	for _, n := range names {
		info, err := b.PullAs(ctx, "oci:"+dir+":"+n, n, nil)
		if err != nil {
			return fmt.Errorf("load %s: %w", n, err)
		}
		fmt.Printf("%s %s %s\n", n, info.ID, info.Manifest.Digest)
	}
	return nil
}
