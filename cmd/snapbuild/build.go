package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/snapbuild/snapbuild"
	"github.com/snapbuild/snapbuild/frontend"
	"github.com/snapbuild/snapbuild/sandbox"
)

// printFlag is --print (text) or --print=json.
type printFlag string

func (p *printFlag) String() string   { return string(*p) }
func (p *printFlag) IsBoolFlag() bool { return true }
func (p *printFlag) Set(s string) error {
	switch s {
	case "true", "text":
		*p = "text"
	case "json":
		*p = "json"
	case "false":
		*p = ""
	default:
		return fmt.Errorf("--print=%s: use --print (text) or --print=json", s)
	}
	return nil
}

func cmdBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	root := fs.String("root", "", "store directory")
	tag := fs.String("t", "", "name of the image")
	module := fs.String("m", "", "a Python module PKG.MODULE[::NAME], imported as `modal run -m` does")
	var dry printFlag
	fs.Var(&dry, "print", "print what would be built (text, or --print=json), build nothing")
	replace := fs.Bool("replace", false, "move names that images from other files have")
	progress := fs.String("progress", "auto", "plain, tty, json or auto")
	force := fs.Bool("force-build", false, "rebuild every step")
	network := fs.String("network", "host", "network of RUN steps: host or none")
	mirror := fs.String("mirror", "", "Debian archive for debian_slim bases")
	reg := addRegistryFlags(fs)
	siteFl := addSiteFlags(fs)
	var cdiDirs listFlag
	fs.Var(&cdiDirs, "cdi-spec-dir", "directory of CDI specs for gpu= steps (repeatable; default /etc/cdi and /var/run/cdi)")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	site, err := siteFl.load(*mirror)
	if err != nil {
		return err
	}
	defs, err := definitions(ctx, pos, *module, *tag)
	if err != nil {
		return err
	}
	var gs []group
	if *tag != "" {
		if gs, err = nameWithTag(*tag, defs); err != nil {
			return err
		}
	} else {
		gs = groups(defs)
	}
	for _, g := range gs {
		for _, d := range g.defs {
			if err := snapbuild.ValidateName(d.name); err != nil {
				return fmt.Errorf("build: %s: %w; name it with -t NAME", d.label, err)
			}
		}
	}
	p, err := progressFor(*progress)
	if err != nil {
		return err
	}
	opts := []snapbuild.Option{snapbuild.WithProgress(p), snapbuild.WithNetwork(sandbox.Network(*network)), snapbuild.WithSite(site)}
	if *force {
		opts = append(opts, snapbuild.WithForceBuild(true))
	}
	if *reg.conf == "" {
		*reg.conf = site.RegistriesConf
	}
	regOpts, err := reg.options()
	if err != nil {
		return err
	}
	opts = append(opts, regOpts...)
	if len(cdiDirs) > 0 {
		abs := make([]string, len(cdiDirs))
		for i, d := range cdiDirs {
			if abs[i], err = filepath.Abs(d); err != nil {
				return err
			}
		}
		opts = append(opts, snapbuild.WithCDISpecDirs(abs...))
	}
	b, err := newBuilder(*root, opts...)
	if err != nil {
		return err
	}
	defer b.Close()
	if dry != "" {
		return printPlans(ctx, b, gs, string(dry), os.Stdout)
	}
	var refused []error
	for _, g := range gs {
		d := g.defs[0]
		res, err := b.Build(ctx, d.image)
		if err != nil {
			return fmt.Errorf("build %s: %w", d.name, err)
		}
		for _, d := range g.defs {
			t, err := b.TagResultWith(d.name, res, snapbuild.TagOptions{Source: d.source, Replace: *replace || *tag != ""})
			var taken *snapbuild.NameTakenError
			if errors.As(err, &taken) {
				refused = append(refused, fmt.Errorf("%s: %w", d.label, err))
				continue
			}
			if err != nil {
				return err
			}
			if t.Previous != "" {
				from := ""
				if t.PreviousSource != "" && t.PreviousSource != d.source {
					from = ", built from " + t.PreviousSource
				}
				fmt.Fprintf(os.Stderr, "%s: moved from %s%s\n", d.name, t.Previous, from)
			}
			if *progress == "json" {
				json.NewEncoder(os.Stdout).Encode(map[string]any{"kind": "image", "name": d.name, "id": res.ID,
					"manifest": res.Manifest.Digest, "stats": res.Stats, "previous": t.Previous, "peakRSSKiB": peakRSSKiB()})
			} else {
				fmt.Printf("%s %s %s (%d steps, %d cached, %d containers)\n", d.name, res.ID, res.Manifest.Digest,
					res.Stats.Steps, res.Stats.Cached, res.Stats.ContainersStarted)
			}
		}
	}
	return errors.Join(refused...)
}

