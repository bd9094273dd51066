package testimage

import (
	"runtime"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/store"
)

// StubID is the image ID PutStub records.
const StubID = "im-stubstubstubstubstub12"

// PutStub records in s an image with no layers (config: PATH=/bin, CMD sh),
// for tests whose steps need no sandbox, and returns its ID, StubID.
func PutStub(s *store.Store) (string, error) {
	m, err := s.Blobs().WriteImage(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}},
	}, nil)
	if err != nil {
		return "", err
	}
	return StubID, s.PutImage(store.Image{ID: StubID, Manifest: m})
}
