package registry

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Option configures Pull, Push and Write. Options that do not apply to an
// operation (a platform for Write, say) are ignored by it.
type Option func(*options) error

type options struct {
	username, password string
	explicit           bool
	keychain           authn.Keychain
	insecure           []string
	roots              *x509.CertPool
	config             *Config
	platform           v1.Platform
	compression        Compression
	transport          http.RoundTripper
	tempDir            string
	imageName          string
	logf               func(format string, args ...any)
}

func makeOptions(opts ...Option) (*options, error) {
	o := &options{
		platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		logf:     func(string, ...any) {},
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if o.keychain == nil {
		o.keychain = DefaultKeychain()
	}
	return o, nil
}

// WithCredentials authenticates as username with password (or token) at every
// registry the operation contacts, mirrors included, instead of looking them up
// in a keychain; Modal's registry secrets give them as REGISTRY_USERNAME and
// REGISTRY_PASSWORD. The password is never part of an error or log line.
//
// The default is DefaultKeychain.
func WithCredentials(username, password string) Option {
	return func(o *options) error {
		if username == "" || password == "" {
			return fmt.Errorf("registry credentials: username and password must both be set")
		}
		o.username, o.password, o.explicit = username, password, true
		return nil
	}
}

// WithKeychain looks up credentials per registry in k.
//
// The default is DefaultKeychain.
func WithKeychain(k authn.Keychain) Option {
	return func(o *options) error {
		o.keychain = k
		return nil
	}
}

// WithInsecureRegistries allows plain HTTP and TLS without certificate
// verification for the given registries, HOST[:PORT] each (the CLI's
// repeatable --insecure-registry). A HOST without a port matches every port.
// Registries marked insecure = true in the registries configuration are
// allowed too.
//
// The default is none: TLS is verified against the system roots (which
// $SSL_CERT_FILE and $SSL_CERT_DIR replace, as Go reads them) plus
// WithCAFile's, and plain HTTP is refused, loopback addresses included.
func WithInsecureRegistries(hosts ...string) Option {
	return func(o *options) error {
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, "/@ ") || strings.Contains(h, "://") {
				return fmt.Errorf("insecure registry %q: want HOST[:PORT]", h)
			}
			if _, port, err := net.SplitHostPort(h); err == nil && port == "" {
				return fmt.Errorf("insecure registry %q: empty port", h)
			}
			o.insecure = append(o.insecure, h)
		}
		return nil
	}
}

// WithCAFile trusts the PEM certificates in path, in addition to the system
// roots, for every registry.
//
// The default is the system roots only.
func WithCAFile(path string) Option {
	return func(o *options) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("CA file: %w", err)
		}
		if o.roots == nil {
			if o.roots, err = x509.SystemCertPool(); err != nil || o.roots == nil {
				o.roots = x509.NewCertPool()
			}
		}
		if !o.roots.AppendCertsFromPEM(b) {
			return fmt.Errorf("CA file %s: no PEM certificate found", path)
		}
		return nil
	}
}

// WithRegistriesConfig applies c's mirrors, locations, insecure and blocked
// settings (see Config). Load it with LoadFirstConfig(DefaultConfigPaths()...)
// or LoadConfig(path).
//
// The default is no configuration: images are pulled from the registry their
// name gives.
func WithRegistriesConfig(c *Config) Option {
	return func(o *options) error {
		o.config = c
		return nil
	}
}

// WithPlatform chooses which image Pull takes from a multi-platform index. An
// empty Variant matches any variant.
//
// The default is linux/amd64.
func WithPlatform(p v1.Platform) Option {
	return func(o *options) error {
		if p.OS == "" || p.Architecture == "" {
			return fmt.Errorf("platform %q: want OS/ARCH[/VARIANT]", p.String())
		}
		o.platform = p
		return nil
	}
}

// WithCompression makes Push and Write recompress the layers that are not
// already compressed with c. Diff IDs, and so the image config, do not
// change; the manifest does. A Docker schema 2 image whose layers become zstd
// is written as an OCI image, since Docker's format has no zstd media type.
//
// The default is to keep each layer as it is, except for docker-archive
// outputs, whose layers are always gzip (what `docker load` reads).
func WithCompression(c Compression) Option {
	return func(o *options) error {
		if _, err := ParseCompression(string(c)); err != nil {
			return err
		}
		o.compression = c
		return nil
	}
}

// WithImageName records the image's full name (a registry reference with
// its domain and tag, such as "docker.io/library/app:latest" or
// "registry.local:5000/team/app:v1") in the index.json of oci: and
// oci-archive: outputs: as io.containerd.image.name, the annotation
// `ctr images import` and `podman load` name an image by, and as
// org.opencontainers.image.ref.name when the destination gives no :TAG (a
// TAG is written as given, as skopeo writes it). Registry and
// docker-archive outputs ignore it (their REF names the image).
//
// The default is no name: only the destination's TAG is recorded.
func WithImageName(fullName string) Option {
	return func(o *options) error {
		if fullName == "" || strings.ContainsAny(fullName, " \t\n") {
			return fmt.Errorf("image name %q: want a full reference such as docker.io/library/app:latest", fullName)
		}
		o.imageName = fullName
		return nil
	}
}

// WithTransport sends every request through rt. When rt is an *http.Transport
// it is cloned and given the TLS settings (WithCAFile, insecure registries);
// any other RoundTripper is used as given, and plain HTTP to registries that
// are not insecure is still refused.
//
// The default is a clone of go-containerregistry's remote.DefaultTransport.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error {
		o.transport = rt
		return nil
	}
}

// WithTempDir is where Push and Write keep recompressed layers while they
// write; the files are removed before they return.
//
// The default is os.TempDir().
func WithTempDir(dir string) Option {
	return func(o *options) error {
		o.tempDir = dir
		return nil
	}
}

// WithLogf receives progress lines: which mirror served a pull, why a
// candidate failed, which layers were recompressed. Lines never hold
// credentials.
//
// The default discards them.
func WithLogf(logf func(format string, args ...any)) Option {
	return func(o *options) error {
		if logf != nil {
			o.logf = logf
		}
		return nil
	}
}

// Compression is a layer compression: Gzip or Zstd.
type Compression string

const (
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// ParseCompression parses "gzip" or "zstd".
func ParseCompression(s string) (Compression, error) {
	switch Compression(s) {
	case Gzip, Zstd:
		return Compression(s), nil
	}
	return "", fmt.Errorf("compression %q: want gzip or zstd", s)
}

// isInsecure reports whether host (HOST[:PORT]) may use plain HTTP or
// unverified TLS.
func (o *options) isInsecure(host string) bool {
	host = canonicalHost(host)
	for _, list := range [][]string{o.insecure, o.config.insecureHosts()} {
		for _, h := range list {
			h = canonicalHost(normalizeAuthKey(h))
			if h == host {
				return true
			}
			if !strings.Contains(h, ":") || strings.HasSuffix(h, "]") {
				if hn, _, err := net.SplitHostPort(host); err == nil && strings.Trim(h, "[]") == hn {
					return true
				}
			}
		}
	}
	return false
}
