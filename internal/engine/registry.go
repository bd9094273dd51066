package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/store"
	"github.com/snapbuild/snapbuild/oci"
	"github.com/snapbuild/snapbuild/registry"
)

// Puller is snapbuild.Puller.
type Puller func(ctx context.Context, ref string, creds *modal.Credentials) (v1.Image, error)

// WithPuller is snapbuild.WithPuller.
func WithPuller(p Puller) Option {
	return func(b *Engine) error { b.puller = p; return nil }
}

// pulledBase is what the store remembers of a from_registry reference.
type pulledBase struct {
	Ref     string `json:"ref"`
	ImageID string `json:"imageID"`
}

// registryBaseRel is where the store records the image pulled for ref.
func registryBaseRel(ref string) string { return "bases/registry-" + modal.SHA256Hex(ref) + ".json" }

// fromRegistry resolves a from_registry base: the image pulled for this
// reference earlier, or one pulled or loaded under its name (snapbuild
// pull, snapbuild load), which serve offline; else, and always with force,
// a fresh pull.
func (b *Engine) fromRegistry(ctx context.Context, st *buildState, l *modal.Layer, in instruction, force bool, ev Event) (bool, error) {
	rb := l.Root.Registry
	rec, cached, err := b.pulledBase(rb.Ref, force || b.repull("from_registry "+rb.Ref))
	if err != nil {
		return false, err
	}
	if !cached && b.plan != nil {
		return false, &wouldRun{"pull " + rb.Ref}
	}
	if !cached {
		creds, err := rb.Credentials(ctx)
		if err != nil {
			return false, &modal.InvalidError{Method: l.Method, Message: err.Error()}
		}
		rec, err = b.pull(ctx, rb.Ref, creds, func(line string) {
			b.progress.Event(ev.output(line))
		})
		if err != nil {
			if b.pullBases && ctx.Err() == nil {
				if _, found, _ := b.pulledBase(rb.Ref, false); found {
					return false, &modal.InvalidError{Method: l.Method, Message: fmt.Sprintf("%s: --pull could not pull %s again: %v; build without --pull to use the image the store has", in.Text, rb.Ref, err)}
				}
			}
			return false, &modal.InvalidError{Method: l.Method, Message: fmt.Sprintf("%s: %v", in.Text, err)}
		}
		if err := b.store.WriteJSON(registryBaseRel(rb.Ref), pulledBase{Ref: rb.Ref, ImageID: rec.ID}); err != nil {
			return false, err
		}
		b.pins.mark("pulled", "from_registry "+rb.Ref)
	}
	s, _, err := b.stateOf(rec)
	if err != nil {
		return false, err
	}
	*st = *s
	return cached, nil
}

// pulledBase finds a usable stored image for a from_registry reference
// (see fromRegistry); none with force.
func (b *Engine) pulledBase(ref string, force bool) (store.Image, bool, error) {
	if force {
		return store.Image{}, false, nil
	}
	var last pulledBase
	ok, err := b.store.ReadJSON(registryBaseRel(ref), &last)
	if err != nil {
		return store.Image{}, false, err
	}
	if ok {
		if rec, found, err := b.store.Image(last.ImageID); err == nil && found && b.store.ImageUsable(rec) {
			return rec, true, nil
		}
	}
	if rec, err := b.store.Resolve(ref); err == nil && b.store.ImageUsable(rec) {
		return rec, true, nil
	}
	return store.Image{}, false, nil
}

// pull fetches ref with the builder's puller and imports it.
func (b *Engine) pull(ctx context.Context, ref string, creds *modal.Credentials, progress func(string)) (store.Image, error) {
	if b.noSandbox {
		return store.Image{}, b.needsSandbox("pulling " + ref)
	}
	puller := b.puller
	if puller == nil {
		puller = b.defaultPuller
	}
	progress("pulling " + ref)
	img, err := puller(ctx, ref, creds)
	if err != nil {
		return store.Image{}, err
	}
	return b.store.Import(ctx, img, store.ImportOptions{Progress: progress, Warn: func(line string) {
		b.progress.Event(Event{Kind: EventWarn, Line: line})
	}})
}

