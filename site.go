package snapbuild

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/snapbuild/snapbuild/registry"
	"github.com/snapbuild/snapbuild/siteconfig"
)

// UvImageRepository and MicromambaImageRepository are the repositories of
// the tool images Modal's commands name: uv_pip_install and uv_sync copy
// /uv from ghcr.io/astral-sh/uv:<uv_version>, micromamba starts from
// MicromambaImage.
const (
	UvImageRepository         = "ghcr.io/astral-sh/uv"
	MicromambaImageRepository = "mambaorg/micromamba"
)

// WithStepEnv gives every RUN and run_function step the variables env
// ("KEY=VALUE" entries) as process environment: a site's package mirrors
// (PIP_INDEX_URL, UV_INDEX_URL, MAMBA_CHANNEL_ALIAS, ...). They fill in what
// the image's ENV and the ARG values leave unset, and a step's env= and
// secrets override them. They are not part of the image (config, history)
// nor of any step's cache key: the same definition gives the same image
// whichever mirror it was built from. A later WithStepEnv replaces an
// earlier one's variables of the same name.
func WithStepEnv(env ...string) Option {
	return func(b *Builder) error {
		for _, kv := range env {
			k, _, ok := strings.Cut(kv, "=")
			if !ok || k == "" || strings.ContainsAny(k, " \t\n") {
				return fmt.Errorf("WithStepEnv: %q: want KEY=VALUE", kv)
			}
			b.stepEnv = setEnv(b.stepEnv, k, kv[len(k)+1:])
		}
		return nil
	}
}

// WithPythonStandaloneDir sets where add_python finds python-build-standalone
// archives (see PythonStandaloneDir). dir must be absolute.
func WithPythonStandaloneDir(dir string) Option {
	return func(b *Builder) error {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("python-build-standalone directory %q: give an absolute path", dir)
		}
		b.pythonDir = dir
		return nil
	}
}

// WithToolImage makes the images a build names by reference from
// repository (a COPY --from such as uv's, Image.micromamba's base, a
// Dockerfile FROM) come from replacement instead, keeping the tag or
// digest: with WithToolImage(UvImageRepository,
// "registry.internal/astral-sh/uv"), ghcr.io/astral-sh/uv:0.8.0 is taken
// from the store, or pulled, as registry.internal/astral-sh/uv:0.8.0.
// from_registry bases are not replaced (registries.conf mirrors serve them).
//
// Cache keys follow content, not names: a step that copies from the
// replacement is keyed by the replacement's manifest digest and a
// micromamba base's image ID by the image pulled, so a faithful copy of the
// original (same digest) gives the same images and anything else gives
// other ones.
func WithToolImage(repository, replacement string) Option {
	return func(b *Builder) error {
		from, err := normalizedRepository(repository)
		if err != nil {
			return fmt.Errorf("tool image %q: %w", repository, err)
		}
		if _, err := normalizedRepository(replacement); err != nil {
			return fmt.Errorf("replacement image %q for %s: %w", replacement, repository, err)
		}
		if b.toolImages == nil {
			b.toolImages = map[string]string{}
		}
		b.toolImages[from] = replacement
		return nil
	}
}

// normalizedRepository is repository as go-containerregistry names it
// ("index.docker.io/mambaorg/micromamba"); it must carry no tag or digest.
func normalizedRepository(repository string) (string, error) {
	if strings.ContainsAny(repository, "@") || strings.Contains(repository[strings.LastIndex(repository, "/")+1:], ":") {
		return "", fmt.Errorf("want a repository without tag or digest")
	}
	r, err := registry.ParseReference(repository)
	if err != nil {
		return "", err
	}
	if r.Transport != registry.Docker || r.Name == nil {
		return "", fmt.Errorf("want a registry repository")
	}
	return r.Name.Context().Name(), nil
}

// toolRef is ref with its repository replaced as WithToolImage says; ref
// itself when none applies.
func (b *Builder) toolRef(ref string) string {
	if len(b.toolImages) == 0 || strings.HasPrefix(ref, "im-") || strings.HasPrefix(ref, "docker://") {
		return ref
	}
	r, err := registry.ParseReference(ref)
	if err != nil || r.Transport != registry.Docker || r.Name == nil {
		return ref
	}
	to, ok := b.toolImages[r.Name.Context().Name()]
	if !ok {
		return ref
	}
	if strings.HasPrefix(r.Name.Identifier(), "sha256:") {
		return to + "@" + r.Name.Identifier()
	}
	return to + ":" + r.Name.Identifier()
}

// WithSite applies a site configuration (package siteconfig): its step
// environment (Site.StepEnv: the pip, uv and conda mirrors, and env) as
// WithStepEnv, its Debian mirror as WithDebianMirror, its
// python-build-standalone directory as WithPythonStandaloneDir, and its uv
// and micromamba images as WithToolImage. Its registries.conf is the
// caller's to load (registry.LoadConfig, WithRegistryOptions). Options
// after WithSite override it.
func WithSite(s siteconfig.Site) Option {
	return func(b *Builder) error {
		if err := s.Validate(); err != nil {
			return err
		}
		opts := []Option{WithStepEnv(s.StepEnv()...)}
		if s.DebianMirror != "" {
			opts = append(opts, WithDebianMirror(s.DebianMirror))
		}
		if s.PythonStandaloneDir != "" {
			opts = append(opts, WithPythonStandaloneDir(s.PythonStandaloneDir))
		}
		if s.UvImage != "" {
			opts = append(opts, WithToolImage(UvImageRepository, s.UvImage))
		}
		if s.MicromambaImage != "" {
			opts = append(opts, WithToolImage(MicromambaImageRepository, s.MicromambaImage))
		}
		for _, o := range opts {
			if err := o(b); err != nil {
				return fmt.Errorf("site configuration: %w", err)
			}
		}
		return nil
	}
}

// StepEnv is the site environment every RUN and run_function step gets
// (WithStepEnv, WithSite), as "KEY=VALUE" entries.
func (b *Builder) StepEnv() []string { return slices.Clone(b.stepEnv) }
