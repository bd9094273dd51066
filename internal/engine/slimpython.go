package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/snapbuild/snapbuild/base"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// slimKind says where a debian_slim base comes from.
type slimKind int

const (
	// slimDebian: Debian's own python3, bootstrapped from the Debian archive
	// (the series a Debian suite ships: debianSuiteFor).
	slimDebian slimKind = iota
	// slimRegistry: Modal's python:<micro>-slim-bookworm, pulled through a
	// Docker Hub mirror (WithDebianSlimFromRegistry).
	slimRegistry
	// slimStandalone: Debian bookworm without Debian's Python, plus a
	// python-build-standalone CPython in /usr/local.
	slimStandalone
)

// slimSource is where this site gets the base of a debian_slim layer.
type slimSource struct {
	kind    slimKind
	ref     string // slimRegistry: the image pulled
	archive string // slimStandalone: the python-build-standalone tarball
	version string // slimStandalone: the full Python version the tarball holds
}

// slimSource decides, at build time, where the base of a debian_slim layer
// (or of a Dockerfile's FROM python:<series>, method != "debian_slim") comes
// from, in this order:
//
//  1. with a Docker Hub mirror (WithDebianSlimFromRegistry), Modal's own
//     image for the version, micro pins included;
//  2. for a series a Debian suite ships (3.11 bookworm, 3.13 trixie),
//     Debian's python3;
//  3. for another series, Debian bookworm plus the python-build-standalone
//     tarball add_python uses, when it is in PythonStandaloneDir.
//
// Anything else is an error that names both ways a site can provide it.
func (b *Engine) slimSource(method string, d *modal.DebianBase) (slimSource, error) {
	version := d.Version
	if version == "" {
		version = d.Python
	}
	if b.slimFromRegistry && method == "debian_slim" {
		return slimSource{kind: slimRegistry, ref: modal.DebianSlimImage(version)}, nil
	}
	if _, ok := modal.DebianSuiteFor[version]; ok {
		return slimSource{kind: slimDebian}, nil
	}
	mirror := fmt.Sprintf("a Docker Hub mirror serving Modal's base %s, configured in registries.conf "+
		"(a [[registry]] with prefix \"docker.io\" and a [[registry.mirror]]; the site configuration's registries_conf or --registries-conf names the file; Go: WithDebianSlimFromRegistry)", modal.DebianSlimImage(version))
	if version != d.Python {
		return slimSource{}, modal.Invalidf(method, "Python %s cannot be had on this site: only Modal's own image honours a micro version exactly, "+
			"and that needs %s. Without one, give the series alone (%s)", version, mirror, modal.PyRepr(d.Python))
	}
	build, ok := modal.StandaloneBuilds[d.Python]
	file := b.standalonePath(d.Python)
	if ok {
		if fi, err := os.Stat(file); err == nil && fi.Mode().IsRegular() {
			return slimSource{kind: slimStandalone, archive: file, version: build.Version}, nil
		}
	}
	return slimSource{}, modal.Invalidf(method, "Python %s cannot be had on this site: the Debian archive ships %s only. "+
		"Provide it one of two ways: (1) %s; or (2) the python-build-standalone archive %s in %s "+
		"(or in the directory python_standalone_dir in the site configuration, --python-standalone-dir or SNAPBUILD_PYTHON_STANDALONE_DIR names), downloaded on a connected machine from %s",
		d.Python, modal.OfflineSeries(), mirror, filepath.Base(file), b.PythonStandaloneDir(), standaloneURL(d.Python))
}

// debianSlimStandalone is a debian_slim base for a series Debian does not
// ship: Debian bookworm with SlimBuildPackages (gcc, build-essential, ...)
// and no Debian Python, and the python-build-standalone tree installed into
// /usr/local as the official python images install theirs (python, python3,
// pip, pip3 in /usr/local/bin), in one layer. Its cache key holds the
// tarball's content digest, not its path.
func (b *Engine) debianSlimStandalone(ctx context.Context, st *buildState, l *modal.Layer, in instruction, src slimSource, force bool, ev Event) (bool, error) {
	series := l.Root.Debian.Python
	var tree string // the unpacked python/ tree; a dry run needs only the digest
	if b.plan == nil {
		dir, err := b.unpackStandalone(l.Method, src.archive)
		if err != nil {
			return false, err
		}
		tree = filepath.Join(dir, "python")
		if _, err := os.Lstat(filepath.Join(tree, "bin", "python"+series)); err != nil {
			return false, &modal.InvalidError{Method: l.Method, Message: fmt.Sprintf(
				"%s holds no python/bin/python%s: is it a CPython %s install_only build?", src.archive, series, series)}
		}
	}
	sum, err := hashFile(src.archive)
	if err != nil {
		return false, err
	}
	d := base.Debian{Suite: l.Root.Debian.Suite, Packages: base.SlimBuildPackages, Mirror: b.mirror, Epoch: b.epoch,
		Python: &base.LocalPython{Dir: tree, Digest: sum.String()}}
	cached, _, err := b.bootstrapDebian(ctx, st, d, in, force, ev)
	if err != nil {
		return false, err
	}
	st.config.Env = append(d.Env(), "PYTHON_VERSION="+src.version)
	return cached, nil
}
