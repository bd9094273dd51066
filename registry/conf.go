package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/name"
)

// Config is the part of containers-registries.conf(5), version 2, that this
// package applies: per-prefix [[registry]] tables with location, insecure,
// blocked, mirror-by-digest-only and [[registry.mirror]] lists (location,
// insecure, pull-from-mirror).
//
//	[[registry]]
//	prefix = "docker.io"
//	location = "registry-1.docker.io"   # default: the prefix
//	insecure = false                    # plain HTTP / unverified TLS for this location
//	blocked = false                     # refuse to pull anything matching the prefix
//	[[registry.mirror]]
//	location = "mirror.local:5000"
//	insecure = true
//
// Not supported, and listed in Ignored when present: unqualified-search-
// registries and short-name-mode (short names are Docker Hub names, as
// go-containerregistry normalizes them), [aliases], credential-helpers, the
// version 1 [registries.*] tables, and registries.conf.d drop-in directories.
type Config struct {
	Registries []RegistryConfig `toml:"registry"`

	// Ignored lists the keys of the file that this package does not apply.
	Ignored []string `toml:"-"`
	// Source is the file the configuration was read from; "" if parsed from
	// bytes.
	Source string `toml:"-"`
}

// RegistryConfig is one [[registry]] table.
type RegistryConfig struct {
	// Prefix selects the image names this table applies to:
	// host[:port][/namespace…][/repo][:tag|@digest], or *.domain to match
	// every host under domain. The longest matching prefix wins. Docker Hub
	// is docker.io. The default is Location.
	Prefix string `toml:"prefix"`
	// Location replaces Prefix in the name that is pulled. The default is
	// Prefix.
	Location string `toml:"location"`
	// Insecure allows plain HTTP and unverified TLS for Location's host.
	Insecure bool `toml:"insecure"`
	// Blocked refuses pulls of names matching Prefix, mirrors included.
	Blocked bool `toml:"blocked"`
	// MirrorByDigestOnly uses the mirrors only for pulls by digest.
	MirrorByDigestOnly bool `toml:"mirror-by-digest-only"`
	// Mirrors are tried in order before Location.
	Mirrors []MirrorConfig `toml:"mirror"`
}

// MirrorConfig is one [[registry.mirror]] table.
type MirrorConfig struct {
	// Location replaces the registry's Prefix in the name that is pulled.
	Location string `toml:"location"`
	// Insecure allows plain HTTP and unverified TLS for Location's host.
	Insecure bool `toml:"insecure"`
	// PullFromMirror is "all" (the default), "digest-only" or "tag-only".
	PullFromMirror string `toml:"pull-from-mirror"`
}

// DefaultConfigPaths lists where containers tools look for registries.conf,
// most specific first: $CONTAINERS_REGISTRIES_CONF alone when it is set,
// else $HOME/.config/containers/registries.conf then
// /etc/containers/registries.conf. As in containers/image the first file that
// exists is used and the others are not read: pass the list to
// LoadFirstConfig.
func DefaultConfigPaths() []string {
	if p := os.Getenv("CONTAINERS_REGISTRIES_CONF"); p != "" {
		return []string{p}
	}
	var paths []string
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".config", "containers", "registries.conf"))
	}
	return append(paths, "/etc/containers/registries.conf")
}

// LoadFirstConfig loads the first of paths that exists. When none exists it
// returns an empty Config (no mirrors, nothing insecure or blocked).
func LoadFirstConfig(paths ...string) (*Config, error) {
	for _, p := range paths {
		c, err := LoadConfig(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		return c, err
	}
	return &Config{}, nil
}

// LoadConfig reads and validates the registries.conf at path. A missing file
// is an error wrapping os.ErrNotExist.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registries.conf: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("registries.conf %s: %w", path, err)
	}
	c.Source = path
	return c, nil
}

// ParseConfig parses and validates registries.conf content.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return nil, err
	}
	for _, k := range md.Undecoded() {
		c.Ignored = append(c.Ignored, k.String())
	}
	for i := range c.Registries {
		r := &c.Registries[i]
		r.Location = strings.TrimRight(r.Location, "/")
		r.Prefix = strings.TrimRight(r.Prefix, "/")
		if r.Prefix == "" {
			r.Prefix = r.Location
		}
		if r.Prefix == "" {
			return nil, fmt.Errorf("[[registry]] #%d: neither prefix nor location is set", i+1)
		}
		if strings.HasPrefix(r.Prefix, "*.") {
			if strings.ContainsAny(r.Prefix, "/:@") {
				return nil, fmt.Errorf("[[registry]] prefix %q: a wildcard prefix names hosts only", r.Prefix)
			}
			if r.Location != "" {
				return nil, fmt.Errorf("[[registry]] prefix %q: a wildcard prefix takes no location", r.Prefix)
			}
		} else {
			r.Prefix = normalizeAuthKey(r.Prefix) // index.docker.io → docker.io
			if r.Location == "" {
				r.Location = r.Prefix
			}
		}
		for _, loc := range append([]string{r.Prefix, r.Location}, mirrorLocations(r.Mirrors)...) {
			if strings.Contains(loc, "://") {
				return nil, fmt.Errorf("[[registry]] prefix %q: %q: URL schemes are not supported; use host[:port][/path] (and insecure = true for plain HTTP)", r.Prefix, loc)
			}
		}
		for j := range r.Mirrors {
			m := &r.Mirrors[j]
			m.Location = strings.TrimRight(m.Location, "/")
			if m.Location == "" {
				return nil, fmt.Errorf("[[registry]] prefix %q: mirror #%d has no location", r.Prefix, j+1)
			}
			switch m.PullFromMirror {
			case "", "all", "digest-only", "tag-only":
			default:
				return nil, fmt.Errorf("[[registry]] prefix %q: mirror %q: pull-from-mirror = %q: want all, digest-only or tag-only", r.Prefix, m.Location, m.PullFromMirror)
			}
		}
	}
	return &c, nil
}

