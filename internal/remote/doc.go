// Package remote hands snapbuild's build definitions to a BuildKit daemon
// (buildkitd) instead of the local worker, as buildctl build does.
//
// A definition goes as the engine made it, with three changes made by
// RewriteSources: every docker-image:// source pinned to a manifest the
// local blob store holds (a Modal layer's parent, a Debian bootstrap, a
// pulled base) becomes an oci-layout:// source that buildkitd reads
// through the session from that store (SolveOpt.OCIStores, BuildKit's
// llb.OCILayout), so buildkitd pulls nothing snapbuild already has and
// needs no registry credentials. Local sources (the build context,
// run_function's runtime and sources) are synced through the session
// (SolveOpt.LocalMounts), secrets through BuildKit's secret provider: the
// definition holds secret IDs, never values. BuildKit's oci exporter
// writes the result into the local blob store through the session: a blob
// the store has is never sent again, and each new one is checked against
// its digest and size before it is stored.
//
// Layers are made by BuildKit's differ and compressor (zstd, as snapbuild's
// own), so their digests differ from a local build's.
package remote
