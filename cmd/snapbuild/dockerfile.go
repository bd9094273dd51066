package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/snapbuild/snapbuild"
)

// dockerfileFlags are build's flags for a Dockerfile, as docker build and
// podman build spell them.
type dockerfileFlags struct {
	file      string   // -f, --file: the Dockerfile
	buildArgs listFlag // --build-arg K=V or K (value from the environment)
	target    string   // --target: the stage to build
	secrets   listFlag // --secret id=ID[,src=FILE|,env=VAR]
}

// used reports whether a flag only a Dockerfile build takes was given.
func (f *dockerfileFlags) used() bool {
	return f.file != "" || len(f.buildArgs) > 0 || f.target != "" || len(f.secrets) > 0
}

// dockerfileDefinition is the image `snapbuild build -f FILE [CONTEXT]`
// (or `snapbuild build CONTEXT`, a directory) defines, as docker build
// reads its arguments: CONTEXT defaults to "."; FILE defaults to
// CONTEXT/Dockerfile (or Containerfile: see defaultDockerfiles), and a
// relative FILE is relative to the working directory, not to CONTEXT. Without -t the image is named after the
// context directory (its base name, e.g. "myapp" for ~/src/myapp), where
// docker and podman would leave it untagged.
func dockerfileDefinition(pos []string, f *dockerfileFlags) (definition, error) {
	args, err := buildArgs(f.buildArgs)
	if err != nil {
		return definition{}, err
	}
	secrets, err := mountSecrets(f.secrets)
	if err != nil {
		return definition{}, err
	}
	if len(pos) > 1 {
		return definition{}, usagef("build: a Dockerfile build takes one build context directory, not %d arguments (%s): snapbuild build -f Dockerfile [CONTEXT] (see 'snapbuild build --help')", len(pos), strings.Join(pos, " "))
	}
	ctxDir := "."
	if len(pos) == 1 {
		ctxDir = pos[0]
	}
	if fi, err := os.Stat(ctxDir); err != nil {
		return definition{}, fmt.Errorf("build: build context: %w", err)
	} else if !fi.IsDir() {
		return definition{}, fmt.Errorf("build: build context %s is not a directory: give the directory the Dockerfile's COPY and ADD read from (snapbuild build -f Dockerfile DIR)", ctxDir)
	}
	absCtx, err := filepath.Abs(ctxDir)
	if err != nil {
		return definition{}, err
	}
	file := f.file
	switch file {
	case "":
		file = defaultDockerfile(absCtx)
	case "-":
		return definition{}, usagef("build: -f -: reading the Dockerfile from standard input is not supported; write it to a file and give its path (see 'snapbuild build --help')")
	}
	absFile, err := filepath.Abs(file)
	if err != nil {
		return definition{}, err
	}
	if fi, err := os.Stat(absFile); err != nil {
		if f.file == "" {
			return definition{}, fmt.Errorf("build: %s has no Dockerfile (nor Containerfile): give one with -f FILE", ctxDir)
		}
		return definition{}, fmt.Errorf("build: -f: %w", err)
	} else if fi.IsDir() {
		return definition{}, fmt.Errorf("build: -f %s is a directory: give the Dockerfile's path", f.file)
	}
	name := filepath.Base(absCtx)
	return definition{
		name:   name,
		label:  absFile,
		source: absFile,
		image:  snapbuild.FromDockerfile(absFile, snapbuild.FromDockerfileOptions{ContextDir: absCtx, BuildArgs: args, Target: f.target, MountSecrets: secrets}),
	}, nil
}

// defaultDockerfiles are the names a build context's Dockerfile is looked
// up by when -f is not given, in order: docker build's "Dockerfile", then
// podman and buildah's "Containerfile", then the lower-case "dockerfile"
// docker build falls back to. With both a Dockerfile and a Containerfile,
// the Dockerfile is built, as docker does (podman picks the Containerfile).
var defaultDockerfiles = []string{"Dockerfile", "Containerfile", "dockerfile"}

// defaultDockerfile returns the path of the first of defaultDockerfiles in
// ctxDir that exists, else ctxDir/Dockerfile.
func defaultDockerfile(ctxDir string) string {
	for _, n := range defaultDockerfiles {
		p := filepath.Join(ctxDir, n)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join(ctxDir, defaultDockerfiles[0])
}

// buildArgs reads --build-arg values as docker build does: K=V sets K to
// V; a bare K takes K's value from the environment, and is left out when
// the environment has none.
func buildArgs(list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(list))
	for _, a := range list {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, usagef("build: --build-arg %q: give NAME=VALUE, or NAME to take the value from the environment (see 'snapbuild build --help')", a)
		}
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		m[k] = v
	}
	return m, nil
}

// mountSecrets reads --secret values as docker build takes them:
// id=ID,src=FILE (or source=FILE) reads a file, id=ID,env=VAR an
// environment variable, and id=ID alone the variable named ID. type=file
// and type=env are accepted and checked against the source given.
func mountSecrets(list []string) (map[string][]byte, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := make(map[string][]byte, len(list))
	for _, spec := range list {
		fields := map[string]string{}
		for _, kv := range strings.Split(spec, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || v == "" {
				return nil, usagef("build: --secret %q: give id=ID with src=FILE or env=VAR (see 'snapbuild build --help')", spec)
			}
			switch k {
			case "id", "src", "source", "env", "type":
			default:
				return nil, usagef("build: --secret %q: unknown key %q: use id, src (or source), env and type", spec, k)
			}
			if k == "source" {
				k = "src"
			}
			fields[k] = v
		}
		id := fields["id"]
		if id == "" {
			return nil, usagef("build: --secret %q: give the secret's id=ID, the id RUN --mount=type=secret names", spec)
		}
		typ := fields["type"]
		switch {
		case typ != "" && typ != "file" && typ != "env":
			return nil, usagef("build: --secret %q: type=%s: use type=file or type=env", spec, typ)
		case fields["src"] != "" && fields["env"] != "":
			return nil, usagef("build: --secret %q: give src= or env=, not both", spec)
		case fields["src"] != "" && typ == "env", fields["env"] != "" && typ == "file":
			return nil, usagef("build: --secret %q: type=%s does not go with the source given", spec, typ)
		}
		if src := fields["src"]; src != "" || typ == "file" {
			if src == "" {
				src = id
			}
			v, err := os.ReadFile(src)
			if err != nil {
				return nil, fmt.Errorf("build: --secret id=%s: %w", id, err)
			}
			m[id] = v
			continue
		}
		name := fields["env"]
		if name == "" {
			name = id
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			return nil, fmt.Errorf("build: --secret id=%s: the environment variable %s is not set: set it, or give the value with src=FILE", id, name)
		}
		m[id] = []byte(v)
	}
	return m, nil
}
