package snapbuild

import (
	"os"
	"testing"

	"github.com/snapbuild/snapbuild/internal/engine"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// instruction is a parsed Dockerfile instruction of a layer.
type instruction = modal.Instruction

func uNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs (namespaced) root")
	}
}

// ctxFile is a file of a layer's build context, by its path.
type ctxFile struct{ path string }

// resolveContext lists the files of l's build context (engine.ContextPaths).
func resolveContext(l *modal.Layer) ([]ctxFile, error) {
	paths, err := engine.ContextPaths(l)
	files := make([]ctxFile, len(paths))
	for i, p := range paths {
		files[i] = ctxFile{path: p}
	}
	return files, err
}