func mirrorLocations(ms []MirrorConfig) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Location)
	}
	return out
}

// match returns the [[registry]] table for ref (as fullName writes it), and
// how much of ref its prefix matched; nil when none applies. Exact prefixes
// beat wildcards; the longest exact prefix wins.
func (c *Config) match(ref string) (*RegistryConfig, int) {
	if c == nil {
		return nil, 0
	}
	var best *RegistryConfig
	bestLen, bestWild := 0, true
	host, _, _ := strings.Cut(ref, "/")
	for i := range c.Registries {
		r := &c.Registries[i]
		if suffix, ok := strings.CutPrefix(r.Prefix, "*"); ok {
			hostname := host
			if h, _, ok := strings.Cut(host, ":"); ok {
				hostname = h
			}
			if strings.HasSuffix(hostname, suffix) && bestWild && len(r.Prefix) > bestLen {
				best, bestLen = r, len(r.Prefix)
			}
			continue
		}
		if prefixMatches(ref, r.Prefix) && (bestWild || len(r.Prefix) > bestLen) {
			best, bestLen, bestWild = r, len(r.Prefix), false
		}
	}
	if best != nil && bestWild {
		return best, len(host)
	}
	return best, bestLen
}

// prefixMatches reports whether ref starts with prefix followed by the end or
// a separator, as containers/image's refMatchesPrefix does.
func prefixMatches(ref, prefix string) bool {
	if !strings.HasPrefix(ref, prefix) {
		return false
	}
	if len(ref) == len(prefix) {
		return true
	}
	c := ref[len(prefix)]
	return c == '/' || c == ':' || c == '@'
}

// endpoint is one place to pull an image from.
type endpoint struct {
	ref    name.Reference
	mirror bool
}

// pullEndpoints lists where to pull ref from: the mirrors that apply, in
// order, then the location (or ref itself when no table matches).
func (c *Config) pullEndpoints(ref name.Reference, insecure func(host string) bool) ([]endpoint, error) {
	full := fullName(ref)
	r, n := c.match(full)
	if r == nil {
		e, err := endpointFor(full, insecure)
		if err != nil {
			return nil, err
		}
		return []endpoint{e}, nil
	}
	if r.Blocked {
		src := "registries.conf"
		if c.Source != "" {
			src = c.Source
		}
		return nil, fmt.Errorf("%w: %s matches blocked prefix %q in %s", ErrBlocked, full, r.Prefix, src)
	}
	_, byDigest := ref.(name.Digest)
	rest := full[n:]
	var out []endpoint
	for _, m := range r.Mirrors {
		if (r.MirrorByDigestOnly || m.PullFromMirror == "digest-only") && !byDigest {
			continue
		}
		if m.PullFromMirror == "tag-only" && byDigest {
			continue
		}
		e, err := endpointFor(m.Location+rest, insecure)
		if err != nil {
			return nil, fmt.Errorf("mirror %q of prefix %q: %w", m.Location, r.Prefix, err)
		}
		e.mirror = true
		out = append(out, e)
	}
	loc := full
	if r.Location != "" {
		loc = r.Location + rest
	}
	e, err := endpointFor(loc, insecure)
	if err != nil {
		return nil, fmt.Errorf("location %q of prefix %q: %w", r.Location, r.Prefix, err)
	}
	return append(out, e), nil
}

func endpointFor(s string, insecure func(host string) bool) (endpoint, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return endpoint{}, err
	}
	if insecure(ref.Context().RegistryStr()) {
		ref, err = name.ParseReference(s, name.Insecure)
		if err != nil {
			return endpoint{}, err
		}
	}
	return endpoint{ref: ref}, nil
}

// insecureHosts lists the hosts of locations and mirrors marked insecure.
func (c *Config) insecureHosts() []string {
	if c == nil {
		return nil
	}
	var hosts []string
	for _, r := range c.Registries {
		if r.Insecure && r.Location != "" {
			hosts = append(hosts, hostOf(r.Location))
		}
		for _, m := range r.Mirrors {
			if m.Insecure {
				hosts = append(hosts, hostOf(m.Location))
			}
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

func hostOf(location string) string {
	h, _, _ := strings.Cut(location, "/")
	return h
}

// Redirected reports whether the configuration sends pulls of ref somewhere
// other than ref's own registry: a mirror, or a location that differs from
// the prefix. snapbuild's debian_slim pulls Docker Hub's python image only
// then (an offline site's mirror), and bootstraps Debian otherwise.
func (c *Config) Redirected(ref string) bool {
	r, err := ParseReference(ref)
	if err != nil || r.Transport != Docker || r.Name == nil {
		return false
	}
	t, _ := c.match(fullName(r.Name))
	if t == nil || t.Blocked {
		return false
	}
	return len(t.Mirrors) > 0 || (t.Location != "" && t.Location != t.Prefix)
}
