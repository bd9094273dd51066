// Package dockerfile converts a Dockerfile into BuildKit's LLB, the build graph
// snapbuild's solver is to run.
//
// Convert hands the Dockerfile to BuildKit's own converter
// (github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb), used
// standalone: no daemon, no gateway client. The meaning of every instruction
// is therefore BuildKit's, which is Docker's: ARG scoping, heredocs, the
// ENTRYPOINT/CMD rule, ADD of archives by content, owners of copied and
// created directories, stages the target does not need left out of the graph.
// What snapbuild supplies is the seam to its own world, the MetaResolver that
// answers "which image is this reference, and what is its config" from the
// store or a registry.
//
// The result is a pb.Definition (the marshalled llb.State of the target
// stage), the image config the build produces, and the digest every base
// image resolved to. Source ops name images pinned by digest
// ("docker-image://docker.io/library/debian:bookworm@sha256:…"), so the store
// can hand the solver exactly the image the config came from. The build
// context is one local source op, named Options.ContextName.
//
// The builder (package snapbuild) converts every Dockerfile and every Modal
// layer on a parent with this package; see docs/architecture.md.
package dockerfile
