package snapbuild

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/base"
	"github.com/snapbuild/snapbuild/gpu"
	"github.com/snapbuild/snapbuild/overlay"
	"github.com/snapbuild/snapbuild/sandbox"
	"github.com/snapbuild/snapbuild/snapshot"
)

// instruction is one parsed Dockerfile instruction.
type instruction struct {
	text string // the original text, e.g. "RUN apt-get update"
	cmd  any    // *instructions.RunCommand, *instructions.Stage, ...
	line int    // line in the layer's commands, from 1 ("FROM base" is 1)
}

func (in instruction) isFrom() bool { _, ok := in.cmd.(*instructions.Stage); return ok }

func (in instruction) fromRef() string {
	if s, ok := in.cmd.(*instructions.Stage); ok {
		return s.BaseName
	}
	return ""
}

// parseCommands parses a layer's Dockerfile lines with BuildKit's parser.
func parseCommands(lines []string) ([]instruction, error) {
	res, err := parser.Parse(strings.NewReader(strings.Join(lines, "\n") + "\n"))
	if err != nil {
		return nil, fmt.Errorf("parsing commands: %w", err)
	}
	var out []instruction
	for _, node := range res.AST.Children {
		cmd, err := instructions.ParseInstruction(node)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", node.Original, err)
		}
		out = append(out, instruction{text: node.Original, cmd: cmd, line: node.StartLine})
	}
	return out, nil
}

// defaultShell is the shell of RUN instructions in shell form.
var defaultShell = []string{"/bin/sh", "-c"}

