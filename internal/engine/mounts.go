package engine

import (
	"context"
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/store"
	"github.com/snapbuild/snapbuild/snapshot"
)

// Mount is snapbuild.Mount.
type Mount = modal.ContextInput

// mountsFile holds the runtime mounts of named images.
const mountsFile = "mounts.json"

// mountRecord is the stored form of a Mount.
type mountRecord struct {
	Local  string             `json:"local"`
	Remote string             `json:"remote"`
	Dir    bool               `json:"dir,omitempty"`
	Ignore *modal.MatcherSpec `json:"ignore,omitempty"`
}

// TagResult is snapbuild.Builder.TagResult.
func (b *Engine) TagResult(name string, res Result) error {
	_, err := b.TagResultWith(name, res, TagOptions{Replace: true})
	return err
}

// TagOptions is snapbuild.TagOptions.
type TagOptions struct {
	// Source names what defined the image, e.g. the absolute path of the
	// recipe or Modal file; it is recorded with the name. "" records none.
	Source string
	// Replace moves a name that names another image built from another
	// source (or from no recorded source: pulled, loaded or named with
	// Tag). Without it such a move is a *NameTakenError.
	Replace bool
}

// Tagged is snapbuild.Tagged.
type Tagged struct {
	// Previous is the image ID the name named before, when the name moved;
	// "" when the name is new or already named this image.
	Previous string `json:"previous,omitempty"`
	// PreviousSource is the source recorded for Previous ("" for none).
	PreviousSource string `json:"previousSource,omitempty"`
}

// NameTakenError is snapbuild.NameTakenError.
type NameTakenError struct {
	Name   string
	ID     string // the image the name names
	Source string // what defined it, "" when not recorded
	// NewSource is the source of the image that was to take the name.
	NewSource string
}

func (e *NameTakenError) Error() string {
	from := "not built from a recorded file (pulled, loaded or tagged)"
	if e.Source != "" {
		from = "built from " + e.Source
	}
	return fmt.Sprintf("image name %q already names %s, %s; the image of %s would replace it: name it otherwise (-t NAME), or pass --replace to move the name",
		e.Name, e.ID, from, e.NewSource)
}

// nameTaken is the *NameTakenError for moving name, which names image id
// from source, to an image from o.Source; nil when o allows the move.
func nameTaken(name, id, source string, o TagOptions) error {
	if o.Replace || (source != "" && source == o.Source) {
		return nil
	}
	return &NameTakenError{Name: name, ID: id, Source: source, NewSource: o.Source}
}

// CheckName is snapbuild.Builder.CheckName.
func (b *Engine) CheckName(name string, o TagOptions) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := b.store.LockShared(); err != nil {
		return err
	}
	defer b.store.Unlock()
	names, err := b.store.Names()
	if err != nil {
		return err
	}
	old, ok := names[name]
	if !ok {
		return nil
	}
	sources, err := b.store.Sources()
	if err != nil {
		return err
	}
	return nameTaken(name, old, sources[name], o)
}

// TagResultWith is snapbuild.Builder.TagResultWith.
func (b *Engine) TagResultWith(name string, res Result, o TagOptions) (Tagged, error) {
	if err := ValidateName(name); err != nil {
		return Tagged{}, err
	}
	if err := b.store.LockExclusive(); err != nil {
		return Tagged{}, err
	}
	defer b.store.Unlock()
	rec, err := b.store.Resolve(res.ID)
	if err != nil {
		return Tagged{}, err
	}
	names, err := b.store.Names()
	if err != nil {
		return Tagged{}, err
	}
	sources, err := b.store.Sources()
	if err != nil {
		return Tagged{}, err
	}
	var t Tagged
	if old, ok := names[name]; ok && old != rec.ID {
		t = Tagged{Previous: old, PreviousSource: sources[name]}
		if err := nameTaken(name, old, t.PreviousSource, o); err != nil {
			return Tagged{}, err
		}
	}
	all := map[string][]mountRecord{}
	if _, err := b.store.ReadJSON(mountsFile, &all); err != nil {
		return Tagged{}, err
	}
	delete(all, name)
	for _, m := range res.Mounts {
		local, err := modal.AbsLocal(m.Local)
		if err != nil {
			return Tagged{}, err
		}
		mr := mountRecord{Local: local, Remote: m.Remote, Dir: m.Dir}
		if m.Dir {
			if mr.Ignore, err = StoredMatcher(m.Ignore, m); err != nil {
				return Tagged{}, err
			}
		}
		all[name] = append(all[name], mr)
	}
	// Mounts first: a crash before the name moves leaves the old image
	// with the new image's mounts, which the next tag rewrites.
	if err := b.store.WriteJSON(mountsFile, all); err != nil {
		return Tagged{}, err
	}
	return t, b.store.SetNameFrom(name, rec.ID, o.Source)
}

