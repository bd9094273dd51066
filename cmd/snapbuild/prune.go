package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"

	"github.com/snapbuild/snapbuild/internal/store"
)

// openStore opens the store of a prune or df; nil, and no error, when it
// does not exist (it holds nothing). df reads only records and sizes, so
// it passes store.AnyIDMap: like images, it works on a store of either
// rootless ID mapping.
func openStore(root string, opts ...store.OpenOption) (*store.Store, error) {
	root = storeRoot(root)
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return store.Open(root, opts...)
}

// pruneFlags are prune's options, parsed.
type pruneFlags struct {
	opts  store.PruneOptions
	force bool
}

// parsePrune reads prune's flags; every mistake is a usage error naming
// the flag.
func parsePrune(fs *flag.FlagSet, args []string) (pruneFlags, *string, error) {
	var p pruneFlags
	root := rootFlag(fs)
	fs.BoolVar(&p.opts.All, "a", false, "remove all build cache, also the entries whose files named images hold")
	fs.BoolVar(&p.opts.All, "all", false, "remove all build cache, also the entries whose files named images hold")
	fs.BoolVar(&p.force, "f", false, "do not prompt for confirmation")
	fs.BoolVar(&p.force, "force", false, "do not prompt for confirmation")
	keep := fs.String("keep-storage", "", "remove entries, oldest first, only until the build cache takes at most `SIZE` (bytes, or 512MB, 10GB: units of 1024)")
	var filters listFlag
	fs.Var(&filters, "filter", "remove only entries last used more than DURATION ago, with `until=DURATION` (Go durations: 90m, 24h)")
	pos, _, err := parse(fs, args)
	if err != nil {
		return p, nil, err
	}
	if len(pos) > 0 {
		return p, nil, usagef("prune: unexpected argument %q: snapbuild prune takes only flags (see 'snapbuild prune --help')", pos[0])
	}
	if *keep != "" {
		n, err := units.RAMInBytes(*keep)
		if err != nil || n < 0 {
			return p, nil, usagef("--keep-storage %s: not a size: give bytes or a size such as 512MB or 10GB", *keep)
		}
		p.opts.KeepStorage = n
	}
	for _, f := range filters {
		v, ok := strings.CutPrefix(f, "until=")
		if !ok {
			return p, nil, usagef("--filter %s: unknown filter: snapbuild prune takes --filter until=DURATION (such as until=24h)", f)
		}
		if p.opts.Until != 0 {
			return p, nil, usagef("--filter %s: until is given twice: give it once", f)
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return p, nil, usagef("--filter %s: not a positive duration: give one such as until=24h or until=90m", f)
		}
		p.opts.Until = d
	}
	return p, root, nil
}

func cmdPrune(ctx context.Context, args []string) error {
	p, root, err := parsePrune(flag.NewFlagSet("prune", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	if !p.force && !confirm(os.Stdin, os.Stderr, pruneWarning(p.opts)) {
		return errors.New("prune cancelled: nothing was removed (-f skips the question)")
	}
	s, err := openStore(*root)
	if err != nil || s == nil {
		if err == nil {
			fmt.Println("Total reclaimed space: 0B")
		}
		return err
	}
	defer s.Close()
	// Running builds finish first (and name their images), and none
	// starts until the prune is done.
	if err := s.LockPrune(); err != nil {
		return err
	}
	defer s.Unlock()
	rep, err := s.Prune(p.opts)
	if len(rep.Entries) > 0 {
		fmt.Println("Deleted build cache objects:")
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		for _, e := range rep.Entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Kind, shortID(e.ID), units.HumanSize(float64(e.Size)), strings.Join(strings.Fields(e.Description), " "))
		}
		tw.Flush()
		fmt.Println()
	}
	fmt.Printf("Total reclaimed space: %s\n", units.HumanSize(float64(rep.Reclaimed)))
	return err
}

// pruneWarning is the question prune asks, as docker builder prune asks it.
func pruneWarning(o store.PruneOptions) string {
	what := "the build cache that no named image uses (dangling)"
	if o.All {
		what = "all build cache: only named images will be left"
	}
	if o.Until > 0 {
		what += ", last used more than " + o.Until.String() + " ago"
	}
	if o.KeepStorage > 0 {
		what += ", oldest first, until the build cache takes at most " + units.BytesSize(float64(o.KeepStorage))
	}
	return "WARNING! This will remove " + what + ".\nAre you sure you want to continue? [y/N] "
}

