package snapbuild

import (
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// DockerfileOptions are dockerfile_commands' keyword arguments.
type DockerfileOptions struct {
	// ContextFiles maps build-context paths ("/app.conf") to local files,
	// read at build time (Modal's context_files).
	ContextFiles map[string]string
	// ContextDir is the build context for COPY and ADD sources; "" means the
	// process's working directory when the method is called (Modal takes it
	// when the image is built).
	ContextDir string
	// Ignore selects context files to leave out (NewFilePatternMatcher for
	// .dockerignore-style patterns, or any Matcher). nil means Modal's
	// AUTO_DOCKERIGNORE: the patterns of <ContextDir>/.dockerignore when it
	// exists; a non-nil Ignore replaces that lookup, as in Modal.
	Ignore Matcher
	// BuildArgs are the values of ARG instructions (docker --build-arg).
	BuildArgs map[string]string
}

// DockerfileCommands is modal.Image.dockerfile_commands: "FROM base" and the
// given lines verbatim, as one layer. The layer's text, on FROM the image
// built so far, is converted by BuildKit's Dockerfile converter and the
// graph is run by snapbuild's solver, so each instruction means what it
// means in `docker build` (BuildKit's Dockerfile frontend): RUN (heredocs,
// --mount=type=cache|bind|tmpfs), COPY and ADD from the build context or
// another image (--chown, --chmod, --exclude, --parents; ADD extracts
// archives recognised by content), ENV, ARG with build args, WORKDIR,
// USER, SHELL, ENTRYPOINT, CMD, LABEL, EXPOSE, VOLUME, STOPSIGNAL,
// HEALTHCHECK and ONBUILD (written, with SHELL, as Docker's extension of
// the OCI config). Not supported yet, with an error naming the op: COPY
// --link, secret and ssh mounts, ADD of a URL or git repository. With env=,
// secrets, gpu= or volumes the layer is still run by the older
// step-by-step interpreter. Only the context files that COPY/ADD sources
// select are read and hashed, as Modal uploads only those: a
// source with a "$" or a "--" flag of its own is refused as Modal refuses
// it. Errors in the text name the line ("dockerfile_commands:3: unknown
// instruction: COPPY (did you mean COPY?)").
func (img Image) DockerfileCommands(commands []string, o DockerfileOptions, opts ...StepOption) Image {
	const method = "dockerfile_commands"
	if len(commands) == 0 {
		return img
	}
	l := &modal.Layer{Method: method, Commands: append([]string{"FROM base"}, commands...), BuildArgs: o.BuildArgs}
	names := make([]string, 0, len(o.ContextFiles))
	for name := range o.ContextFiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		local, err := modal.AbsLocal(o.ContextFiles[name])
		if err != nil {
			return img.fail(modal.Invalidf(method, "context_files[%q]: %v", name, err))
		}
		l.Context = append(l.Context, modal.ContextInput{Local: local, Remote: path.Clean("/" + name)})
	}
	patterns, err := modal.CopyPatterns(commands)
	if err != nil {
		return img.fail(&InvalidError{Method: method, Message: err.Error()})
	}
	if len(patterns) > 0 {
		dir := o.ContextDir
		if dir == "" {
			dir = "."
		}
		abs, err := modal.AbsLocal(dir)
		if err != nil {
			return img.fail(&InvalidError{Method: method, Message: err.Error()})
		}
		ignore := o.Ignore
		if ignore == nil {
			ignore = modal.DockerignoreMatcher(filepath.Join(abs, ".dockerignore")) // read at build time
		}
		l.Context = append(l.Context, modal.ContextInput{Local: abs, Remote: "/", Dir: true, Ignore: ignore, Include: patterns})
	}
	return img.with(l, opts)
}

// FromDockerfileOptions are from_dockerfile's keyword arguments.
type FromDockerfileOptions struct {
	// ContextDir is the build context; "" means the process's working
	// directory when the method is called.
	ContextDir string
	// Ignore: nil means Modal's AUTO_DOCKERIGNORE lookup, with podman's
	// .containerignore: the first of <Dockerfile dir>/<Dockerfile
	// name>.dockerignore, <Dockerfile dir>/.containerignore,
	// <Dockerfile dir>/.dockerignore, <ContextDir>/.containerignore and
	// <ContextDir>/.dockerignore that exists and lies inside ContextDir
	// (docs/dockerfile.md). A non-nil Ignore replaces it.
	Ignore    Matcher
	BuildArgs map[string]string
	// Target is the stage to build (docker build --target): its name, or
	// "" for the last stage. Stages the target does not need are not
	// built. Modal's from_dockerfile has no target; this is snapbuild's
	// extension for Dockerfiles written for Docker.
	Target string
	// MountSecrets are the values of the Dockerfile's secret mounts and
	// secret env (RUN --mount=type=secret,id=ID[,env=NAME]) by ID, as
	// docker build --secret gives them. Only the IDs enter cache keys; the
	// values are never written to the store or an image. A mount whose ID
	// is missing is left out (or fails, with required=true), as in Docker.
	MountSecrets map[string][]byte
	// AddPython is Modal's add_python, as for FromRegistry (a
	// python-build-standalone tarball from Builder.PythonStandaloneDir),
	// applied in the outer layer.
	AddPython string
}