// execute runs instruction in on st. It reports whether the step was cached.
func (b *Builder) execute(ctx context.Context, st *buildState, l *layer, in instruction, files []contextFile, force bool, ev Event) (bool, error) {
	// Whatever the instruction changes, st is no longer the image its
	// manifest (if any) describes; a FROM sets a fresh one.
	st.manifest = ""
	lex := shell.NewLex('\\')
	expand := func(word string) (string, error) {
		// ENV wins over ARG, as in Docker.
		s, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(append(b.argEnv(), st.config.Env...)))
		return s, err
	}
	switch c := in.cmd.(type) {
	case *instructions.Stage:
		if l.root != nil && l.root.dockerfile {
			return b.fromStage(ctx, st, l, in, c, expand, ev)
		}
		return b.from(ctx, st, l, in, force, ev)
	case *instructions.RunCommand:
		return b.run(ctx, st, l, in, c, force, ev)
	case *functionStep:
		return b.runFunction(ctx, st, l, in, force, ev)
	case *instructions.EnvCommand:
		if err := c.Expand(expand); err != nil {
			return false, fmt.Errorf("%s: %w", in.text, err)
		}
		for _, kv := range c.Env {
			v := kv.Value
			if l.method == "env" {
				v = expandKnown(v, st.config.Env)
			}
			st.config.Env = setEnv(st.config.Env, kv.Key, v)
		}
		st.configOnly(in.text)
		return false, nil
	case *instructions.WorkdirCommand:
		if err := c.Expand(expand); err != nil {
			return false, fmt.Errorf("%s: %w", in.text, err)
		}
		dir := c.Path
		if !path.IsAbs(dir) {
			dir = path.Join("/", st.config.WorkingDir, dir)
		}
		dir = path.Clean(dir)
		st.config.WorkingDir = dir
		key := stepKey(st, l, in, "mkdir "+dir, b.epoch)
		return b.layerStep(ctx, st, key, in.text, force, func(a *snapshot.Active) error {
			_, err := mkdirAllIn(a.Rootfs, dir)
			return err
		})
	case *instructions.CmdCommand:
		st.config.Cmd = cmdLine(st, c.ShellDependantCmdLine)
		st.configOnly(in.text)
		return false, nil
	case *instructions.EntrypointCommand:
		st.config.Entrypoint = cmdLine(st, c.ShellDependantCmdLine)
		st.config.Cmd = nil // as Docker: a new ENTRYPOINT resets an inherited CMD
		st.configOnly(in.text)
		return false, nil
	case *instructions.HealthCheckCommand:
		h := *c.Health
		if len(h.Test) == 1 && h.Test[0] == "NONE" {
			h = dockerspec.HealthcheckConfig{Test: []string{"NONE"}}
		}
		st.health = &h
		st.configOnly(in.text)
		return false, nil
	case *instructions.ShellCommand:
		st.shell = slices.Clone(c.Shell)
		st.configOnly(in.text)
		return false, nil
	case *instructions.LabelCommand:
		if err := c.Expand(expand); err != nil {
			return false, fmt.Errorf("%s: %w", in.text, err)
		}
		if st.config.Labels == nil {
			st.config.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			st.config.Labels[kv.Key] = kv.Value
		}
		st.configOnly(in.text)
		return false, nil
	case *instructions.UserCommand:
		if err := c.Expand(expand); err != nil {
			return false, fmt.Errorf("%s: %w", in.text, err)
		}
		st.config.User = c.User
		st.configOnly(in.text)
		return false, nil
	case *instructions.ArgCommand:
		return false, b.arg(st, l, in, c, expand)
	case *instructions.AddCommand:
		if err := c.Expand(expand); err != nil {
			return false, fmt.Errorf("%s: %w", in.text, err)
		}
		return b.add(ctx, st, l, in, c, files, force)
	case *instructions.ExposeCommand:
		if st.config.ExposedPorts == nil {
			st.config.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range c.Ports {
			p, err := expand(p)
			if err != nil {
				return false, err
			}
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			st.config.ExposedPorts[p] = struct{}{}
		}
		st.configOnly(in.text)
		return false, nil
	case *instructions.VolumeCommand:
		if st.config.Volumes == nil {
			st.config.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			v, err := expand(v)
			if err != nil {
				return false, err
			}
			st.config.Volumes[v] = struct{}{}
		}
		st.configOnly(in.text)
		return false, nil
	case *instructions.StopSignalCommand:
		sig, err := expand(c.Signal)
		if err != nil {
			return false, err
		}
		st.config.StopSignal = sig
		st.configOnly(in.text)
		return false, nil
	case *instructions.CopyCommand:
		if err := c.Expand(expand); err != nil {
			return false, fmt.Errorf("%s: %w", in.text, err)
		}
		if c.From != "" {
			return b.copyFromImage(ctx, st, l, in, c, force, ev)
		}
		return b.copyFromContext(ctx, st, l, in, c, files, force)
	}
	name := strings.ToUpper(strings.Fields(in.text + " ?")[0])
	return false, &InvalidError{Method: l.method, Message: fmt.Sprintf("line %d: %s is not supported (in %q)", in.line, name, in.text)}
}

// cmdLine turns CMD/ENTRYPOINT arguments into an exec-form list.
func cmdLine(st *buildState, c instructions.ShellDependantCmdLine) []string {
	if c.PrependShell {
		return append(slices.Clone(shellOf(st)), strings.Join(c.CmdLine, " "))
	}
	return slices.Clone(c.CmdLine)
}

func shellOf(st *buildState) []string {
	if len(st.shell) > 0 {
		return st.shell
	}
	return defaultShell
}

// envRefRE matches $NAME and ${NAME}.
var envRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expandKnown replaces $NAME and ${NAME} in an env() value by the value of
// NAME in the image's environment so far; references to names the image does
// not set stay as they are.
//
// This is snapbuild's rule for modal.Image.env: Modal emits
// ENV PATH='/x:$PATH', which Docker's quoting would keep literal, yet Modal's
// own examples (.env({"PATH": "/root/.local/bin:$PATH"})) need $PATH to
// expand. Expanding only what the image defines makes those work and keeps
// values such as '$HOME' (HOME is not in the config) literal.
func expandKnown(v string, env []string) string {
	return envRefRE.ReplaceAllStringFunc(v, func(ref string) string {
		name := strings.Trim(ref, "${}")
		for _, e := range env {
			if k, val, ok := strings.Cut(e, "="); ok && k == name {
				return val
			}
		}
		return ref
	})
}

// hasEnv reports whether env sets key.
func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			return true
		}
	}
	return false
}

