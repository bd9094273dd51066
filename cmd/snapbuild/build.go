package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snapbuild/snapbuild"
	"github.com/snapbuild/snapbuild/frontend"
	"github.com/snapbuild/snapbuild/internal/remotecache"
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

// jobsFlag is build's --jobs: how many independent steps of a build graph
// may run at once; 0 (not given) leaves snapbuild's default, the number of
// CPUs. buildah bud's --jobs defaults to 1 instead.
type jobsFlag int

func (j *jobsFlag) String() string { return strconv.Itoa(int(*j)) }
func (j *jobsFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return fmt.Errorf("give a whole number of at least 1 (1 runs one step at a time)")
	}
	*j = jobsFlag(n)
	return nil
}

func cmdBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	root := rootFlag(fs)
	var tags listFlag
	fs.Var(&tags, "t", "`NAME` of the image (repeatable: several names)")
	fs.Var(&tags, "tag", "`NAME` of the image (repeatable: several names)")
	module := fs.String("m", "", "build the images of Python module `PKG.MODULE[::NAME]`, imported as modal run -m does")
	var df dockerfileFlags
	fs.StringVar(&df.file, "f", "", "build the Dockerfile `FILE` (default CONTEXT/Dockerfile, else CONTEXT/Containerfile), as docker build -f")
	fs.StringVar(&df.file, "file", "", "build the Dockerfile `FILE` (default CONTEXT/Dockerfile, else CONTEXT/Containerfile), as docker build -f")
	fs.Var(&df.buildArgs, "build-arg", "set the Dockerfile's ARG `NAME=VALUE` (repeatable; NAME alone takes the environment's value)")
	fs.Var(&df.secrets, "secret", "give the Dockerfile's RUN --mount=type=secret the secret `id=ID,src=FILE` (or id=ID,env=VAR; repeatable); never stored")
	fs.StringVar(&df.target, "target", "", "build the Dockerfile's `STAGE` (default: the last); stages it does not need are not built")
	var dry printFlag
	fs.Var(&dry, "print", "print what would be built (text, or --print=json), build nothing")
	replace := fs.Bool("replace", false, "move names that images from other files have")
	progress := fs.String("progress", "auto", "progress display `MODE`: auto (tty on a terminal, else plain), plain, tty or json")
	var quiet bool
	fs.BoolVar(&quiet, "q", false, "show no progress and print only the image ID, one line per image built, as docker build -q and podman build -q (errors still go to standard error)")
	fs.BoolVar(&quiet, "quiet", false, "show no progress and print only the image ID, one line per image built, as docker build -q and podman build -q (errors still go to standard error)")
	force := fs.Bool("force-build", false, "rebuild every step (a pinned Debian base is checked as with --pull)")
	pull := fs.Bool("pull", false, "check bases for newer ones, as docker build --pull: pull from_registry and FROM images again, and check pinned Debian bases against the archive (a moved one is bootstrapped again and every later step runs again)")
	noPkgCache := fs.Bool("no-package-cache", false, "give installer steps (apt_install, pip_install, uv_pip_install, ...) no package caches: they download everything again, as on a new store (images and cache keys are the same either way)")
	var jobs jobsFlag
	fs.Var(&jobs, "jobs", "run at most `N` independent steps at once, such as a Dockerfile's stages that do not need each other, as buildah bud --jobs (default: the number of CPUs)")
	network := fs.String("network", "host", "network `MODE` of RUN steps: host (the host's network namespace, without raw sockets), none (loopback only) or private (a namespace of its own with outbound access through slirp4netns; the host's 127.0.0.1 is 10.0.2.2, host.containers.internal; DNS through 10.0.2.3)")
	security := fs.String("security", "sandbox", "security `MODE` of RUN steps: sandbox (Docker's default capabilities, seccomp profile and no_new_privs; no raw sockets with the host network) or insecure (every capability, no seccomp filter: BuildKit's security.insecure, for the rare step that needs it; also lets a Dockerfile's RUN --security=insecure run)")
	platform := fs.String("platform", "", "build for `OS/ARCH[/VARIANT]`, as docker build --platform: only the host's platform is accepted ("+snapbuild.HostPlatform()+"; every step runs natively, without emulation)")
	timestamps := fs.String("timestamps", "clamp", "file mtimes in layers: clamp (to SOURCE_DATE_EPOCH, reproducible) or keep (as the steps left them)")
	mirror := fs.String("mirror", "", "Debian archive `URL` for debian_slim bases")
	loadTimeout := fs.Duration("load-timeout", defaultLoadTimeout, "stop reading a Python file (APP.py, -m) that is still loading after `DURATION` (0: no limit)")
	reg := addRegistryFlags(fs)
	siteFl := addSiteFlags(fs)
	var cacheFrom listFlag
	fs.Var(&cacheFrom, "cache-from", "take steps the store lacks from the step cache at `REF` (docker://HOST/REPO:TAG, HOST/REPO:TAG, oci:DIR:TAG, or buildx's type=registry,ref=REF / type=local,src=DIR; repeatable, first match wins); a cache that cannot be read or a layer that fails its checks is a warning and the step runs")
	var cacheTo listFlag
	fs.Var(&cacheTo, "cache-to", "after a successful build, write its step cache to `REF` (as --cache-from, or buildx's type=registry,ref=REF,mode=max / type=local,dest=DIR[,tag=TAG]; a REF without a tag gets latest); mode=min (default) writes the steps of the images built, mode=max every step; ignore-error=true makes a failed export a warning; repeatable: each REF is written")
	bk := addBuilderFlags(fs)
	push := fs.String("push", "", "push the image built to `REF` ([docker://]HOST/REPO:TAG) once it is built and named, as snapbuild push NAME REF does (one image only)")
	var cdiDirs listFlag
	fs.Var(&cdiDirs, "cdi-spec-dir", "`DIR` of CDI specs for gpu= steps (repeatable; default /etc/cdi and /var/run/cdi)")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := checkNetwork("build", *network); err != nil {
		return err
	}
	if err := checkSecurity("build", *security); err != nil {
		return err
	}
	ts, err := snapbuild.ParseTimestamps(*timestamps)
	if err != nil {
		return usagef("build: --timestamps: %v", err)
	}
	if *platform != "" {
		if strings.Contains(*platform, ",") {
			return usagef("build: --platform %s: snapbuild builds for one platform, the host's (%s): every step runs natively, without emulation; give --platform %s or leave it out", *platform, snapbuild.HostPlatform(), snapbuild.HostPlatform())
		}
		if err := snapbuild.ValidatePlatform(*platform); err != nil {
			// "build: --platform linux/arm64: snapbuild builds for ..."
			return usagef("build: --%v", err)
		}
	}
	if quiet {
		if dry != "" {
			return usagef("build: -q prints the ID of the image a build makes, and --print builds nothing: give one or the other (see 'snapbuild build --help')")
		}
		if flagSet(fs, "progress") {
			return usagef("build: -q shows no progress, and --progress %s chooses how to show it: give one or the other (see 'snapbuild build --help')", *progress)
		}
	}
	site, err := siteFl.load(*mirror)
	if err != nil {
		return err
	}
	if *loadTimeout < 0 {
		return usagef("build: --load-timeout %v: give a duration such as 30s or 5m, or 0 for no limit", *loadTimeout)
	}
	// Cache references are checked here, --print or not: a digest, an
	// unknown key or transport fails before anything is built.
	for _, r := range cacheFrom {
		if _, err := remotecache.ParseImport(r); err != nil {
			return usagef("build: --cache-from: %v", err)
		}
	}
	for _, r := range cacheTo {
		if _, err := remotecache.ParseExport(r); err != nil {
			return usagef("build: --cache-to: %v", err)
		}
	}
	if *force && dry == "" && !sandbox.Entered() {
		// Every step runs again: straight to the namespace (command.ns),
		// with no attempt here first.
		return fmt.Errorf("build --force-build: %w", snapbuild.ErrNeedsSandbox)
	}
	defs, err := definitions(ctx, pos, *module, &df, dry != "", *loadTimeout)
	if err != nil {
		return err
	}
	var gs []group
	if len(tags) > 0 {
		if gs, err = nameWithTag(tags, defs); err != nil {
			return err
		}
	} else {
		gs = groups(defs)
	}
	if *push != "" && (dry != "" || len(gs) != 1 || len(gs[0].defs) != 1) {
		if dry != "" {
			return usagef("build: --push %s pushes the image a build makes, and --print builds nothing: give one or the other", *push)
		}
		return usagef("build: --push %s pushes one image, and this build makes %d: build one image (pick it with FILE IMAGE or APP.py::NAME), or push each with snapbuild push NAME REF", *push, len(defs))
	}
	tagOpts := func(d definition) snapbuild.TagOptions {
		return snapbuild.TagOptions{Source: d.source, Replace: *replace || len(tags) > 0}
	}
	for _, g := range gs {
		for _, d := range g.defs {
			if err := snapbuild.ValidateName(d.name); err != nil {
				if len(tags) > 0 {
					return fmt.Errorf("build: -t: %w", err)
				}
				return fmt.Errorf("build: %s: %w; name it with -t NAME", d.label, err)
			}
		}
	}
	p, err := progressFor(*progress)
	if err != nil {
		return err
	}
	if quiet {
		p = snapbuild.ProgressFunc(func(snapbuild.Event) {})
	}
	// Every step's whole output goes to the store's build log, which the
	// view clips (snapbuild.StepLogLimit).
	blog := &buildLog{view: p}
	// Outside the build namespace the builds run in this process until a
	// step must run (snapbuild.ErrNeedsSandbox); then everything starts
	// over in the namespace. Their progress, log and results are held
	// until all are built here, so that nothing is shown twice.
	held := (*heldProgress)(nil)
	if dry == "" {
		p = blog
		if !sandbox.Entered() {
			held = &heldProgress{}
			p = held
		}
	}
	opts := []snapbuild.Option{snapbuild.WithProgress(p), snapbuild.WithNetwork(sandbox.Network(*network)), snapbuild.WithSecurity(sandbox.Security(*security)), snapbuild.WithSite(site),
		snapbuild.WithTimestamps(ts)}
	if *noPkgCache {
		opts = append(opts, snapbuild.WithPackageCaches(false))
	}
	if *force {
		opts = append(opts, snapbuild.WithForceBuild(true))
	}
	if *pull {
		opts = append(opts, snapbuild.WithPull(true))
	}
	if jobs > 0 {
		opts = append(opts, snapbuild.WithParallelism(int(jobs)))
	}
	if *reg.conf == "" {
		*reg.conf = site.RegistriesConf
	}
	regOpts, err := reg.options()
	if err != nil {
		return err
	}
	opts = append(opts, regOpts...)
	if len(cacheFrom) > 0 && dry == "" {
		opts = append(opts, snapbuild.WithCacheFrom(cacheFrom...))
	}
	if len(cacheTo) > 0 && dry == "" {
		opts = append(opts, snapbuild.WithCacheTo(cacheTo...))
	}
	bkOpts, err := bk.options("build")
	if err != nil {
		return err
	}
	opts = append(opts, bkOpts...)
	if len(cdiDirs) > 0 {
		abs := make([]string, len(cdiDirs))
		for i, d := range cdiDirs {
			if abs[i], err = filepath.Abs(d); err != nil {
				return err
			}
		}
		opts = append(opts, snapbuild.WithCDISpecDirs(abs...))
	}
	storeDir := storeRoot(*root)
	if _, err := os.Stat(storeDir); dry != "" && errors.Is(err, os.ErrNotExist) {
		// A dry run makes no store: plan against an empty one.
		tmp, err := os.MkdirTemp("", "snapbuild-print-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintf(os.Stderr, "snapbuild: store %s does not exist yet: every step would run\n", storeDir)
		storeDir = tmp
	}
	b, err := newBuilder(storeDir, opts...)
	if err != nil {
		return err
	}
	defer b.Close()
	openLog := func() {
		if err := blog.open(storeDir); err != nil {
			fmt.Fprintf(os.Stderr, "snapbuild: warning: %v; building without a log\n", err)
		}
	}
	if dry == "" {
		if held == nil {
			openLog()
		}
		defer func() {
			path, err := blog.close()
			switch {
			case err != nil:
				fmt.Fprintf(os.Stderr, "snapbuild: warning: %v\n", err)
			case path == "" || quiet:
			case *progress == "json":
				json.NewEncoder(os.Stdout).Encode(map[string]any{"kind": "log", "path": path})
			default:
				fmt.Fprintf(os.Stderr, "build log: %s\n", path)
			}
		}()
	}
	// Names first: a build that would take another file's name builds
	// nothing and names nothing.
	var refused []error
	for _, g := range gs {
		for _, d := range g.defs {
			if err := b.CheckName(d.name, tagOpts(d)); err != nil {
				refused = append(refused, fmt.Errorf("%s: %w", d.label, err))
			}
		}
	}
	if dry != "" {
		for _, err := range refused {
			fmt.Fprintf(os.Stderr, "snapbuild: warning: a build would stop here: %v\n", err)
		}
		if len(cacheFrom) > 0 {
			// The plan reads the store only: fetching and checking a
			// cache's layers is what a build does.
			fmt.Fprintln(os.Stderr, "snapbuild: note: --print does not consult the --cache-from caches: a step they hold shows as it would without them (run, bootstrap, pull)")
		}
		return printPlans(ctx, b, gs, string(dry), os.Stdout)
	}
	if len(refused) > 0 {
		return errors.Join(append(refused, errors.New("build: nothing was built"))...)
	}
	// Independent images build at once, as docker buildx bake builds its
	// targets: their steps share --jobs, a step they have in common runs
	// once, and each names its images when it is done. A failed image
	// stops none of the others.
	// What each image's build says (its summary lines, names moved) is
	// printed once every image is done, in the order the images were
	// given: not between the live progress lines of the others, and -q's
	// IDs in a known order.
	var mu sync.Mutex // refused
	said := make([]struct{ out, errOut bytes.Buffer }, len(gs))
	// finish names the image of gs[i]'s build with each of its names and
	// says so in said[i]; a name taken while the build ran goes to
	// refused. mu is held.
	finish := func(i int, res snapbuild.Result) error {
		g, stdout, stderr := gs[i], &said[i].out, &said[i].errOut
		for _, d := range g.defs {
			t, err := b.TagResultWith(d.name, res, tagOpts(d))
			var taken *snapbuild.NameTakenError
			if errors.As(err, &taken) { // taken while this build ran
				refused = append(refused, fmt.Errorf("%s: %w", d.label, err))
				continue
			}
			if err != nil {
				return err
			}
			if quiet {
				continue
			}
			if t.Previous != "" && *progress != "json" { // JSON: the summary's "previous"
				from := ""
				if t.PreviousSource != "" && t.PreviousSource != d.source {
					from = ", built from " + t.PreviousSource
				}
				fmt.Fprintf(stderr, "%s: moved from %s%s\n", d.name, t.Previous, from)
			}
			if *progress == "json" {
				json.NewEncoder(stdout).Encode(map[string]any{"kind": "image", "name": d.name, "id": res.ID,
					"manifest": res.Manifest.Digest, "stats": res.Stats, "previous": t.Previous, "peakRSSKiB": peakRSSKiB(), "log": blog.path})
			} else {
				// Steps are the entries the progress numbers [n/N]; cached
				// are those it printed CACHED (nothing ran); containers are
				// the sandboxes RUN and run_function steps started.
				fmt.Fprintf(stdout, "%s %s %s (%d steps, %d cached, %d containers)\n", d.name, res.ID, res.Manifest.Digest,
					res.Stats.Entries, res.Stats.EntriesCached, res.Stats.ContainersStarted)
			}
		}
		if quiet {
			// One line per image, whatever names it got: the ID is what
			// docker build -q prints.
			fmt.Fprintln(stdout, res.ID)
		}
		return nil
	}
	// In this process (held), the first image that needs the namespace
	// stops the others: every image is built again there.
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(gs))
	results := make([]*snapbuild.Result, len(gs)) // held: built here, not yet named
	needsSandbox := false
	for i, g := range gs {
		var opts []snapbuild.BuildOption
		if len(gs) > 1 {
			opts = append(opts, snapbuild.BuildLabel(g.defs[0].name))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := g.defs[0]
			res, err := b.Build(bctx, d.image, opts...)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case held != nil && errors.Is(err, snapbuild.ErrNeedsSandbox):
				needsSandbox = true
				cancel()
			case err != nil:
				errs[i] = fmt.Errorf("build %s: %w", d.name, err)
			case held != nil:
				results[i] = &res
			default:
				errs[i] = finish(i, res)
			}
		}()
	}
	wg.Wait()
	if needsSandbox {
		return snapbuild.ErrNeedsSandbox // every image is built again in the namespace
	}
	if held != nil {
		// Every build stands (or failed on its own): show them as they
		// went, then name them.
		openLog()
		held.replay(blog)
		for i, res := range results {
			if res != nil {
				errs[i] = finish(i, *res)
			}
		}
	}
	for i := range said {
		os.Stderr.Write(said[i].errOut.Bytes())
		os.Stdout.Write(said[i].out.Bytes())
	}
	if err := errors.Join(errs...); err != nil {
		if len(cacheTo) > 0 {
			// As buildx: a cache is written after a build that succeeded.
			if *progress == "json" {
				json.NewEncoder(os.Stdout).Encode(map[string]any{"kind": "cache", "refs": []string(cacheTo), "error": "not written: the build failed"})
			} else {
				fmt.Fprintln(os.Stderr, "cache: not written: the build failed")
			}
		}
		return errors.Join(err, errors.Join(refused...))
	}
	if *push != "" && len(refused) == 0 {
		if err := b.Push(ctx, gs[0].defs[0].name, *push, snapbuild.ExportOptions{}); err != nil {
			return fmt.Errorf("build: --push %s: %w", *push, err)
		}
		if !quiet {
			fmt.Fprintf(os.Stderr, "pushed %s\n", *push)
		}
	}
	if len(cacheTo) > 0 {
		// As buildx: a cache that cannot be written fails the command
		// (unless its ignore-error=true), after the images were built
		// and named.
		ces, err := b.ExportCache(ctx)
		for _, ce := range ces {
			switch {
			case quiet:
			case *progress == "json":
				json.NewEncoder(os.Stdout).Encode(map[string]any{"kind": "cache", "ref": ce.Ref, "mode": ce.Mode, "keys": ce.Keys, "layers": ce.Layers})
			default:
				fmt.Fprintf(os.Stderr, "cache: wrote %s (mode=%s, %d keys, %d layers)\n", ce.Ref, ce.Mode, ce.Keys, ce.Layers)
			}
		}
		if err != nil {
			if *progress == "json" {
				json.NewEncoder(os.Stdout).Encode(map[string]any{"kind": "cache", "error": err.Error()})
			}
			return errors.Join(fmt.Errorf("build: --cache-to: %w", err), errors.Join(refused...))
		}
	}
	return errors.Join(refused...)
}

