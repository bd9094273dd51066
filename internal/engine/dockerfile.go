package engine

import (
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/snapbuild/snapbuild/internal/modal"
)

var pythonImageRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:docker\.io/)?(?:library/)?python:(3\.\d+)(?:-slim)?(?:-(bookworm|trixie))?$`)
})

// offlinePython maps Docker Hub's python:<series>[-slim][-<codename>] to the
// Debian base snapbuild can bootstrap offline (the same as debian_slim's, so
// it also holds gcc and build-essential), or nil.
func offlinePython(ref string) *modal.DebianBase {
	m := pythonImageRE().FindStringSubmatch(ref)
	if m == nil {
		return nil
	}
	suite, ok := modal.DebianSuiteFor[m[1]]
	if !ok || (m[2] != "" && m[2] != suite) {
		return nil
	}
	return &modal.DebianBase{Suite: suite, Python: m[1], Version: m[1]}
}

// checkDockerfile checks a Dockerfile's shape: ARG lines, then FROM, then
// anything.
func checkDockerfile(ins []instruction) error {
	for _, in := range ins {
		switch in.Cmd.(type) {
		case *instructions.ArgCommand:
			continue
		case *instructions.Stage:
			return nil
		}
		return fmt.Errorf("line %d: a Dockerfile must start with FROM (ARG lines may come before it)", in.Line)
	}
	return errors.New("the Dockerfile has no FROM")
}