// FromDockerfile is modal.Image.from_dockerfile: the Dockerfile's own
// stages (FROM ... AS ..., COPY --from=<stage>) as one inner layer, then the
// outer layer "FROM base" that carries force_build. Base images of FROM
// lines are taken from the store by name, or pulled when it lacks them (a
// registry through the configured mirrors, or oci:, oci-archive: and
// docker-archive: sources), except python:3.11[-slim][-bookworm] and
// python:3.13[-slim][-trixie], which are bootstrapped from the Debian
// archive like DebianSlim; "scratch" and earlier stages work as in Docker.
// The file is read when the method is called.
func FromDockerfile(dockerfile string, o FromDockerfileOptions, opts ...StepOption) Image {
	const method = "from_dockerfile"
	var pyCmds []string
	if o.AddPython != "" {
		var err error
		if pyCmds, err = addPythonCommands(method, o.AddPython); err != nil {
			return Image{err: err}
		}
	}
	path, err := modal.ExpandHome(dockerfile)
	if err != nil {
		return Image{err: modal.Invalidf(method, "%v", err)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Image{err: modal.Invalidf(method, "%v", err)}
	}
	lines := strings.Split(string(data), "\n")
	dir := o.ContextDir
	if dir == "" {
		dir = "."
	}
	ctxDir, err := modal.AbsLocal(dir)
	if err != nil {
		return Image{err: modal.Invalidf(method, "%v", err)}
	}
	patterns, err := modal.DockerfileContextPatterns(lines)
	if err != nil {
		return Image{err: &InvalidError{Method: method, Message: err.Error()}}
	}
	inner := &modal.Layer{Method: method, Commands: lines, Root: &modal.RootSpec{Dockerfile: true}, BuildArgs: o.BuildArgs, Target: o.Target, Dockerfile: dockerfile, MountSecrets: o.MountSecrets}
	if len(patterns) > 0 {
		ignore := o.Ignore
		if ignore == nil {
			ignore = autoDockerignore(path, ctxDir)
		}
		inner.Context = []modal.ContextInput{{Local: ctxDir, Remote: "/", Dir: true, Ignore: ignore, Include: patterns}}
	}
	for _, o := range opts {
		o(inner)
	}
	inner.ForceBuild = false // as Modal: the inner layer ignores force_build
	img := Image{layers: []*modal.Layer{inner}}
	outer := &modal.Layer{Method: method, Commands: append([]string{"FROM base"}, pyCmds...), AddPython: o.AddPython}
	return img.with(outer, opts)
}

// autoDockerignore returns the patterns of the ignore file for a
// Dockerfile's build context, or a matcher of nothing: the first of these
// that exists and lies inside ctxDir (Modal's AUTO_DOCKERIGNORE, with
// podman's and buildah's .containerignore):
//
//  1. <Dockerfile dir>/<Dockerfile name>.dockerignore, the file of that
//     Dockerfile alone (BuildKit's, and Modal's first);
//  2. <Dockerfile dir>/.containerignore, then <Dockerfile dir>/.dockerignore
//     (Modal looks beside the Dockerfile for .dockerignore);
//  3. <ctxDir>/.containerignore, then <ctxDir>/.dockerignore (podman and
//     buildah read .containerignore when the context has one, else
//     .dockerignore; Docker reads .dockerignore).
//
// Only one file applies: patterns are not merged across files, as in
// Docker, podman and Modal.
func autoDockerignore(dockerfile, ctxDir string) Matcher {
	dir := filepath.Dir(dockerfile)
	for _, p := range []string{
		filepath.Join(dir, filepath.Base(dockerfile)+".dockerignore"),
		filepath.Join(dir, ".containerignore"),
		filepath.Join(dir, ".dockerignore"),
		filepath.Join(ctxDir, ".containerignore"),
		filepath.Join(ctxDir, ".dockerignore"),
	} {
		abs, err := filepath.Abs(p)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(ctxDir, abs); err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		if _, err := os.Stat(abs); err == nil {
			return FilePatternMatcherFromFile(abs)
		}
	}
	return NewFilePatternMatcher()
}