// WithRegistryOptions is snapbuild.WithRegistryOptions.
func WithRegistryOptions(opts ...registry.Option) Option {
	return func(b *Engine) error { b.registryOpts = append(b.registryOpts, opts...); return nil }
}

// defaultPuller pulls with package registry and the builder's options.
func (b *Engine) defaultPuller(ctx context.Context, ref string, creds *modal.Credentials) (v1.Image, error) {
	r, err := registry.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	opts := slices.Clone(b.registryOpts)
	if creds != nil {
		opts = append(opts, registry.WithCredentials(creds.Username, creds.Password))
	}
	return registry.Pull(ctx, r, opts...)
}

// Pull is snapbuild.Builder.Pull.
func (b *Engine) Pull(ctx context.Context, ref string, creds *modal.Credentials) (ImageInfo, error) {
	r, err := registry.ParseReference(ref)
	if err != nil || r.Transport == registry.Docker {
		// docker://REF is REF, as from_registry and FROM name it.
		ref = strings.TrimPrefix(ref, "docker://")
		return b.pullNamed(ctx, ref, ref, true, creds)
	}
	name, err := registry.SourceName(r)
	if err != nil {
		return ImageInfo{}, err
	}
	return b.pullNamed(ctx, ref, name, true, creds)
}

// PullAs is snapbuild.Builder.PullAs.
func (b *Engine) PullAs(ctx context.Context, ref, name string, creds *modal.Credentials) (ImageInfo, error) {
	return b.pullNamed(ctx, ref, name, name == ref, creds)
}

// pullNamed pulls ref, records it as the pulled base of ref when record is
// set, and names it name unless name is "".
func (b *Engine) pullNamed(ctx context.Context, ref, name string, record bool, creds *modal.Credentials) (ImageInfo, error) {
	if name != "" {
		if err := ValidateName(name); err != nil {
			return ImageInfo{}, err
		}
	}
	if err := b.store.LockExclusive(); err != nil {
		return ImageInfo{}, err
	}
	rec, err := b.pull(ctx, ref, creds, func(line string) {
		b.progress.Event(Event{Kind: EventOutput, Instruction: "PULL " + ref, Line: line})
	})
	if err == nil && record {
		err = b.store.WriteJSON(registryBaseRel(ref), pulledBase{Ref: ref, ImageID: rec.ID})
	}
	b.store.Unlock() // empties tmp/
	if err != nil {
		return ImageInfo{}, err
	}
	if name != "" {
		if err := b.Tag(name, rec.ID); err != nil {
			return ImageInfo{}, err
		}
	}
	return b.Inspect(rec.ID)
}

// ExportOptions is snapbuild.ExportOptions.
type ExportOptions struct {
	// Compression of the written layers: "gzip", "zstd", or "" for the
	// destination's default, chosen so that the consumers a user is likely
	// to have read the output (docs/outputs.md has the table):
	//
	//   - docker://REF (push): gzip. Docker before 23 (Debian 12's docker.io
	//     is 20.10) pulls zstd layers only to fail with "archive/tar: invalid
	//     tar header"; containerd, podman, buildah, crane and Docker 23 and
	//     later read both.
	//   - docker-archive:FILE: gzip, always. The `docker save` format has no
	//     media types, so a reader has to guess; "zstd" is refused.
	//   - oci-archive:FILE: gzip. umoci 0.4 (Debian 12's) refuses tar+zstd
	//     layers, and gzip is the one compression every OCI reader must take;
	//     podman load, ctr import and skopeo read zstd too.
	//   - oci:DIR: as stored (snapbuild's own layers are zstd, pulled layers
	//     keep theirs): the store's blobs are copied as they are.
	//
	// Recompressing changes layer digests and the manifest, never the
	// config or diff IDs.
	Compression string

	bareRegistry bool // Push: a bare REF is a registry reference
}