// setEnv sets key=value in env, replacing an existing entry in place.
func setEnv(env []string, key, value string) []string {
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			env = slices.Clone(env)
			env[i] = key + "=" + value
			return env
		}
	}
	return append(slices.Clone(env), key+"="+value)
}

// from starts the build from a root layer's base.
func (b *Builder) from(ctx context.Context, st *buildState, l *layer, in instruction, force bool, ev Event) (bool, error) {
	switch {
	case l.root != nil && l.root.debian != nil:
		return b.fromDebian(ctx, st, l, in, force, ev)
	case l.root != nil && l.root.registry != nil:
		return b.fromRegistry(ctx, st, l, in, force, ev)
	case l.root != nil && l.root.scratch:
		*st = buildState{}
		st.configOnly(in.text)
		return false, nil
	case l.root != nil && l.root.fromID != "":
		ref := l.root.fromID
		if l.root.pull {
			ref = b.toolRef(ref) // as checkSources pulled it
		}
		rec, err := b.store.resolve(ref)
		if err != nil && l.root.pull && b.plan != nil {
			return false, &wouldRun{"pull " + ref}
		}
		if err != nil {
			if strings.HasPrefix(ref, "im-") {
				return false, &InvalidError{Method: l.method, Message: err.Error()}
			}
			return false, missingSource(l.method, in.text, ref, err)
		}
		s, _, err := b.stateOf(rec)
		if err != nil {
			return false, err
		}
		*st = *s
		return true, nil
	}
	return false, &InvalidError{Method: l.method, Message: in.text + ": unknown base"}
}

// stateOf loads a stored image as the state further steps build on: its
// layers, config, history, shell and healthcheck. It also returns the image
// config.
func (b *Builder) stateOf(rec imageRecord) (*buildState, dockerspec.DockerOCIImage, error) {
	info, err := b.Inspect(rec.ID)
	if err != nil {
		return nil, dockerspec.DockerOCIImage{}, err
	}
	if rec.ChainID != "" && !b.store.snaps.Exists(rec.ChainID) {
		return nil, dockerspec.DockerOCIImage{}, fmt.Errorf("image %s: its filesystem snapshot %s is missing from the store", rec.ID, rec.ChainID)
	}
	m, err := b.store.blobs.Manifest(rec.Manifest.Digest)
	if err != nil {
		return nil, dockerspec.DockerOCIImage{}, err
	}
	return &buildState{id: rec.ID, chain: rec.ChainID, layers: m.Layers, diffIDs: info.Config.RootFS.DiffIDs,
		config: info.Config.Config.ImageConfig, history: info.Config.History, shell: rec.Shell, health: rec.Health,
		onBuild: info.Config.Config.OnBuild, manifest: rec.Manifest.Digest}, info.Config, nil
}

// debianBase is DebianSlim's base: a Debian suite with SlimPackages.
type debianBase struct {
	Suite  string
	Python string // series, e.g. "3.11"
	// Version is the python_version asked for: the series, or a micro pin
	// ("3.12.3") that only Modal's own image can honour (see slimSource).
	Version string
}

// fromDebian makes (or reuses) the base of a DebianSlim layer, from where
// slimSource says this site provides it.
func (b *Builder) fromDebian(ctx context.Context, st *buildState, l *layer, in instruction, force bool, ev Event) (bool, error) {
	src, err := b.slimSource(l.method, l.root.debian)
	if err != nil {
		return false, err
	}
	switch src.kind {
	case slimRegistry:
		return b.debianSlimFromRegistry(ctx, st, l, src.ref, in, force, ev)
	case slimStandalone:
		return b.debianSlimStandalone(ctx, st, l, in, src, force, ev)
	}
	d := base.Debian{Suite: l.root.debian.Suite, Packages: base.SlimPackages, Mirror: b.mirror, Epoch: b.epoch}
	cached, rec, err := b.bootstrapDebian(ctx, st, d, in, force, ev)
	if err != nil {
		return false, err
	}
	if rec.Python == "" && !rec.Empty && b.plan == nil {
		rec.Python = base.PythonVersion(b.store.snaps.FS(rec.ChainID))
		if err := b.store.putStep(rec); err != nil {
			return false, err
		}
	}
	st.config.Env = d.Env()
	if rec.Python != "" {
		st.config.Env = append(st.config.Env, "PYTHON_VERSION="+rec.Python)
	}
	return cached, nil
}

