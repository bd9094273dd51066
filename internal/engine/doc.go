// Package engine is snapbuild.Builder's implementation: it builds the
// layers of a modal.Image chain (internal/modal) into the store
// (internal/store).
//
// Per layer, the layer's Modal text on FROM its parent goes through
// BuildKit's Dockerfile converter (internal/dockerfile) with a resolver
// that makes or finds the base in the store (a Debian bootstrap, a pull, a
// stored image); what the text cannot say (secrets, GPU devices, volumes,
// run_function's runtime and source) is added to the definition, which the
// solver (internal/build) runs on the worker (internal/worker). The engine
// then writes the image: the converter's config, the solve's layers, and
// the Modal text as history. It also pulls, exports, names and runs
// images, and renders progress.
//
// The root package re-exports the engine's public types as aliases and
// holds an Engine behind its Builder; nothing here is part of the public
// API.
package engine