// ExportWith is snapbuild.Builder.ExportWith.
func (b *Engine) ExportWith(ctx context.Context, ref, dest string, o ExportOptions) error {
	r, err := registry.ParseReference(dest)
	if err != nil {
		return err
	}
	if r.Transport == registry.Docker && !strings.HasPrefix(dest, "docker://") && !o.bareRegistry {
		return fmt.Errorf("export %s: give the destination's transport: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or docker://REF (a push)", dest)
	}
	comp, err := exportCompression(r.Transport, o.Compression)
	if err != nil {
		if o.bareRegistry {
			return fmt.Errorf("push %s: %w", dest, err)
		}
		return fmt.Errorf("export %s: %w", dest, err)
	}
	if r.Transport == registry.DockerArchive && r.Name == nil && store.CanonicalRef(ref) != "" {
		// Tagged with the image's name, so that docker/podman load name it.
		if r, err = registry.ParseReference(dest + ":" + ref); err != nil {
			return err
		}
	}
	fullName := ""
	if !strings.HasPrefix(ref, "im-") {
		fullName, _ = registry.FullName(ref)
	}
	rec, err := b.store.Resolve(ref)
	if err != nil {
		return err
	}
	manifest, err := b.exportManifest(ctx, ref, rec)
	if err != nil {
		return err
	}
	if comp == "" && r.Transport == registry.OCI {
		// The store's own writer: blobs as they are.
		or, err := oci.ParseReference(dest)
		if err != nil {
			return err
		}
		return b.store.Blobs().Export(manifest, or, oci.WithIndexAnnotations(registry.IndexAnnotations(or.Tag, fullName)))
	}
	img, err := b.store.V1Image(manifest)
	if err != nil {
		return err
	}
	opts := slices.Clone(b.registryOpts)
	if comp != "" {
		opts = append(opts, registry.WithCompression(comp))
	}
	if fullName != "" {
		opts = append(opts, registry.WithImageName(fullName))
	}
	opts = append(opts, registry.WithTempDir(filepath.Join(b.store.Root(), "tmp")))
	return registry.Write(ctx, img, r, opts...)
}

// exportCompression is the layer compression ExportWith writes to a
// destination of transport t when asked for comp ("" for the default; see
// ExportOptions). "" in the result keeps layers as stored.
func exportCompression(t registry.Transport, comp string) (registry.Compression, error) {
	switch comp {
	case "":
		if t == registry.OCI {
			return "", nil
		}
		return registry.Gzip, nil
	case "gzip", "zstd":
		if t == registry.DockerArchive && comp == "zstd" {
			return "", fmt.Errorf("docker-archive layers are gzip (the format has no media types, and docker load before Docker 23 reads no zstd): drop --compression zstd, or export zstd layers to oci-archive:FILE")
		}
		return registry.Compression(comp), nil
	case "zstd:chunked":
		return "", fmt.Errorf("compression %q (--compression) is not offered: export gzip or zstd, then convert with skopeo copy --dest-compress-format zstd:chunked (see docs/outputs.md)", comp)
	}
	return "", fmt.Errorf("compression %q (--compression): choose gzip or zstd, or leave it unset for the destination's default", comp)
}

// Push is snapbuild.Builder.Push.
func (b *Engine) Push(ctx context.Context, ref, dest string, o ExportOptions) error {
	r, err := registry.ParseReference(dest)
	if err != nil {
		return err
	}
	if r.Transport != registry.Docker {
		return fmt.Errorf("push %s: the destination is not a registry: use docker://HOST/REPO:TAG (or export for files)", dest)
	}
	o.bareRegistry = true
	return b.ExportWith(ctx, ref, dest, o)
}

