package engine

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/base"
	"github.com/snapbuild/snapbuild/gpu"
	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/store"
)

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
func (b *Engine) from(ctx context.Context, st *buildState, l *modal.Layer, in instruction, force bool, ev Event) (bool, error) {
	switch {
	case l.Root != nil && l.Root.Debian != nil:
		return b.fromDebian(ctx, st, l, in, force, ev)
	case l.Root != nil && l.Root.Registry != nil:
		return b.fromRegistry(ctx, st, l, in, force, ev)
	case l.Root != nil && l.Root.Scratch:
		*st = buildState{}
		st.configOnly(in.Text)
		return false, nil
	case l.Root != nil && l.Root.FromID != "":
		ref := l.Root.FromID
		if l.Root.Pull {
			ref = b.toolRef(ref) // as checkSources pulled it
		}
		rec, err := b.store.Resolve(ref)
		if err != nil && l.Root.Pull && b.plan != nil {
			return false, &wouldRun{"pull " + ref}
		}
		if err != nil {
			if strings.HasPrefix(ref, "im-") {
				return false, &modal.InvalidError{Method: l.Method, Message: err.Error()}
			}
			return false, missingSource(l.Method, in.Text, ref, err)
		}
		s, _, err := b.stateOf(rec)
		if err != nil {
			return false, err
		}
		*st = *s
		return true, nil
	}
	return false, &modal.InvalidError{Method: l.Method, Message: in.Text + ": unknown base"}
}

// stateOf loads a stored image as the state further steps build on: its
// layers, config, history, shell and healthcheck. It also returns the image
// config.
func (b *Engine) stateOf(rec store.Image) (*buildState, dockerspec.DockerOCIImage, error) {
	info, err := b.Inspect(rec.ID)
	if err != nil {
		return nil, dockerspec.DockerOCIImage{}, err
	}
	if rec.ChainID != "" && !b.store.Snapshots().Exists(rec.ChainID) {
		return nil, dockerspec.DockerOCIImage{}, fmt.Errorf("image %s: its filesystem snapshot %s is missing from the store", rec.ID, rec.ChainID)
	}
	m, err := b.store.Blobs().Manifest(rec.Manifest.Digest)
	if err != nil {
		return nil, dockerspec.DockerOCIImage{}, err
	}
	return &buildState{id: rec.ID, chain: rec.ChainID, layers: m.Layers, diffIDs: info.Config.RootFS.DiffIDs,
		config: info.Config.Config.ImageConfig, history: info.Config.History, shell: rec.Shell, health: rec.Health,
		onBuild: info.Config.Config.OnBuild, manifest: rec.Manifest.Digest}, info.Config, nil
}

// fromDebian makes (or reuses) the base of a DebianSlim layer, from where
// slimSource says this site provides it.
func (b *Engine) fromDebian(ctx context.Context, st *buildState, l *modal.Layer, in instruction, force bool, ev Event) (bool, error) {
	src, err := b.slimSource(l.Method, l.Root.Debian)
	if err != nil {
		return false, err
	}
	switch src.kind {
	case slimRegistry:
		// The build made the layer a registry one (slimRegistryLayer).
		return false, fmt.Errorf("%s: debian_slim's base is served by a registry here, not bootstrapped", in.Text)
	case slimStandalone:
		return b.debianSlimStandalone(ctx, st, l, in, src, force, ev)
	}
	d := base.Debian{Suite: l.Root.Debian.Suite, Packages: base.SlimPackages, Mirror: b.mirror, Epoch: b.epoch}
	cached, rec, err := b.bootstrapDebian(ctx, st, d, in, force, ev)
	if err != nil {
		return false, err
	}
	if rec.Python == "" && !rec.Empty && b.plan == nil {
		rec.Python = base.PythonVersion(b.store.Snapshots().FS(rec.ChainID))
		if err := b.store.PutStep(rec); err != nil {
			return false, err
		}
	}
	st.config.Env = d.Env()
	if rec.Python != "" {
		st.config.Env = append(st.config.Env, "PYTHON_VERSION="+rec.Python)
	}
	return cached, nil
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

// missingSource explains what to do when a COPY --from image or a base is
// not in the store.
func missingSource(method, instr, ref string, err error) error {
	return &modal.InvalidError{Method: method, Message: fmt.Sprintf(
		"%s: image %q is not in the store, and snapbuild does not pull images: provide it first, "+
			"e.g. build a recipe that makes it and name it with -t %q (see README, \"Tool images\"): %v", instr, ref, ref, err)}
}

// instruction is one parsed Dockerfile instruction of a layer.
type instruction = modal.Instruction