// mountsOf returns the runtime mounts stored for ref when ref is a name.
func (b *Engine) mountsOf(ref string) ([]modal.ContextInput, error) {
	all := map[string][]mountRecord{}
	if _, err := b.store.ReadJSON(mountsFile, &all); err != nil {
		return nil, err
	}
	var out []modal.ContextInput
	for _, m := range all[ref] {
		in := modal.ContextInput{Local: m.Local, Remote: m.Remote, Dir: m.Dir}
		if m.Ignore != nil {
			in.Ignore = m.Ignore.Matcher()
		}
		out = append(out, in)
	}
	return out, nil
}

// mountFiles lists and hashes the files of runtime mounts, now.
func mountFiles(mounts []modal.ContextInput) ([]contextFile, error) {
	if len(mounts) == 0 {
		return nil, nil
	}
	return resolveContext(&modal.Layer{Method: "add_local_*", Context: mounts})
}

// attachMounts writes the runtime mounts' files into a container's rootfs.
func attachMounts(ctx context.Context, rootfs string, files []contextFile) error {
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copyInto(rootfs, "/"+f.path, f); err != nil {
			return fmt.Errorf("add_local_* (copy=False): %s: %w", f.source, err)
		}
	}
	return nil
}

// exportManifest returns the manifest to export for ref: the image's own,
// or, when ref names an image with runtime mounts, one with an extra last
// layer holding the mounted files (cached like a COPY step).
func (b *Engine) exportManifest(ctx context.Context, ref string, rec store.Image) (ocispec.Descriptor, error) {
	mounts, err := b.mountsOf(ref)
	if err != nil || len(mounts) == 0 {
		return rec.Manifest, err
	}
	files, err := mountFiles(mounts)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := b.store.LockExclusive(); err != nil {
		return ocispec.Descriptor{}, err
	}
	defer b.store.Unlock()
	st, cfg, err := b.stateOf(rec)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var inputs strings.Builder
	for _, f := range files {
		fmt.Fprintf(&inputs, "/%s %s %o\n", f.path, f.digest, f.mode)
	}
	instr := "COPY . / # add_local_* copy=False, written on export"
	key := stepKey(st, &modal.Layer{}, instruction{Text: instr}, inputs.String(), b.epoch)
	if _, err := b.layerStep(ctx, st, key, instr, false, func(a *snapshot.Active) error {
		return attachMounts(ctx, a.Rootfs, files)
	}); err != nil {
		return ocispec.Descriptor{}, err
	}
	cfg.RootFS.DiffIDs = st.diffIDs
	cfg.History = st.history
	// The whole config, Docker's extensions (HEALTHCHECK, SHELL) included.
	return b.store.Blobs().WriteDockerImage(cfg, st.layers)
}

// StoredMatcher returns the stored form of m for a runtime mount of the
// directory in: a FilePatternMatcher as it is, anything else as the list
// of files it selects now.
func StoredMatcher(m modal.Matcher, in modal.ContextInput) (*modal.MatcherSpec, error) {
	switch m := m.(type) {
	case nil:
		return nil, nil
	case *modal.FilePatternMatcher:
		s := modal.SpecOf(m)
		return &s, nil
	}
	files, err := addDir(nil, in)
	if err != nil {
		return nil, err
	}
	keep := []string{}
	prefix := strings.TrimPrefix(in.Remote, "/")
	for _, f := range files {
		rel := f.path
		if prefix != "" {
			rel = strings.TrimPrefix(rel, prefix+"/")
		}
		keep = append(keep, rel)
	}
	return &modal.MatcherSpec{Keep: keep}, nil
}
