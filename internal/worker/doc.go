// Package worker performs the ops of a BuildKit LLB graph on snapbuild's
// snapshots: it is the build.Worker (and build.Cache) that package
// internal/build's solver runs a pb.Definition on.
//
// A result (*Ref) is a committed overlay snapshot (package snapshot) together
// with the layers that make it, base layer first, as an image manifest lists
// them; or, for a local source, a directory. Each op works as follows:
//
//	source    docker-image://REF@DIGEST  the image whose manifest blob DIGEST is in
//	                                     the store; layers without a snapshot are
//	                                     unpacked (overlay.Apply), nothing is pulled
//	          local://NAME               the directory registered under NAME with
//	                                     Worker.AddLocal, read in place through
//	                                     the op's include and exclude patterns
//	          https://URL, http://URL    one file downloaded with the Worker's
//	                                     http.Client (WithHTTPClient), checked
//	                                     against http.checksum, named, owned and
//	                                     dated as BuildKit's http source does it
//	exec      snapshot.Prepare on the root mount's input, the other mounts bound
//	          in (read-only views, writable snapshots, cache and tmpfs
//	          directories, secrets as read-only files on a tmpfs of their
//	          own), the front end's package caches (WithPackageCaches)
//	          bound in, secret env added to the process's environment, the
//	          process from the op's Meta run by sandbox.Run,
//	          mount stubs removed, then every output mount's upper dir diffed
//	          (overlay.Diff) into one zstd layer (oci.Store.WriteLayer) and
//	          committed
//	file      mkfile, mkdir, rm, symlink and copy on a writable snapshot, with
//	          BuildKit's own copy code (github.com/tonistiigi/fsutil/copy) and
//	          BuildKit's rules for owners by name, modes, timestamps, wildcards,
//	          include and exclude patterns and ADD's archive unpacking; each
//	          output is committed as one layer
//	merge     the inputs' layers concatenated, each blob as it is (COPY --link:
//	          the stage, then the copy made on scratch, whose layer so keeps
//	          its digest whatever the base); layers without a snapshot on
//	          the chain below them are unpacked
//	diff      upper's layers past lower's when lower's are the first of
//	          upper's; otherwise one layer, the overlay differ's record of a
//	          writable snapshot of lower made equal to upper
//
// An op that changes nothing (an empty diff) returns its input's result: no
// empty layer is added. Worker.Cache records results by cache key under the
// worker's dir, so a later solve reuses them while their snapshots and blobs
// exist; on a miss it asks the remote cache given with WithRemoteCache
// (build --cache-from), whose records it makes local first; a failing process is an *ExitError with its exit code and the last
// lines of its output. Ops this worker cannot run yet (ssh mounts, CDI
// devices, insecure mode, extra hosts, git sources) fail with an error that
// names what is not supported.
//
// Secrets come from the SecretStore given with WithSecrets, by ID. Their
// values are read when an op runs and go only into the process: a secret
// mount's file lives on a tmpfs under the worker's run dir for the op's
// lifetime, its mount target is removed from the upper dir like other
// mount stubs, and cache keys hold secret IDs, never values (as in
// BuildKit). A required secret the store lacks fails the op with an error
// that names it and wraps ErrSecretNotFound; an optional one is left out.
//
// An http source's content key (ContentKey) is the digest of the file it
// downloads, with the name, mode, owner and Last-Modified the file gets, so
// the solver reuses results while the URL serves the same bytes. The
// worker keeps the ETag of the last download of each source and asks with
// If-None-Match, so an unchanged file with an ETag is not downloaded again
// (BuildKit's revalidation). A source pinned by http.checksum is keyed by
// its op alone and fetched only when it runs.
//
// Ownership and file capabilities are read and written inside the builder's
// user namespace in rootless mode (sandbox.Init), so the layers carry the ids
// and the security.capability xattrs the image sees.
//
// The builder (package snapbuild) runs every Dockerfile and every Modal
// layer on a parent on this worker; see docs/architecture.md.
package worker