// bootstrapDebian bootstraps (or reuses) the Debian base d as the first
// layer of st, recorded as instruction in. The cache key is d's definition
// and the archive state (the hash of the suite's InRelease file); when the
// mirror cannot be reached the newest base made for the same definition is
// reused. It returns the base's step record.
func (b *Builder) bootstrapDebian(ctx context.Context, st *buildState, d base.Debian, in instruction, force bool, ev Event) (bool, stepRecord, error) {
	defKey := sha256hex("snapbuild-base/1 " + d.Definition())
	defRel := filepath.Join("bases", defKey+".json")
	var key string
	if b.plan != nil {
		// A dry run asks no mirror: the base is the last one built.
		var last stepRecord
		if ok, err := b.store.readJSON(defRel, &last); err != nil || !ok {
			return false, stepRecord{}, &wouldRun{"bootstrap Debian " + d.Suite + ": no base for it in the store yet"}
		}
		key = last.Key
	} else if state, err := d.ArchiveState(ctx); err == nil {
		key = sha256hex("snapbuild-base/1 " + d.Definition() + " archive=" + state)
	} else {
		var last stepRecord
		ok, rerr := b.store.readJSON(defRel, &last)
		if rerr != nil || !ok {
			return false, stepRecord{}, fmt.Errorf("%s: cannot bootstrap Debian %s: %w; and no earlier base for it is in the store", in.text, d.Suite, err)
		}
		b.progress.Event(ev.output(fmt.Sprintf("note: %v; reusing the Debian %s base built earlier", err, d.Suite)))
		key = last.Key
	}
	*st = buildState{}
	// The phases are what a terminal shows; mmdebstrap's own lines are
	// detail, kept by plain and JSON progress.
	var phases base.BootstrapPhases
	log := &lineWriter{keep: 20, emit: func(s string) {
		phase, detail := phases.Line(s)
		if phase != "" {
			b.progress.Event(ev.output("debian: " + phase))
		}
		out := ev.output(s)
		out.Detail = detail
		b.progress.Event(out)
	}}
	cached, err := b.layerStep(ctx, st, key, in.text, force, func(a *snapshot.Active) error {
		err := d.Bootstrap(ctx, a.Rootfs, log)
		log.flush()
		if err != nil && ctx.Err() == nil {
			// A terminal did not show mmdebstrap's lines: say how it
			// ended.
			return fmt.Errorf("%w; its last lines:\n  %s", err, strings.Join(log.lastLines(), "\n  "))
		}
		return err
	})
	if err != nil {
		return false, stepRecord{}, err
	}
	rec, _, err := b.store.step(key)
	if err != nil {
		return false, stepRecord{}, err
	}
	if b.plan == nil { // a dry run writes nothing
		if err := b.store.writeJSON(defRel, rec); err != nil {
			return false, stepRecord{}, err
		}
	}
	return cached, rec, nil
}

// run executes a RUN instruction in a sandbox.
func (b *Builder) run(ctx context.Context, st *buildState, l *layer, in instruction, c *instructions.RunCommand, force bool, ev Event) (bool, error) {
	if len(c.FlagsUsed) > 0 {
		return false, &InvalidError{Method: l.method, Message: fmt.Sprintf("%s: RUN flags %v are not supported yet", in.text, c.FlagsUsed)}
	}
	var args []string
	switch {
	case len(c.Files) > 0:
		args = heredocCommand(st, c)
	case c.PrependShell:
		args = append(slices.Clone(shellOf(st)), strings.Join(c.CmdLine, " "))
	default:
		args = slices.Clone(c.CmdLine)
	}
	argEnv := b.argEnv()
	key := b.runKey(st, l, in, argEnv)
	return b.layerStep(ctx, st, key, in.text, force, func(a *snapshot.Active) error {
		mounts, err := b.volumeMounts(l.volumes)
		if err != nil {
			return &InvalidError{Method: l.method, Message: err.Error()}
		}
		return b.sandboxed(ctx, st, l, in, ev, a, stepProcess{args: args, argEnv: argEnv, mounts: mounts, keep: 20})
	})
}