// flagSet reports whether the command line set the flag name of fs.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// definitions reads what the build command's arguments name: a recipe file
// and some of its images (FILE [IMAGE...]), Modal files (APP.py[::NAME]...),
// a module (-m PKG.MODULE[::NAME]) or a Dockerfile and its build context
// (-f FILE [CONTEXT], or a CONTEXT directory).
func definitions(ctx context.Context, pos []string, module string, df *dockerfileFlags, dry bool, loadTimeout time.Duration) ([]definition, error) {
	if df.used() || module == "" && len(pos) > 0 && isDir(pos[0]) {
		if module != "" {
			return nil, usagef("build: -m %s builds a module's images; -f, --build-arg, --secret and --target are for a Dockerfile: give one or the other (see 'snapbuild build --help')", module)
		}
		d, err := dockerfileDefinition(pos, df)
		if err != nil {
			return nil, err
		}
		return []definition{d}, nil
	}
	if module != "" && isPythonRef(module) {
		file, _ := frontend.SplitRef(module)
		return nil, fmt.Errorf("build: -m takes a module (pkg.module), not a file: for %s, run snapbuild build %s", file, module)
	}
	if module != "" {
		if len(pos) > 0 {
			return nil, usagef("build: -m %s builds a module's images; the other arguments (%s) are not used: remove them, or pick an image with -m %s::NAME", module, strings.Join(pos, " "), module)
		}
		return loadPython(ctx, module, true, loadTimeout)
	}
	if len(pos) == 0 {
		return nil, usagef("build: give a recipe file, a Python file, a module or a Dockerfile: snapbuild build FILE [IMAGE...], snapbuild build app.py[::NAME], snapbuild build -m pkg.module[::NAME], snapbuild build -f Dockerfile [CONTEXT] (see 'snapbuild build --help')")
	}
	if !isPythonRef(pos[0]) {
		if err := checkRecipeArg(pos[0], dry); err != nil {
			return nil, err
		}
		defs, err := loadRecipe(pos[0], "")
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
		more, err := loadPython(ctx, p, false, loadTimeout)
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

// checkRecipeArg turns the usual wrong first arguments into errors that say
// what to do: a format after --print, a Dockerfile given where docker build
// takes its context.
func checkRecipeArg(arg string, dry bool) error {
	_, err := os.Stat(arg)
	switch {
	case dry && (arg == "json" || arg == "text") && err != nil:
		return fmt.Errorf("build: --print takes its format after '=': --print=%s", arg)
	case strings.HasPrefix(strings.ToLower(filepath.Base(arg)), "dockerfile") || strings.HasSuffix(strings.ToLower(arg), ".dockerfile") ||
		strings.HasPrefix(strings.ToLower(filepath.Base(arg)), "containerfile") || strings.HasSuffix(strings.ToLower(arg), ".containerfile"):
		return fmt.Errorf("build: %s looks like a Dockerfile: give it with -f and the build context after it, as docker build takes them: snapbuild build -f %s %s", arg, arg, filepath.Dir(arg))
	}
	return nil
}

// isDir reports whether path is a directory.
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
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
		Error  string         `json:"error,omitempty"` // why the image cannot be planned
	}
	var all []planJSON
	var failed []error
	for i, g := range gs {
		pj := planJSON{}
		for _, d := range g.defs {
			pj.Names, pj.Labels = append(pj.Names, d.name), append(pj.Labels, d.label)
		}
		p, err := b.Plan(ctx, g.defs[0].image)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// The other images are still worth seeing.
			pj.Error = err.Error()
			failed = append(failed, fmt.Errorf("build --print %s: %w", g.defs[0].name, err))
		}
		pj.Plan = p
		if format == "json" {
			all = append(all, pj)
			continue
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err != nil {
			fmt.Fprintf(w, "%s (%s)\n  cannot be planned: %v\n", strings.Join(pj.Names, ", "), strings.Join(pj.Labels, ", "), err)
			continue
		}
		writePlan(w, pj.Names, pj.Labels, p)
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(all); err != nil {
			return err
		}
	}
	return errors.Join(failed...)
}

