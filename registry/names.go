package registry

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// AnnotationRefName is the OCI index annotation skopeo's oci:DIR:TAG
	// and oci-archive:FILE:TAG select an image by.
	AnnotationRefName = ocispec.AnnotationRefName
	// AnnotationImageName is containerd's index annotation for an image's
	// full name: `ctr images import` names the image by it, and so does
	// `podman load` (in preference to org.opencontainers.image.ref.name).
	AnnotationImageName = "io.containerd.image.name"
)

// FullName is name as a full reference, with its domain and tag, as
// Docker, podman and containerd read it: "app" is
// "docker.io/library/app:latest", "registry.local:5000/team/app:v1" stays
// as it is. A name with a digest keeps the digest and gets no tag.
func FullName(name string) (string, error) {
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("image name %q: %w", name, err)
	}
	return reference.TagNameOnly(n).String(), nil
}

// IndexAnnotations are the annotations of an image's entry in the
// index.json of an OCI layout or archive, for an output tagged tag (the
// :TAG of oci:DIR:TAG; "" for none) of the image whose full name is
// fullName ("" when it has none):
//
//   - org.opencontainers.image.ref.name: tag as given, as skopeo writes
//     it; without a tag, fullName.
//   - io.containerd.image.name: the full name the importer gives the image.
//     fullName without a tag; the tag's full name when the tag is itself a
//     name (it holds a "/" or a ":", e.g. "team/app:v2"); else fullName's
//     repository with the tag ("latest" of docker.io/library/app:v1 is
//     docker.io/library/app:latest).
//
// Without both a tag and a full name the result is nil: an untagged entry,
// which podman names by nothing and ctr by "import-DATE".
func IndexAnnotations(tag, fullName string) map[string]string {
	ann := map[string]string{}
	switch {
	case tag == "":
		if fullName != "" {
			ann[AnnotationRefName] = fullName
			ann[AnnotationImageName] = fullName
		}
	case strings.ContainsAny(tag, "/:@"):
		ann[AnnotationRefName] = tag
		if n, err := FullName(tag); err == nil {
			ann[AnnotationImageName] = n
		}
	default:
		ann[AnnotationRefName] = tag
		if fullName == "" {
			break
		}
		if n, err := reference.ParseNormalizedNamed(fullName); err == nil {
			if t, err := reference.WithTag(reference.TrimNamed(n), tag); err == nil {
				ann[AnnotationImageName] = t.String()
			}
		}
	}
	if len(ann) == 0 {
		return nil
	}
	return ann
}

// LayoutNames lists the tags (org.opencontainers.image.ref.name) of the
// images in the OCI layout directory dir, in index order: what
// oci:DIR:TAG can name. Untagged entries are left out.
func LayoutNames(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("%s is not an OCI layout: %w", dir, err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s/index.json: %w", dir, err)
	}
	var names []string
	for _, m := range idx.Manifests {
		if n := m.Annotations[ocispec.AnnotationRefName]; n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}

// SourceName is the image name an air-gapped source carries, in the
// familiar form docker and podman print ("hello:latest",
// "registry.local:5000/team/app:v1"), as `docker load`, `podman load` and
// `ctr images import` read it; "" when the source names no image.
//
//   - docker-archive:FILE:REF is REF; docker-archive:FILE is the RepoTags
//     entry of its only image.
//   - oci:DIR[:TAG] and oci-archive:FILE[:TAG] are the chosen entry's
//     io.containerd.image.name, else its org.opencontainers.image.ref.name
//     when that is a name rather than a bare tag (it holds a "/" or a ":";
//     a bare "latest" names no repository).
//
// A registry reference is not an air-gapped source: its name is itself.
func SourceName(ref Reference) (string, error) {
	var candidates []string
	switch ref.Transport {
	case Docker:
		return familiar(ref.Name.String()), nil
	case DockerArchive:
		if ref.Name != nil {
			return familiar(ref.Name.String()), nil
		}
		t, err := indexTar(ref.Path)
		if err != nil {
			return "", err
		}
		raw, err := t.read("manifest.json")
		if err != nil {
			return "", fmt.Errorf("%s: not a docker-archive: %w", ref, err)
		}
		var m []struct{ RepoTags []string }
		if err := json.Unmarshal(raw, &m); err != nil {
			return "", fmt.Errorf("%s: manifest.json: %w", ref, err)
		}
		if len(m) == 1 && len(m[0].RepoTags) > 0 {
			candidates = m[0].RepoTags[:1]
		}
	case OCI, OCIArchive:
		var idx v1.ImageIndex
		var err error
		if ref.Transport == OCI {
			idx, err = layout.ImageIndexFromPath(ref.Path)
		} else {
			idx, err = openOCIArchive(ref.Path)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return "", fmt.Errorf("%s: index.json: %w", ref, err)
		}
		// The entry fromIndex pulls; several entries under one tag are one
		// image's platforms and share its name.
		for _, d := range im.Manifests {
			if ref.Tag == "" || d.Annotations[AnnotationRefName] == ref.Tag {
				candidates = append(candidates, d.Annotations[AnnotationImageName])
				if rn := d.Annotations[AnnotationRefName]; strings.ContainsAny(rn, "/:") {
					candidates = append(candidates, rn)
				}
				break
			}
		}
	}
	for _, c := range candidates {
		if n := familiar(c); n != "" {
			return n, nil
		}
	}
	return "", nil
}

// familiar is name in the form docker prints it, with its tag
// ("docker.io/library/app" is "app:latest"); "" when name is not an image
// name.
func familiar(name string) string {
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return ""
	}
	return reference.FamiliarString(reference.TagNameOnly(n))
}
