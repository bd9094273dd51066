package engine

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

// WithStepEnv is snapbuild.WithStepEnv.
func WithStepEnv(env ...string) Option {
	return func(b *Engine) error {
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

// WithPythonStandaloneDir is snapbuild.WithPythonStandaloneDir.
func WithPythonStandaloneDir(dir string) Option {
	return func(b *Engine) error {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("python-build-standalone directory %q: give an absolute path", dir)
		}
		b.pythonDir = dir
		return nil
	}
}

// WithToolImage is snapbuild.WithToolImage.
func WithToolImage(repository, replacement string) Option {
	return func(b *Engine) error {
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
func (b *Engine) toolRef(ref string) string {
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

// WithSite is snapbuild.WithSite.
func WithSite(s siteconfig.Site) Option {
	return func(b *Engine) error {
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

// StepEnv is snapbuild.Builder.StepEnv.
func (b *Engine) StepEnv() []string { return slices.Clone(b.stepEnv) }
