package snapbuild

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// RegistryOptions are from_registry's keyword arguments.
type RegistryOptions struct {
	// Secret holds the registry's REGISTRY_USERNAME and REGISTRY_PASSWORD
	// (Modal's secret=). Without it, credentials come from the user's
	// registry auth files (see README, "Registries").
	Secret *Secret
	// SetupDockerfileCommands are Dockerfile lines run right after FROM, as
	// Modal's setup_dockerfile_commands (e.g. installing python).
	SetupDockerfileCommands []string
}

// FromRegistry is modal.Image.from_registry (spec 5): the image tag (a
// registry reference such as "ubuntu:22.04" or
// "localhost:5000/team/base@sha256:...", or an air-gapped source:
// "oci:DIR[:TAG]", "oci-archive:FILE[:TAG]", "docker-archive:FILE[:REF]")
// is pulled (linux/amd64, every digest verified) the first time it is built
// and then reused from the store, as Modal reuses the layer of an unchanged
// definition: ForceBuild pulls it again. Commands, as Modal's 2025.06
// builder emits them: "FROM <tag>" and the setup commands. The base image's
// ENV, WORKDIR, USER, ENTRYPOINT and CMD carry into later steps and the
// result. add_python is not offered: python-build-standalone cannot be had
// offline (install Python with SetupDockerfileCommands or a later step).
func FromRegistry(tag string, o RegistryOptions, opts ...StepOption) Image {
	const method = "from_registry"
	if strings.TrimSpace(tag) == "" || strings.ContainsAny(tag, " \t\n") {
		return Image{err: invalidf(method, "tag %q is not an image reference: give e.g. \"ubuntu:22.04\" or \"oci:/path/to/layout:tag\"", tag)}
	}
	l := &layer{
		method:   method,
		commands: append([]string{"FROM " + tag}, o.SetupDockerfileCommands...),
		root:     &rootSpec{registry: &registryBase{ref: tag, secret: o.Secret}},
	}
	for _, opt := range opts {
		opt(l)
	}
	if l.optErr != nil {
		return Image{err: l.optErr}
	}
	return Image{layers: []*layer{l}}
}

// registryBase is a from_registry base.
type registryBase struct {
	ref    string
	secret *Secret
}

// Credentials are a registry user name and password (or token).
type Credentials struct {
	Username, Password string
}

// credentials reads REGISTRY_USERNAME and REGISTRY_PASSWORD from the
// base's secret, as Modal's STATIC_CREDS registry config takes them.
func (r *registryBase) credentials() (*Credentials, error) {
	if r.secret == nil {
		return nil, nil
	}
	vars, err := r.secret.load()
	if err != nil {
		return nil, err
	}
	c := &Credentials{Username: vars["REGISTRY_USERNAME"], Password: vars["REGISTRY_PASSWORD"]}
	if c.Username == "" || c.Password == "" {
		return nil, fmt.Errorf("secret %s must hold REGISTRY_USERNAME and REGISTRY_PASSWORD (as Modal's from_registry secret)", r.secret.Repr())
	}
	return c, nil
}

// Puller fetches an image for a reference: the registry protocol, or an
// air-gapped source. The default is set by package registry's wiring in
// NewBuilder; tests may replace it with WithPuller.
type Puller func(ctx context.Context, ref string, creds *Credentials) (v1.Image, error)

// WithPuller sets how from_registry and Pull fetch images.
func WithPuller(p Puller) Option {
	return func(b *Builder) error { b.puller = p; return nil }
}

// pulledBase is what the store remembers of a from_registry reference.
type pulledBase struct {
	Ref     string `json:"ref"`
	ImageID string `json:"imageID"`
}

// fromRegistry resolves a from_registry base: the image pulled for this
// reference earlier, or a fresh pull (always with force).
func (b *Builder) fromRegistry(ctx context.Context, st *buildState, l *layer, in instruction, force bool, ev Event) (bool, error) {
	rb := l.root.registry
	rel := "bases/registry-" + sha256hex(rb.ref) + ".json"
	var last pulledBase
	if ok, err := b.store.readJSON(rel, &last); err != nil {
		return false, err
	} else if ok && !force {
		if rec, found, err := b.store.image(last.ImageID); err == nil && found && (rec.ChainID == "" || b.store.snaps.Exists(rec.ChainID)) {
			s, _, err := b.stateOf(rec)
			if err != nil {
				return false, err
			}
			*st = *s
			return true, nil
		}
	}
	rec, err := b.pull(ctx, rb.ref, rb, func(line string) {
		b.progress.Event(Event{Kind: EventOutput, Step: ev.Step, Total: ev.Total, Instruction: ev.Instruction, Line: line})
	})
	if err != nil {
		return false, &InvalidError{Method: l.method, Message: fmt.Sprintf("%s: %v", in.text, err)}
	}
	if err := b.store.writeJSON(rel, pulledBase{Ref: rb.ref, ImageID: rec.ID}); err != nil {
		return false, err
	}
	s, _, err := b.stateOf(rec)
	if err != nil {
		return false, err
	}
	*st = *s
	return false, nil
}

// pull fetches ref with the builder's puller and imports it.
func (b *Builder) pull(ctx context.Context, ref string, rb *registryBase, progress func(string)) (imageRecord, error) {
	if b.puller == nil {
		return imageRecord{}, fmt.Errorf("this builder cannot pull images (no Puller configured)")
	}
	var creds *Credentials
	if rb != nil {
		var err error
		if creds, err = rb.credentials(); err != nil {
			return imageRecord{}, err
		}
	}
	progress("pulling " + ref)
	img, err := b.puller(ctx, ref, creds)
	if err != nil {
		return imageRecord{}, err
	}
	return b.importImage(ctx, img, progress)
}
