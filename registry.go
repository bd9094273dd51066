package snapbuild

import (
	"strings"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// RegistryOptions are from_registry's keyword arguments.
type RegistryOptions struct {
	// Secret holds the registry's REGISTRY_USERNAME and REGISTRY_PASSWORD
	// (Modal's secret=). Without it, credentials come from the user's
	// registry auth files (see README, "Registries").
	Secret *Secret
	// SetupDockerfileCommands are Dockerfile lines run right after FROM, as
	// Modal's setup_dockerfile_commands (e.g. installing python).
	SetupDockerfileCommands []string
	// AddPython ("3.10" to "3.14", "3.14t") installs a python-build-standalone
	// build into /usr/local, as Modal's add_python. The tarball is
	// taken from Builder.PythonStandaloneDir; the build fails before any step
	// runs, naming the file and where to get it, when it is missing.
	AddPython string
}

// FromRegistry is modal.Image.from_registry: the image tag (a
// registry reference such as "ubuntu:22.04" or
// "localhost:5000/team/base@sha256:...", or an air-gapped source:
// "oci:DIR[:TAG]", "oci-archive:FILE[:TAG]", "docker-archive:FILE[:REF]")
// is pulled (linux/amd64, every digest verified) the first time it is built
// and then reused from the store, as Modal reuses the layer of an unchanged
// definition: ForceBuild pulls it again. Commands, as Modal's 2025.06
// builder emits them: "FROM <tag>" and the setup commands. The base image's
// ENV, WORKDIR, USER, ENTRYPOINT and CMD carry into later steps and the
// result. AddPython installs a python-build-standalone build from a local
// directory.
func FromRegistry(tag string, o RegistryOptions, opts ...StepOption) Image {
	return fromRegistry("from_registry", modal.AuthStatic, tag, o, opts)
}

// FromAWSECR is modal.Image.from_aws_ecr: FromRegistry for an
// Amazon ECR image, with a secret holding AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_REGION (AWS_SESSION_TOKEN optional), which
// are exchanged for registry credentials with ECR's GetAuthorizationToken
// (SigV4) when the image is pulled. AWS_ENDPOINT_URL_ECR (in the secret or
// the environment) overrides the API endpoint, as AWS's SDKs allow.
func FromAWSECR(tag string, o RegistryOptions, opts ...StepOption) Image {
	return fromRegistry("from_aws_ecr", modal.AuthAWS, tag, o, opts)
}

// FromGCPArtifactRegistry is modal.Image.from_gcp_artifact_registry (spec
// 6): FromRegistry with a secret holding SERVICE_ACCOUNT_JSON (the key
// file's text), exchanged for an OAuth2 access token (JWT bearer grant at
// the key's token_uri) used as the password of "oauth2accesstoken".
func FromGCPArtifactRegistry(tag string, o RegistryOptions, opts ...StepOption) Image {
	return fromRegistry("from_gcp_artifact_registry", modal.AuthGCP, tag, o, opts)
}

func fromRegistry(method string, auth modal.RegistryAuth, tag string, o RegistryOptions, opts []StepOption) Image {
	if strings.TrimSpace(tag) == "" || strings.ContainsAny(tag, " \t\n") {
		return Image{err: modal.Invalidf(method, "tag %q is not an image reference: give e.g. \"ubuntu:22.04\" or \"oci:/path/to/layout:tag\"", tag)}
	}
	if auth != modal.AuthStatic && o.Secret == nil {
		return Image{err: modal.Invalidf(method, "%s needs a secret with the registry's keys (see the method's documentation)", method)}
	}
	cmds := []string{"FROM " + tag}
	if o.AddPython != "" {
		py, err := addPythonCommands(method, o.AddPython)
		if err != nil {
			return Image{err: err}
		}
		cmds = append(cmds, py...)
	}
	l := &modal.Layer{
		Method:    method,
		Commands:  append(cmds, o.SetupDockerfileCommands...),
		Root:      &modal.RootSpec{Registry: &modal.RegistryBase{Ref: tag, Secret: o.Secret, Auth: auth}},
		AddPython: o.AddPython,
	}
	for _, opt := range opts {
		opt(l)
	}
	if l.OptErr != nil {
		return Image{err: l.OptErr}
	}
	if len(l.Secrets) > 0 {
		return Image{err: modal.Invalidf(method, "Passing a list of 'secrets' is not supported; use the singular 'secret' argument.")}
	}
	return Image{layers: []*modal.Layer{l}}
}

// Credentials are a registry user name and password (or token), as a
// Puller receives them.
type Credentials = modal.Credentials

// DebianSlimImage is the image debian_slim(version) pulls with
// WithDebianSlimFromRegistry: for a series Modal's 2025.06 pin
// (docker.io/library/python:3.11.12-slim-bookworm), for a micro version
// ("3.12.3") that version, as Modal does.
func DebianSlimImage(series string) string { return modal.DebianSlimImage(series) }
