package snapbuild

import (
	"fmt"

	"github.com/snapbuild/snapbuild/internal/dockerfile"
)

// HostPlatform returns the platform snapbuild builds images for, as
// docker build --platform writes it: "linux/" and the architecture this
// program runs on ("linux/amd64", "linux/arm64"). Every step runs natively,
// without emulation, so it is the only platform a build can have; in a
// Dockerfile it is BUILDPLATFORM and TARGETPLATFORM.
func HostPlatform() string { return dockerfile.FormatPlatform(dockerfile.HostPlatform()) }

// ValidatePlatform checks a platform requested for a build, as docker build
// --platform and podman build --platform take it ("os/arch[/variant]", or
// "arch" alone): it returns nil for the host's platform (HostPlatform),
// spelled in any of the ways the OCI platform rules make equal
// ("linux/amd64/v1" and "linux/x86_64" are linux/amd64, "linux/arm64/v8"
// is linux/arm64), and for any other an error that names the platform
// given and the host's. A Dockerfile's FROM --platform naming another
// platform fails the same way, at its line.
func ValidatePlatform(platform string) error {
	p, err := dockerfile.ParsePlatform(platform)
	if err != nil {
		return err
	}
	if err := dockerfile.CheckHostPlatform(p); err != nil {
		return fmt.Errorf("platform %s: %w; leave the platform out, or give %s", platform, err, HostPlatform())
	}
	return nil
}
