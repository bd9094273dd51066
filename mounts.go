package snapbuild

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/snapshot"
)

// Mount is one add_local_file or add_local_dir with copy=False: local files
// that are read and attached to a container when it starts, as Modal mounts
// them, instead of being built into a layer.
type Mount = contextInput

// mountsFile holds the runtime mounts of named images.
const mountsFile = "mounts.json"

// mountRecord is the stored form of a Mount.
type mountRecord struct {
	Local  string       `json:"local"`
	Remote string       `json:"remote"`
	Dir    bool         `json:"dir,omitempty"`
	Ignore *matcherSpec `json:"ignore,omitempty"`
}

// TagResult names the image of res, with its runtime mounts (see
// Result.Mounts), so that Run and Export of the name attach them.
func (b *Builder) TagResult(name string, res Result) error {
	if err := b.Tag(name, res.ID); err != nil {
		return err
	}
	if err := b.store.lockExclusive(); err != nil {
		return err
	}
	defer b.store.unlock()
	all := map[string][]mountRecord{}
	if _, err := b.store.readJSON(mountsFile, &all); err != nil {
		return err
	}
	delete(all, name)
	for _, m := range res.Mounts {
		local, err := filepath.Abs(expandHome(m.local))
		if err != nil {
			return err
		}
		rec := mountRecord{Local: local, Remote: m.remote, Dir: m.dir}
		if m.dir {
			if rec.Ignore, err = storedMatcher(m.ignore, m); err != nil {
				return err
			}
		}
		all[name] = append(all[name], rec)
	}
	return b.store.writeJSON(mountsFile, all)
}

// mountsOf returns the runtime mounts stored for ref when ref is a name.
func (b *Builder) mountsOf(ref string) ([]contextInput, error) {
	all := map[string][]mountRecord{}
	if _, err := b.store.readJSON(mountsFile, &all); err != nil {
		return nil, err
	}
	var out []contextInput
	for _, m := range all[ref] {
		in := contextInput{local: m.Local, remote: m.Remote, dir: m.Dir}
		if m.Ignore != nil {
			in.ignore = &FilePatternMatcher{spec: *m.Ignore}
		}
		out = append(out, in)
	}
	return out, nil
}

// mountFiles lists and hashes the files of runtime mounts, now.
func mountFiles(mounts []contextInput) ([]contextFile, error) {
	if len(mounts) == 0 {
		return nil, nil
	}
	return resolveContext(&layer{method: "add_local_*", context: mounts})
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
func (b *Builder) exportManifest(ctx context.Context, ref string, rec imageRecord) (ocispec.Descriptor, error) {
	mounts, err := b.mountsOf(ref)
	if err != nil || len(mounts) == 0 {
		return rec.Manifest, err
	}
	files, err := mountFiles(mounts)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := b.store.lockExclusive(); err != nil {
		return ocispec.Descriptor{}, err
	}
	defer b.store.unlock()
	st, cfg, err := b.stateOf(rec)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var inputs strings.Builder
	for _, f := range files {
		fmt.Fprintf(&inputs, "/%s %s %o\n", f.path, f.digest, f.mode)
	}
	instr := "COPY . / # add_local_* copy=False, written on export"
	key := stepKey(st, &layer{}, instruction{text: instr}, inputs.String(), b.epoch)
	if _, err := b.layerStep(ctx, st, key, instr, false, func(a *snapshot.Active) error {
		return attachMounts(ctx, a.Rootfs, files)
	}); err != nil {
		return ocispec.Descriptor{}, err
	}
	cfg.RootFS.DiffIDs = st.diffIDs
	cfg.History = st.history
	return b.store.blobs.WriteImage(cfg, st.layers)
}