// definitions reads what the build command's arguments name: a recipe file
// and some of its images (FILE [IMAGE...]), Modal files (APP.py[::NAME]...)
// or a module (-m PKG.MODULE[::NAME]).
func definitions(ctx context.Context, pos []string, module, tag string) ([]definition, error) {
	if module != "" {
		if len(pos) > 0 {
			return nil, fmt.Errorf("build: -m %s builds a module's images; the other arguments (%s) are not used: remove them, or pick an image with -m %s::NAME", module, strings.Join(pos, " "), module)
		}
		return loadPython(ctx, module, true)
	}
	if len(pos) == 0 {
		return nil, errors.New("build: give a recipe file, a Python file or a module: snapbuild build FILE [IMAGE...], snapbuild build app.py[::NAME], snapbuild build -m pkg.module[::NAME]")
	}
	if !isPythonRef(pos[0]) {
		defs, err := loadRecipe(pos[0], tag)
		if err != nil {
			return nil, err
		}
		if want := pos[1:]; len(want) > 0 {
			var sel []definition
			for _, w := range want {
				found := false
				for _, d := range defs {
					if d.name == w {
						sel, found = append(sel, d), true
					}
				}
				if !found {
					return nil, fmt.Errorf("build: %s has no image %q", pos[0], w)
				}
			}
			defs = sel
		}
		return defs, nil
	}
	// snapbuild build a.py b.py::name ...: every argument is a Python file.
	var defs []definition
	from := map[string]string{}
	for _, p := range pos {
		if !isPythonRef(p) {
			return nil, fmt.Errorf("build: %s: after a Python file, give more Python files (pick an image with FILE.py::NAME)", p)
		}
		more, err := loadPython(ctx, p, false)
		if err != nil {
			return nil, err
		}
		for _, d := range more {
			if other, dup := from[d.name]; dup && other != d.source {
				return nil, fmt.Errorf("build: image name %q is given by %s and by %s: build them one at a time with -t NAME", d.name, other, d.label)
			}
			from[d.name] = d.source
		}
		defs = append(defs, more...)
	}
	return defs, nil
}

// isPythonRef reports whether arg names a Python file: FILE.py or FILE.py::NAME.
func isPythonRef(arg string) bool {
	file, _ := frontend.SplitRef(arg)
	return strings.HasSuffix(file, ".py")
}

// printPlans writes what building each group would do (Builder.Plan), as
// text or JSON, and builds nothing.
func printPlans(ctx context.Context, b *snapbuild.Builder, gs []group, format string, w io.Writer) error {
	type planJSON struct {
		Names  []string       `json:"names"`
		Labels []string       `json:"labels"`
		Plan   snapbuild.Plan `json:"plan"`
	}
	var all []planJSON
	for i, g := range gs {
		p, err := b.Plan(ctx, g.defs[0].image)
		if err != nil {
			return fmt.Errorf("build --print %s: %w", g.defs[0].name, err)
		}
		pj := planJSON{Plan: p}
		for _, d := range g.defs {
			pj.Names, pj.Labels = append(pj.Names, d.name), append(pj.Labels, d.label)
		}
		if format == "json" {
			all = append(all, pj)
			continue
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		writePlan(w, pj.Names, pj.Labels, p)
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	return nil
}

// writePlan writes one image's plan as text:
//
//	example-hello:image (app.py::image)
//	  [1] debian_slim
//	      FROM python:3.11-slim-bookworm      cached   key 5d41402abc4b
//	      CMD ["sleep", "172800"]             config
//	  [2] apt_install
//	      RUN apt-get update                  run      key 7c2e0b81a3f4  (run it (not in the cache))
//	      RUN apt-get install -y git          pending
//	  4 steps: 1 cached, 1 config, 1 to run, 1 pending
func writePlan(w io.Writer, names, labels []string, p snapbuild.Plan) {
	fmt.Fprintf(w, "%s (%s)\n", strings.Join(names, ", "), strings.Join(labels, ", "))
	width := 0
	for _, l := range p.Layers {
		for _, s := range l.Steps {
			width = max(width, min(len(firstLine(s.Instruction)), 60))
		}
	}
	total := 0
	for i, l := range p.Layers {
		if l.Runtime {
			fmt.Fprintf(w, "  [%d] %s (copy=False: attached when the image runs)\n", i+1, l.Method)
			continue
		}
		fmt.Fprintf(w, "  [%d] %s\n", i+1, l.Method)
		for _, s := range l.Steps {
			total++
			line := fmt.Sprintf("      %-*s  %-7s", width, firstLine(s.Instruction), s.State)
			if s.Key != "" {
				line += "  key " + s.Key[:12]
			}
			if s.Note != "" {
				line += "  (" + s.Note + ")"
			}
			fmt.Fprintln(w, strings.TrimRight(line, " "))
		}
	}
	n := p.Steps()
	fmt.Fprintf(w, "  %d steps: %d cached, %d config, %d to run, %d pending\n", total,
		n[snapbuild.PlanCached], n[snapbuild.PlanConfig], n[snapbuild.PlanRun], n[snapbuild.PlanPending])
}

// firstLine is s up to its first newline, marked "..." when cut (heredocs,
// multi-line RUN).
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
