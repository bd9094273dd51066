// Package modal holds a modal.Image layer as the builder receives it: the
// Layer (one Modal image object: its Dockerfile text, build context, step
// options and root spec), and the Modal value types the layers carry
// (Secret, Volume, Function and FunctionCall, the ignore= matchers, the
// registry credentials of from_registry and its siblings).
//
// The root package's Image methods make Layers (they hold each method's
// Modal text and checks) and re-export the value types; the engine lowers
// and builds Layers. Nothing here runs a build.
package modal
