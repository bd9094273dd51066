package engine

import (
	"fmt"
	"strconv"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// Entries are what a build's progress counts: what the user wrote. A recipe
// entry or Modal method call (one layer) is one entry, whatever number of
// Dockerfile instructions it lowers to; from_dockerfile and
// dockerfile_commands hold Dockerfile text the user wrote, so there each
// instruction is an entry of its own.

// callOf is the call that made l as the user wrote it, e.g.
// `apt_install(["git"])`, or the method name alone (`uv_pip_install`) when
// the layer does not keep its arguments.
func callOf(l *modal.Layer) string {
	if l.Call != "" {
		return l.Call
	}
	if r := l.Root; r != nil {
		switch {
		case r.Debian != nil:
			return fmt.Sprintf("%s(python_version=%s)", l.Method, strconv.Quote(r.Debian.Version))
		case r.Registry != nil:
			return fmt.Sprintf("%s(%s)", l.Method, strconv.Quote(r.Registry.Ref))
		case r.Scratch:
			return l.Method + "()"
		case r.FromID != "" && l.Method == "from_id":
			return fmt.Sprintf("from_id(%s)", strconv.Quote(r.FromID))
		}
	}
	return l.Method
}

// entryLabel is how the progress names the entry that instruction in of l
// starts: the instruction itself for Dockerfile entries, else the call,
// and for debian_slim what its base is made of on this site (its FROM line,
// Modal's, stays the image's history).
func (b *Engine) entryLabel(l *modal.Layer, in instruction) string {
	if l.PerInstruction() {
		return in.Text
	}
	label := callOf(l)
	if l.Root != nil && l.Root.Debian != nil && l.Method == "debian_slim" {
		if src, err := b.slimSource(l.Method, l.Root.Debian); err == nil {
			label += ": " + slimDescription(l.Root.Debian, src)
		}
	}
	return label
}

// slimDescription says what a debian_slim base is made of.
func slimDescription(d *modal.DebianBase, src slimSource) string {
	switch src.kind {
	case slimRegistry:
		return fmt.Sprintf("Modal's base image %s (pulled)", src.ref)
	case slimStandalone:
		return fmt.Sprintf("Debian %s base with python-build-standalone Python %s (bootstrapped)", d.Suite, src.version)
	}
	return fmt.Sprintf("Debian %s base with Python %s (bootstrapped)", d.Suite, d.Python)
}
