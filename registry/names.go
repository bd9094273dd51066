package registry

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

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