// sourceImage returns the image a build names as a source (a Dockerfile
// FROM, a COPY --from, a tool image such as micromamba's): the stored image
// of that name, else the reference pulled (a registry, through the
// configured mirrors, or an air-gapped source) and named in the store. A
// reference WithToolImage replaces is looked up and pulled as its
// replacement. The
// store's lock must be held. The error says how to provide the image.
func (b *Engine) sourceImage(ctx context.Context, method string, ev Event, ref string) (rec store.Image, pulled bool, err error) {
	ref = b.toolRef(ref)
	if rec, err := b.store.Resolve(ref); err == nil && b.store.ImageUsable(rec) && !b.repullSource(ref) {
		return rec, false, nil
	}
	if b.plan != nil {
		return store.Image{}, false, &wouldRun{"pull " + ref}
	}
	rec, err = b.pull(ctx, ref, nil, func(line string) {
		e := ev
		e.Kind, e.Line = EventOutput, line
		b.progress.Event(e)
	})
	if err != nil {
		if ctx.Err() != nil {
			return store.Image{}, false, ctx.Err()
		}
		if _, rerr := b.store.Resolve(ref); rerr == nil {
			return store.Image{}, false, &modal.InvalidError{Method: method, Message: fmt.Sprintf(
				"%s: --pull could not pull image %q again: %v; build without --pull to use the one in the store", ev.Instruction, ref, err)}
		}
		return store.Image{}, false, &modal.InvalidError{Method: method, Message: fmt.Sprintf(
			"%s: image %q is not in the store and could not be pulled: %v; pull it where its registry is reachable "+
				"(snapbuild pull %s, and snapbuild save/load to carry it), configure a mirror (registries.conf), "+
				"or build an image of that name (see README, \"Tool images\")", ev.Instruction, ref, err, ref)}
	}
	if ValidateName(ref) == nil {
		if err := b.store.SetName(ref, rec.ID); err != nil {
			return store.Image{}, false, err
		}
	}
	b.pins.mark("pulled", "FROM "+ref)
	return rec, true, nil
}

// repull reports whether the image of use ("from_registry REF", "FROM
// REF") is to be pulled although the store has one: with WithPull, once
// per Engine, as docker build --pull resolves every FROM tag again. Without
// it a tag in the store is used as it is and no registry is asked. The two
// uses are apart as the store records them apart (a from_registry base by
// reference, a FROM image under its name).
func (b *Engine) repull(use string) bool {
	return b.pullBases && !b.pins.is("pulled", use)
}

// repullSource is repull for the image of a FROM or COPY --from that the
// store holds under name ref: an image a build of this store named (a
// recipe's, a Dockerfile's -t) is not a registry's, and is used as it is.
func (b *Engine) repullSource(ref string) bool {
	if !b.repull("FROM "+ref) || strings.HasPrefix(ref, "im-") {
		return false
	}
	srcs, err := b.store.Sources()
	if err != nil {
		return true
	}
	_, built := srcs[ref]
	return !built
}

// WithDebianSlimFromRegistry is snapbuild.WithDebianSlimFromRegistry.
func WithDebianSlimFromRegistry(on bool) Option {
	return func(b *Engine) error { b.slimFromRegistry = on; return nil }
}

// slimRegistryLayer is debian_slim layer l as it is built on Modal's image
// ref (WithDebianSlimFromRegistry): that image pulled as its base, then
// Modal's debian_slim commands as steps of the layer, before its own.
func slimRegistryLayer(l *modal.Layer, ref string) *modal.Layer {
	rl := *l
	rl.Root = &modal.RootSpec{Registry: &modal.RegistryBase{Ref: ref}}
	rl.Commands = append([]string{l.Commands[0],
		"RUN apt-get update",
		"RUN apt-get install -y gcc gfortran build-essential",
		"RUN echo 'debconf debconf/frontend select Noninteractive' | debconf-set-selections",
	}, l.Commands[1:]...)
	return &rl
}
