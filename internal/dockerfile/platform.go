package dockerfile

import (
	"fmt"
	"runtime"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// HostPlatform returns the platform snapbuild builds for: linux on the
// architecture this binary runs on (runtime.GOARCH), normalized as
// containerd's platforms package normalizes it (amd64 without a variant,
// arm64 without "v8"). It is BUILDPLATFORM in every conversion and the
// default TARGETPLATFORM.
func HostPlatform() ocispec.Platform {
	return platforms.Normalize(ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH})
}

// ParsePlatform parses s as docker build --platform and FROM --platform
// take it: "os/arch[/variant]", or "arch" alone for linux ("linux/amd64",
// "linux/arm64/v8", "linux/x86_64", "amd64"), and normalizes it.
func ParsePlatform(s string) (ocispec.Platform, error) {
	p, err := platforms.Parse(s)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("platform %q: %w; give OS/ARCH[/VARIANT], as %q", s, err, FormatPlatform(HostPlatform()))
	}
	return platforms.Normalize(p), nil
}

// FormatPlatform writes p as os/arch[/variant], as docker build --platform
// takes it.
func FormatPlatform(p ocispec.Platform) string { return formatPlatform(p) }

// CheckHostPlatform returns nil when p, normalized, is HostPlatform: the
// same OS, architecture and variant ("linux/amd64/v1" is linux/amd64). For
// any other platform it returns an error that names the host's: snapbuild
// runs every step natively, without emulation, so it builds for the host's
// platform only. The caller's message names p.
func CheckHostPlatform(p ocispec.Platform) error {
	if samePlatform(p, HostPlatform()) {
		return nil
	}
	return fmt.Errorf("snapbuild builds for the host platform only, %s: it runs every step natively, without emulation", formatPlatform(HostPlatform()))
}
