// Package snapbuild builds container images locally, rootless and offline,
// with the API of Modal's modal.Image.
//
// An Image is an immutable value built by chaining methods that mirror
// modal.Image (DebianSlim, AptInstall, RunCommands, Env, Workdir, ...). Each
// method appends one Modal "layer": the Dockerfile-like instructions that Modal
// emits for it (each method's godoc quotes them), starting with "FROM base".
// A Builder builds the chain layer by layer: each layer's text, on FROM its
// parent, goes through BuildKit's Dockerfile converter to LLB, which
// snapbuild's solver runs (independent steps at once, unneeded ones never):
// each RUN runs in a libcontainer sandbox on an overlayfs snapshot of its
// parent, the snapshot's upper dir becomes a zstd OCI layer, and each step is
// cached by content. Dockerfiles (FromDockerfile, DockerfileCommands) take
// the same path, with Docker's semantics.
//
// A program that builds images must call Init first in main:
//
//	func main() {
//		snapbuild.Init()
//		...
//	}
//
// Init may re-execute the program (as libcontainer's container init, or into
// a user namespace when not run as root); see sandbox.Init and
// sandbox.EnterNamespace. A program that wants a fully cached build to run as
// one process, as the snapbuild command does, calls sandbox.Init instead,
// builds WithoutSandbox, and calls sandbox.EnterNamespace and builds again
// only when Build returns ErrNeedsSandbox.
//
// Errors found while chaining (a bad argument) are kept in the Image and
// returned by Image.Err and by Builder.Build, so a chain reads like Python's.
package snapbuild

import "github.com/snapbuild/snapbuild/sandbox"

// Init must be the first call in main of any program that builds or runs
// images. It handles libcontainer's "init" re-execution (sandbox.Init) and
// moves the process into a user namespace (rootless) or a private mount
// namespace (root) by re-executing it (sandbox.EnterNamespace). It may not
// return: it exits the process when it ran a re-executed role, and the
// process that re-executed exits with the status of the one it started.
func Init() {
	sandbox.Init()
	sandbox.EnterNamespace()
}