// runKey is the cache key of a RUN step. The network and the ARG values are
// inputs: a step run offline, or with other build args, may make other
// files. The site's step environment (WithStepEnv, WithSite: package
// mirrors) is not: the same definition is the same step wherever it is
// built.
func (b *Builder) runKey(st *buildState, l *layer, in instruction, argEnv []string) string {
	inputs := fmt.Sprintf("network=%s args=%q", b.network, argEnv)
	if len(l.volumes) > 0 {
		inputs += fmt.Sprintf(" volumes=%q", volumesKey(l.volumes))
	}
	return stepKey(st, l, in, inputs, b.epoch)
}

// stepProcess is the process a RUN or run_function step runs in its sandbox.
type stepProcess struct {
	args    []string
	argEnv  []string            // ARG values, "K=V", below the image's ENV
	env     []string            // set over everything else, "K=V"
	mounts  []sandbox.BindMount // extra bind mounts (not in the layer)
	keep    int                 // output lines kept for the error of a failed step
	timeout time.Duration       // 0: none
}

// sandboxed runs p on the snapshot a of st as user st.config.User, with the
// image's environment, the ARG values, the site's step environment, the
// step's env= and secrets (masked in the output), its GPUs and p's mounts.
// Mount targets the runtime made are removed from the upper dir afterwards.
// A non-zero exit is a *StepError holding the output's last lines.
func (b *Builder) sandboxed(ctx context.Context, st *buildState, l *layer, in instruction, ev Event, a *snapshot.Active, p stepProcess) error {
	uid, gid, err := resolveUser(a.Rootfs, st.config.User)
	if err != nil {
		return fmt.Errorf("%s: %w", in.text, err)
	}
	env := b.stepEnviron(st, p.argEnv)
	keys := make([]string, 0, len(l.buildEnv))
	for k := range l.buildEnv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = setEnv(env, k, l.buildEnv[k])
	}
	secretVars := map[string]string{}
	for _, s := range l.secrets {
		vars, err := s.load()
		if err != nil {
			return &InvalidError{Method: l.method, Message: err.Error()}
		}
		for k, v := range vars {
			secretVars[k] = v
		}
	}
	names := make([]string, 0, len(secretVars))
	for k := range secretVars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		env = setEnv(env, k, secretVars[k])
	}
	for _, kv := range p.env {
		k, v, _ := strings.Cut(kv, "=")
		env = setEnv(env, k, v)
	}
	mask := newRedactor(secretVars)
	inj, err := gpuInjection(l.gpu, b.gpu)
	if err != nil {
		return &InvalidError{Method: l.method, Message: err.Error()}
	}
	out := &lineWriter{keep: p.keep, mask: mask.mask, emit: func(s string) {
		b.progress.Event(ev.output(s))
	}}
	runCtx := ctx
	if p.timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	b.seq++
	b.stats.ContainersStarted++
	spec := sandbox.Spec{
		ID:       fmt.Sprintf("snapbuild-%d-%d", os.Getpid(), b.seq),
		StateDir: filepath.Join(b.store.root, "tmp", "run"),
		Rootfs:   a.Rootfs,
		UpperDir: a.Upper,
		Args:     p.args,
		Env:      env,
		Cwd:      orDefault(st.config.WorkingDir, "/"),
		UID:      uid, GID: gid,
		Stdout: out, Stderr: out,
		Network: b.network,
		Mounts:  p.mounts,
	}
	if inj != nil {
		inj.Apply(&spec) // after the env is final: CDI's entries override
		b.progress.Event(ev.output("gpu: " + inj.Description))
	}
	res, err := sandbox.Run(runCtx, spec)
	out.flush()
	if errors.Is(err, sandbox.ErrCommandNotFound) || errors.Is(err, sandbox.ErrCommandNotExecutable) {
		return &StepError{Step: ev.Step, Entry: ev.Entry, Method: ev.Method, Instruction: in.text, ExitCode: res.ExitCode, Tail: append(out.lastLines(), err.Error())}
	}
	if err != nil && ctx.Err() == nil && runCtx.Err() != nil {
		return &StepError{Step: ev.Step, Entry: ev.Entry, Method: ev.Method, Instruction: in.text, ExitCode: res.ExitCode, TimedOut: p.timeout, Tail: out.lastLines()}
	}
	if err != nil {
		return err
	}
	// Stubs are removed from the upper dir directly: unmount first.
	if err := a.Unmount(); err != nil {
		return err
	}
	if err := overlay.RemoveStubs(a.Upper, a.Lowers, res.Stubs, b.store.snaps.UserXattr()); err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return &StepError{Step: ev.Step, Entry: ev.Entry, Method: ev.Method, Instruction: in.text, ExitCode: res.ExitCode, Tail: out.lastLines()}
	}
	return nil
}