// writePlan writes one image's plan as text:
//
//	example-hello:image (app.py::image)
//	  [1] debian_slim
//	      FROM python:3.11-slim-bookworm      cached   key 5d41402abc4b
//	      CMD ["sleep", "172800"]             config
//	  [2] apt_install
//	      RUN apt-get update                  run      key 7c2e0b81a3f4  (run: not in the cache)
//	      RUN apt-get install -y git          pending
//	  4 instructions: 1 cached, 1 config, 1 to run, 1 pending
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
	fmt.Fprintf(w, "  %d instructions: %d cached, %d config, %d to run, %d pending\n", total,
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

// checkNetwork refuses a --network value of command that is not a sandbox
// network, as a usage error, before anything is read or built.
func checkNetwork(command, v string) error {
	switch sandbox.Network(v) {
	case sandbox.NetworkHost, sandbox.NetworkNone, sandbox.NetworkPrivate:
		return nil
	}
	return usagef("%s: --network %s: use %s (the host's network), %s (loopback only) or %s (a namespace of its own with outbound access through slirp4netns)", command, v, sandbox.NetworkHost, sandbox.NetworkNone, sandbox.NetworkPrivate)
}

// checkSecurity refuses a --security value of command that is not a sandbox
// security mode, as a usage error, before anything is read or built.
func checkSecurity(command, v string) error {
	switch sandbox.Security(v) {
	case sandbox.SecuritySandbox, sandbox.SecurityInsecure:
		return nil
	}
	return usagef("%s: --security %s: use %s (the default: Docker's capabilities and seccomp profile, no_new_privs) or %s (every capability, no seccomp filter)", command, v, sandbox.SecuritySandbox, sandbox.SecurityInsecure)
}
