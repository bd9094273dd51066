package registry

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Transport names where an image lives, as in skopeo's transport syntax.
type Transport string

const (
	// Docker is a registry speaking the distribution protocol:
	// docker://REF, or a bare REF.
	Docker Transport = "docker"
	// OCI is an OCI image layout directory: oci:DIR[:TAG].
	OCI Transport = "oci"
	// OCIArchive is a tar of an OCI image layout: oci-archive:FILE[:TAG].
	OCIArchive Transport = "oci-archive"
	// DockerArchive is a `docker save` tarball: docker-archive:FILE[:REF].
	DockerArchive Transport = "docker-archive"
)

// unsupported lists skopeo transports this package does not implement, so that
// "dir:/x" is refused rather than read as the Docker Hub image "dir" tagged "/x".
var unsupported = map[string]bool{
	"containers-storage": true, "dir": true, "docker-daemon": true,
	"ostree": true, "sif": true, "tarball": true,
}

// Reference is a parsed image location. References are values: parse them with
// ParseReference, and String gives back a string that parses to an equal
// Reference.
type Reference struct {
	Transport Transport
	// Name is the registry reference for Docker (tag or digest, normalized as
	// go-containerregistry's name package does: "ubuntu" is
	// index.docker.io/library/ubuntu:latest), and the optional REF of
	// DockerArchive (a name.Tag, or nil). It is nil for OCI and OCIArchive.
	Name name.Reference
	// Path is the directory (OCI) or file (OCIArchive, DockerArchive).
	Path string
	// Tag is the org.opencontainers.image.ref.name of OCI and OCIArchive;
	// "" for none.
	Tag string
}

// ParseReference parses an image location as skopeo writes it:
//
//	docker://REF   REF                 a registry image: ubuntu:22.04, localhost:5000/x/y@sha256:…
//	oci:DIR[:TAG]  oci-archive:FILE[:TAG]
//	docker-archive:FILE[:REF]          REF is a tagged name such as busybox:latest
//
// As in skopeo, a path ends at the first ":" (so it cannot contain one). A bare
// REF is a registry reference unless what precedes its first ":" is a transport
// name. Errors name the input.
func ParseReference(s string) (Reference, error) {
	if rest, ok := strings.CutPrefix(s, "docker://"); ok {
		return parseDocker(s, rest)
	}
	transport, rest, ok := strings.Cut(s, ":")
	if !ok {
		return parseDocker(s, s)
	}
	switch Transport(transport) {
	case OCI, OCIArchive:
		ref := Reference{Transport: Transport(transport), Path: rest}
		if p, tag, ok := strings.Cut(rest, ":"); ok {
			if tag == "" {
				return Reference{}, fmt.Errorf("image reference %q: empty tag after ':'", s)
			}
			ref.Path, ref.Tag = p, tag
		}
		if ref.Path == "" {
			return Reference{}, fmt.Errorf("image reference %q: empty path", s)
		}
		return ref, nil
	case DockerArchive:
		ref := Reference{Transport: DockerArchive, Path: rest}
		if p, r, ok := strings.Cut(rest, ":"); ok {
			ref.Path = p
			if strings.HasPrefix(r, "@") {
				return Reference{}, fmt.Errorf("image reference %q: selecting an image by index (@N) is not supported; name it by tag", s)
			}
			tag, err := name.NewTag(r)
			if err != nil {
				return Reference{}, fmt.Errorf("image reference %q: %q is not a tagged image name: %w", s, r, err)
			}
			ref.Name = tag
		}
		if ref.Path == "" {
			return Reference{}, fmt.Errorf("image reference %q: empty path", s)
		}
		return ref, nil
	case Docker:
		return Reference{}, fmt.Errorf("image reference %q: want docker://REF", s)
	}
	if unsupported[transport] {
		return Reference{}, fmt.Errorf("image reference %q: transport %q is not supported: use docker://, oci:, oci-archive: or docker-archive:", s, transport)
	}
	return parseDocker(s, s)
}

func parseDocker(input, s string) (Reference, error) {
	if s == "" {
		return Reference{}, fmt.Errorf("image reference %q: empty registry reference", input)
	}
	r, err := name.ParseReference(s)
	if err != nil {
		return Reference{}, fmt.Errorf("image reference %q: %w", input, err)
	}
	return Reference{Transport: Docker, Name: r}, nil
}

// String formats r so that ParseReference(r.String()) equals r. Registry
// references are written in full, with Docker Hub as docker.io
// ("docker://docker.io/library/ubuntu:22.04").
func (r Reference) String() string {
	switch r.Transport {
	case Docker:
		return "docker://" + fullName(r.Name)
	case DockerArchive:
		if r.Name == nil {
			return string(r.Transport) + ":" + r.Path
		}
		return string(r.Transport) + ":" + r.Path + ":" + fullName(r.Name)
	}
	if r.Tag == "" {
		return string(r.Transport) + ":" + r.Path
	}
	return string(r.Transport) + ":" + r.Path + ":" + r.Tag
}

// fullName is a registry reference as containers/image writes it:
// host/repository:tag or host/repository@digest, Docker Hub as docker.io.
func fullName(n name.Reference) string {
	if n == nil {
		return ""
	}
	return repoName(n.Context()) + n.Name()[len(n.Context().Name()):]
}

// repoName is host/repository with Docker Hub as docker.io.
func repoName(r name.Repository) string {
	return canonicalHost(r.RegistryStr()) + "/" + r.RepositoryStr()
}

// canonicalHost maps Docker Hub's API host to the docker.io that
// registries.conf and auth files use.
func canonicalHost(h string) string {
	if h == name.DefaultRegistry {
		return "docker.io"
	}
	return h
}