// confirm asks question on w and reads the answer from r: true for y or
// yes (any case); false for anything else, or no answer.
func confirm(r io.Reader, w io.Writer, question string) bool {
	fmt.Fprint(w, question)
	line, _ := bufio.NewReader(r).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

func shortID(id string) string {
	if len(id) > 12 && !strings.HasPrefix(id, "im-") && !strings.HasPrefix(id, "registry-") {
		return id[:12]
	}
	return id
}

func cmdDf(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("df", flag.ContinueOnError)
	root := rootFlag(fs)
	var verbose bool
	fs.BoolVar(&verbose, "v", false, "list the named images and the build cache entries")
	fs.BoolVar(&verbose, "verbose", false, "list the named images and the build cache entries")
	asJSON := fs.Bool("json", false, "print JSON: the sizes (bytes), the named images and the cache entries")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("df: unexpected argument %q: snapbuild df takes only flags", pos[0])
	}
	u := store.Usage{Images: []store.ImageUsage{}, Cache: []store.CacheEntry{}}
	s, err := openStore(*root, store.AnyIDMap)
	if err != nil {
		return err
	}
	if s != nil {
		defer s.Close()
		if err := s.LockShared(); err != nil {
			return err
		}
		u, err = s.DiskUsage()
		s.Unlock()
		if err != nil {
			return err
		}
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(u)
	}
	writeUsageTable(os.Stdout, u, verbose)
	return nil
}

// writeUsageTable prints u as podman system df and docker system df do.
func writeUsageTable(w io.Writer, u store.Usage, verbose bool) {
	// Package caches get a row of their own, out of the build cache's:
	// they hold no layers and no named image shares them.
	shared, pkgs := 0, 0
	var pkgSize int64
	for _, e := range u.Cache {
		if e.Shared {
			shared++
		}
		if e.Kind == "package-cache" {
			pkgs++
			pkgSize += e.Size
		}
	}
	pct := func(part, whole int64) string {
		if whole == 0 {
			return "0%"
		}
		return fmt.Sprintf("%d%%", part*100/whole)
	}
	size := func(n int64) string { return units.HumanSize(float64(n)) }
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tTOTAL\tKEPT\tSIZE\tRECLAIMABLE")
	fmt.Fprintf(tw, "Images\t%d\t%d\t%s\t0B (0%%)\n", len(u.Images), len(u.Images), size(u.ImagesSize))
	cacheSize, reclaimable := u.CacheSize-pkgSize, u.CacheReclaimable-pkgSize
	fmt.Fprintf(tw, "Build cache\t%d\t%d\t%s\t%s (%s)\n", len(u.Cache)-pkgs, shared, size(cacheSize), size(reclaimable), pct(reclaimable, cacheSize))
	fmt.Fprintf(tw, "Package caches\t%d\t0\t%s\t%s (%s)\n", pkgs, size(pkgSize), size(pkgSize), pct(pkgSize, pkgSize))
	fmt.Fprintf(tw, "Unreferenced\t%d\t0\t%s\t%s (%s)\n", u.Unreferenced, size(u.UnreferencedSize), size(u.UnreferencedSize), pct(u.UnreferencedSize, u.UnreferencedSize))
	fmt.Fprintf(tw, "Volumes\t-\t-\t%s\t0B (0%%)\n", size(u.VolumesSize))
	fmt.Fprintf(tw, "Build logs\t-\t-\t%s\t0B (0%%)\n", size(u.LogsSize))
	tw.Flush()
	fmt.Fprintf(w, "\nprune frees %s; prune --all frees %s (KEPT: what prune without --all keeps).\n",
		size(u.CacheReclaimable+u.UnreferencedSize), size(u.CacheSize+u.UnreferencedSize))
	if !verbose {
		return
	}
	fmt.Fprintln(w, "\nImages:")
	tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIMAGE ID\tSIZE\tUNIQUE SIZE")
	for _, im := range u.Images {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.Join(im.Names, ", "), im.ID, size(im.Size), size(im.Unique))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nBuild cache:")
	tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tSIZE\tLAST USED\tKEPT\tDESCRIPTION")
	for _, e := range u.Cache {
		desc := strings.Join(strings.Fields(e.Description), " ")
		if len(desc) > 60 {
			desc = desc[:57] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%t\t%s\n", e.Kind, shortID(e.ID), size(e.Size), units.HumanDuration(time.Since(e.LastUsed)), e.Shared, desc)
	}
	tw.Flush()
}