// stepEnviron is a step's environment before its env= and secrets: the
// image's ENV (and PATH), then the ARG values, the site's step environment
// (WithStepEnv) and SOURCE_DATE_EPOCH for what is still unset. The image's
// own PIP_INDEX_URL thus wins over a site's mirror.
func (b *Builder) stepEnviron(st *buildState, argEnv []string) []string {
	env := withPath(slices.Clone(st.config.Env))
	for _, list := range [][]string{argEnv, b.stepEnv, {fmt.Sprintf("SOURCE_DATE_EPOCH=%d", b.epoch.Unix())}} {
		for _, kv := range list {
			if k, v, _ := strings.Cut(kv, "="); !hasEnv(env, k) {
				env = append(env, k+"="+v)
			}
		}
	}
	return env
}

// gpuInjection plans the GPU devices, driver files, env and CDI hooks for
// a layer's gpu request ("" for none; "H100,A100" lists fallbacks). Errors
// start with the request and say what the host has.
func gpuInjection(request string, o gpu.Options) (*gpu.Injection, error) {
	if request == "" {
		return nil, nil
	}
	reqs, err := gpu.ParseList(request)
	if err != nil {
		return nil, err
	}
	return gpu.Resolve(reqs, o)
}

// resolveUser turns a Docker USER value ("", "name", "uid", "name:group",
// "uid:gid") into numeric IDs using the rootfs's /etc/passwd and /etc/group.
func resolveUser(rootfs, user string) (int, int, error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, gid := -1, -1
	if n, err := strconv.Atoi(u); err == nil {
		uid = n
	}
	if uid < 0 || !hasGroup {
		name, id, pgid, ok := lookupDB(rootfs, "/etc/passwd", u, uid)
		if !ok && uid < 0 {
			return 0, 0, fmt.Errorf("USER %s: no user %q in the image's /etc/passwd", user, u)
		}
		if ok {
			_ = name
			uid, gid = id, pgid
		}
	}
	if hasGroup {
		if n, err := strconv.Atoi(g); err == nil {
			gid = n
		} else {
			_, id, _, ok := lookupDB(rootfs, "/etc/group", g, -1)
			if !ok {
				return 0, 0, fmt.Errorf("USER %s: no group %q in the image's /etc/group", user, g)
			}
			gid = id
		}
	}
	if gid < 0 {
		gid = 0
	}
	return uid, gid, nil
}

// lookupDB finds an entry by name (or by id when id >= 0) in a passwd- or
// group-format file of the rootfs; it returns name, id and (for passwd) the
// primary gid.
func lookupDB(rootfs, file, name string, id int) (string, int, int, bool) {
	p, err := securejoin.SecureJoin(rootfs, file)
	if err != nil {
		return "", 0, 0, false
	}
	f, err := os.Open(p)
	if err != nil {
		return "", 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) < 3 {
			continue
		}
		n, err := strconv.Atoi(parts[2])
		if err != nil {
			continue
		}
		if parts[0] == name || (id >= 0 && n == id) {
			pg := 0
			if len(parts) > 3 {
				pg, _ = strconv.Atoi(parts[3])
			}
			return parts[0], n, pg, true
		}
	}
	return "", 0, 0, false
}
