// Package build runs a build graph written in BuildKit's LLB: it loads a
// *pb.Definition (github.com/moby/buildkit/solver/pb, as llb.State.Marshal
// writes it), checks it, computes one cache key per vertex, and executes the
// vertices the target needs on a Worker, independent ones in parallel.
//
// The package is the solver half of the engine, with a seam on each side:
//
//   - Worker (worker.go) performs one op on filesystem results (Ref values)
//     it made itself: a source, an exec, a file op, optionally a merge or a
//     diff. The solver never looks inside a Ref.
//   - Cache (worker.go) maps a vertex's cache key to the results stored
//     for it, so a hit skips the vertex and everything below it.
//
// The flow of one Solve:
//
//	Load(def)      decode every op, digest = sha256 of its bytes (as BuildKit),
//	               resolve inputs, reject malformed graphs (missing input,
//	               bad output index, cycle, unknown op kind)
//	keys           top-down: a vertex's key needs its inputs' keys, not their
//	               results (see Key for the schema); local sources add a
//	               content checksum from Worker.ContentKey
//	execute        from the target down: a cache hit ends the walk there; on a
//	               miss the inputs are resolved in parallel, then the op runs
//	               on the Worker and its outputs are put in the Cache
//
// Only vertices the target needs are visited; a vertex shared by several
// dependants runs once; at most Parallelism worker calls run at a time; the
// first failure cancels the others, which report VertexCanceled, and Solve
// returns it as a *VertexError.
//
// The builder (package snapbuild) solves every Dockerfile and every Modal
// layer on a parent with this package, on internal/worker; see
// docs/architecture.md for the layers that still take the older
// interpreter.
package build
