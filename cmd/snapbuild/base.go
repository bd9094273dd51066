package main

import (
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

	"github.com/snapbuild/snapbuild"
	"github.com/snapbuild/snapbuild/siteconfig"
)

// cmdBase runs snapbuild base ls and snapbuild base update.
func cmdBase(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("base: give a subcommand: ls or update (see 'snapbuild base --help')")
	}
	switch args[0] {
	case "ls", "list":
		return cmdBaseLs(args[1:])
	case "update":
		// A moved base is bootstrapped again: that needs the namespace
		// (ls does not).
		if enterNamespace != nil && !wantsHelp(args[1:]) {
			enterNamespace()
		}
		return cmdBaseUpdate(ctx, args[1:])
	case "-h", "-help", "--help":
		// The help lists the flags of both subcommands.
		fs := flag.NewFlagSet("base", flag.ContinueOnError)
		updateFlags(fs)
		fs.Bool("json", false, "print JSON: the bases (ls), what was done to each (update)")
		return &helpError{fs}
	}
	return usagef("base: unknown subcommand %q: use ls or update (see 'snapbuild base --help')", args[0])
}

func cmdBaseLs(args []string) error {
	fs := flag.NewFlagSet("base", flag.ContinueOnError)
	root := rootFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON: a list of base descriptions")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("base ls: unexpected argument %q: snapbuild base ls takes only flags", pos[0])
	}
	bases, err := listStore(*root, (*snapbuild.Builder).Bases)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(bases)
	}
	writeBases(os.Stdout, bases, time.Now())
	return nil
}

// writeBases writes the table of snapbuild base ls.
func writeBases(w io.Writer, bases []snapbuild.BaseInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUITE\tBASE ID\tRELEASE\tARCHIVE DATE\tPYTHON\tBUILT\tSIZE\tIMAGES")
	for _, bi := range bases {
		release, date, built, size := "(unknown)", "-", "-", "(pruned)"
		if bi.Release != "" {
			release = bi.Release
		}
		if !bi.ArchiveDate.IsZero() {
			date = bi.ArchiveDate.UTC().Format(time.DateOnly)
		}
		if !bi.Built.IsZero() {
			built = units.HumanDuration(now.Sub(bi.Built)) + " ago"
		}
		if bi.Present {
			size = units.HumanSize(float64(bi.Size))
		}
		py := bi.Python
		if py == "" {
			py = "-"
		}
		images := strings.Join(bi.Images, ",")
		if images == "" {
			images = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", bi.Suite, bi.ID, release, date, py, built, size, images)
	}
	tw.Flush()
}

// updateFlags adds the flags of base update but --json.
func updateFlags(fs *flag.FlagSet) (root, mirror, siteFile, progress *string) {
	root = rootFlag(fs)
	mirror = fs.String("mirror", "", "Debian archive `URL` (update; default: the site configuration's debian_mirror, else $SNAPBUILD_DEBIAN_MIRROR, else http://deb.debian.org/debian)")
	siteFile = fs.String("site-config", "", "site configuration `FILE` (update; default: $SNAPBUILD_SITE_CONFIG, else /etc/snapbuild/site.yaml and ~/.config/snapbuild/site.yaml)")
	progress = fs.String("progress", "auto", "progress display `MODE` of update: auto (tty on a terminal, else plain), plain, tty or json")
	return root, mirror, siteFile, progress
}

func cmdBaseUpdate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("base", flag.ContinueOnError)
	root, mirror, siteFile, progress := updateFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON: what was done to each base")
	suites, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	site, err := loadSite(*siteFile, *mirror)
	if err != nil {
		return err
	}
	p, err := progressFor(*progress)
	if err != nil {
		return err
	}
	b, err := openBuilder(*root, snapbuild.WithProgress(p), snapbuild.WithSite(site))
	var nse *snapbuild.StoreNotExistError
	if errors.As(err, &nse) {
		return fmt.Errorf("base update: %w: it pins no base (a build of debian_slim makes one)", err)
	}
	if err != nil {
		return err
	}
	defer b.Close()
	ups, err := b.UpdateBases(ctx, suites...)
	if *asJSON {
		if ups == nil {
			ups = []snapbuild.BaseUpdate{}
		}
		if jerr := json.NewEncoder(os.Stdout).Encode(ups); jerr != nil && err == nil {
			err = jerr
		}
		return err
	}
	for _, u := range ups {
		if !u.Updated {
			fmt.Printf("%s (%s): current: %s\n", u.Suite, u.ID, u.New)
			continue
		}
		fmt.Printf("%s (%s): updated: %s → %s\n", u.Suite, u.ID, u.Old, u.New)
		for _, c := range u.Changes {
			fmt.Printf("  %s\n", c)
		}
	}
	if len(ups) == 0 && err == nil {
		fmt.Println("no Debian base is pinned in the store (a build of debian_slim makes one)")
	}
	return err
}

// loadSite reads the site configuration for base update, with --mirror
// over its debian_mirror.
func loadSite(file, mirror string) (siteconfig.Site, error) {
	s, _, err := siteconfig.Load(siteconfig.Options{File: file})
	if err != nil {
		return siteconfig.Site{}, err
	}
	if mirror != "" {
		only := siteconfig.Site{DebianMirror: mirror}
		if err := only.Validate(); err != nil {
			return siteconfig.Site{}, fmt.Errorf("base update --mirror: %w", err)
		}
		s.DebianMirror = mirror
	}
	return s, nil
}
