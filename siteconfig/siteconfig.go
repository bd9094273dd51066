// Package siteconfig reads a site's configuration: where the package
// mirrors of an air-gapped (or simply private) site are, so that unchanged
// Modal image definitions build there.
//
// A Site says which Python package index pip and uv use, which conda channel
// mirror micromamba uses, which Debian archive debian_slim is bootstrapped
// from, which registries.conf names the registry mirrors, where the uv and
// micromamba tool images and python-build-standalone archives come from, and
// any other variables build steps should see.
//
// # Files
//
// The configuration is YAML, a mapping of the keys documented on Site (the
// yaml tags). Load reads, in order, each overriding the one before key by key:
//
//  1. /etc/snapbuild/site.yaml (SystemFile), if it exists;
//  2. $XDG_CONFIG_HOME/snapbuild/site.yaml, else ~/.config/snapbuild/site.yaml
//     (UserFile), if it exists;
//
// or, instead of both, the one file named by Options.File (the
// --site-config flag) or $SNAPBUILD_SITE_CONFIG, which must exist. Then the
// environment variables SNAPBUILD_DEBIAN_MIRROR and
// SNAPBUILD_PYTHON_STANDALONE_DIR override the files; command-line flags
// override everything (the caller sets the fields).
//
// A key present in a later file replaces the earlier value, lists included;
// env is merged variable by variable. An unknown key, a value of the wrong
// type or an invalid URL is an error naming the file, the line and the key.
//
// # Build steps
//
// Env gives the variables every build step (RUN, run_function) gets as
// process environment. They are not part of the image (its config, ENV or
// history) nor of any cache key, so the same definition gives the same image
// wherever it is built. The image's own ENV wins over them, and a command's
// own options (pip install --index-url ...) win over environment variables
// in pip, uv and micromamba.
package siteconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// SystemFile is the site-wide configuration file.
const SystemFile = "/etc/snapbuild/site.yaml"

// Site is a site's configuration. The zero value configures nothing: steps
// get no extra variables and every source is snapbuild's default. Fields
// are documented with their YAML key.
type Site struct {
	// pip_index_url: pip's index (PIP_INDEX_URL), e.g.
	// "http://devpi.internal/root/pypi/+simple/".
	PipIndexURL string `yaml:"pip_index_url"`
	// pip_extra_index_urls: pip's extra indexes (PIP_EXTRA_INDEX_URL,
	// space-separated).
	PipExtraIndexURLs []string `yaml:"pip_extra_index_urls"`
	// pip_trusted_hosts: hosts pip reaches over plain HTTP or unverified
	// TLS (PIP_TRUSTED_HOST, space-separated), "host" or "host:port".
	PipTrustedHosts []string `yaml:"pip_trusted_hosts"`

	// uv_index_url: uv's index (UV_INDEX_URL); empty: PipIndexURL.
	UvIndexURL string `yaml:"uv_index_url"`
	// uv_extra_index_urls: uv's extra indexes (UV_EXTRA_INDEX_URL); empty:
	// PipExtraIndexURLs.
	UvExtraIndexURLs []string `yaml:"uv_extra_index_urls"`
	// uv_insecure_hosts: hosts uv reaches without TLS verification
	// (UV_INSECURE_HOST); empty: PipTrustedHosts.
	UvInsecureHosts []string `yaml:"uv_insecure_hosts"`

	// conda_channel_alias: the URL conda channel names resolve under
	// (MAMBA_CHANNEL_ALIAS for micromamba, CONDA_CHANNEL_ALIAS for conda):
	// with "http://mirror.internal/conda", "-c conda-forge" fetches
	// http://mirror.internal/conda/conda-forge.
	CondaChannelAlias string `yaml:"conda_channel_alias"`

	// debian_mirror: the Debian archive debian_slim is bootstrapped from
	// (as --mirror and $SNAPBUILD_DEBIAN_MIRROR).
	DebianMirror string `yaml:"debian_mirror"`
	// registries_conf: a containers registries.conf with registry mirrors
	// (as --registries-conf).
	RegistriesConf string `yaml:"registries_conf"`
	// python_standalone_dir: where add_python finds python-build-standalone
	// archives (as $SNAPBUILD_PYTHON_STANDALONE_DIR).
	PythonStandaloneDir string `yaml:"python_standalone_dir"`
	// uv_image: the repository that replaces ghcr.io/astral-sh/uv for the uv
	// binary (uv_pip_install, uv_sync); the tag (uv_version) is kept.
	UvImage string `yaml:"uv_image"`
	// micromamba_image: the repository that replaces mambaorg/micromamba
	// for Image.micromamba's base; the tag is kept.
	MicromambaImage string `yaml:"micromamba_image"`

	// env: more variables for every build step, e.g. HTTPS_PROXY,
	// PIP_CERT, UV_NATIVE_TLS, PIP_NO_CACHE_DIR. They win over the
	// variables the settings above make.
	Env map[string]string `yaml:"env"`
}

// Keys are the keys a site file may hold, sorted.
var Keys = func() []string {
	var keys []string
	for _, f := range fields {
		keys = append(keys, f.key)
	}
	sort.Strings(keys)
	return keys
}()

// field is one key of the file.
type field struct {
	key   string
	kind  int // kindURL, kindHost, kindPath, kindRepo, kindEnv
	list  bool
	value func(s *Site) any // pointer to the field
}

const (
	kindURL = iota
	kindHost
	kindPath
	kindRepo
	kindEnv
)

var fields = []field{
	{"pip_index_url", kindURL, false, func(s *Site) any { return &s.PipIndexURL }},
	{"pip_extra_index_urls", kindURL, true, func(s *Site) any { return &s.PipExtraIndexURLs }},
	{"pip_trusted_hosts", kindHost, true, func(s *Site) any { return &s.PipTrustedHosts }},
	{"uv_index_url", kindURL, false, func(s *Site) any { return &s.UvIndexURL }},
	{"uv_extra_index_urls", kindURL, true, func(s *Site) any { return &s.UvExtraIndexURLs }},
	{"uv_insecure_hosts", kindHost, true, func(s *Site) any { return &s.UvInsecureHosts }},
	{"conda_channel_alias", kindURL, false, func(s *Site) any { return &s.CondaChannelAlias }},
	{"debian_mirror", kindURL, false, func(s *Site) any { return &s.DebianMirror }},
	{"registries_conf", kindPath, false, func(s *Site) any { return &s.RegistriesConf }},
	{"python_standalone_dir", kindPath, false, func(s *Site) any { return &s.PythonStandaloneDir }},
	{"uv_image", kindRepo, false, func(s *Site) any { return &s.UvImage }},
	{"micromamba_image", kindRepo, false, func(s *Site) any { return &s.MicromambaImage }},
	{"env", kindEnv, false, func(s *Site) any { return &s.Env }},
}

// Options say where Load looks.
type Options struct {
	// File is a file to read instead of SystemFile and UserFile (the
	// --site-config flag); it must exist. "" means $SNAPBUILD_SITE_CONFIG,
	// else the default files.
	File string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// SystemFile and UserFile replace the default paths (tests); "" means
	// the default.
	SystemFile, UserFile string
}

// UserFile is the user's configuration file: $XDG_CONFIG_HOME/snapbuild/site.yaml,
// else ~/.config/snapbuild/site.yaml; "" when neither can be told.
func UserFile(getenv func(string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "snapbuild", "site.yaml")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "snapbuild", "site.yaml")
	}
	return ""
}

// Load reads the site configuration (see the package documentation for the
// files and their order) and returns it with the files it read. Missing
// default files are skipped; a missing named file is an error.
func Load(o Options) (Site, []string, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var s Site
	var read []string
	named := o.File
	if named == "" {
		named = getenv("SNAPBUILD_SITE_CONFIG")
	}
	if named != "" {
		if err := s.ReadFile(named); err != nil {
			return Site{}, nil, err
		}
		read = append(read, named)
	} else {
		for _, f := range []string{orDefault(o.SystemFile, SystemFile), orDefault(o.UserFile, UserFile(getenv))} {
			if f == "" {
				continue
			}
			err := s.ReadFile(f)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return Site{}, nil, err
			}
			read = append(read, f)
		}
	}
	for _, e := range []struct {
		name string
		dst  *string
	}{{"SNAPBUILD_DEBIAN_MIRROR", &s.DebianMirror}, {"SNAPBUILD_PYTHON_STANDALONE_DIR", &s.PythonStandaloneDir}} {
		if v := getenv(e.name); v != "" {
			*e.dst = v
		}
	}
	if err := s.Validate(); err != nil {
		return Site{}, nil, err
	}
	return s, read, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ReadFile applies the keys of the YAML file name over s. Errors name the
// file; a missing file's error wraps fs.ErrNotExist.
func (s *Site) ReadFile(name string) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("site configuration: %w", err)
	}
	return s.Apply(name, data)
}

// Apply applies the keys of the YAML document data (read from name, for
// errors) over s: a present key replaces the value in s (lists whole), env
// entries replace the variables they name. An empty document changes
// nothing; null or "" for a key clears it.
func (s *Site) Apply(name string, data []byte) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("%s: not valid YAML: %v", name, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	if m.Kind == yaml.ScalarNode && m.Tag == "!!null" {
		return nil
	}
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: a site configuration is a mapping of keys (%s)", name, m.Line, strings.Join(Keys, ", "))
	}
	next := *s
	next.Env = cloneMap(s.Env)
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		f, ok := lookup(k.Value)
		if !ok {
			return fmt.Errorf("%s:%d: unknown key %q (known keys: %s)", name, k.Line, k.Value, strings.Join(Keys, ", "))
		}
		if seen[k.Value] {
			return fmt.Errorf("%s:%d: key %q given twice", name, k.Line, k.Value)
		}
		seen[k.Value] = true
		if err := f.decode(&next, v); err != nil {
			return fmt.Errorf("%s:%d: %s: %v", name, v.Line, k.Value, err)
		}
		if err := f.check(&next); err != nil {
			return fmt.Errorf("%s:%d: %s: %v", name, v.Line, k.Value, err)
		}
	}
	*s = next
	return nil
}

func lookup(key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// decode sets the field from a YAML node.
func (f field) decode(s *Site, v *yaml.Node) error {
	null := v.Kind == yaml.ScalarNode && v.Tag == "!!null"
	switch dst := f.value(s).(type) {
	case *string:
		if null {
			*dst = ""
			return nil
		}
		if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
			return fmt.Errorf("want a string")
		}
		*dst = v.Value
	case *[]string:
		if null {
			*dst = nil
			return nil
		}
		if v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
			// One item may be given without a list; "" clears.
			*dst = nil
			if v.Value != "" {
				*dst = []string{v.Value}
			}
			return nil
		}
		if v.Kind != yaml.SequenceNode {
			return fmt.Errorf("want a list of strings")
		}
		var items []string
		for _, c := range v.Content {
			if c.Kind != yaml.ScalarNode || c.Tag != "!!str" {
				return fmt.Errorf("line %d: want a string", c.Line)
			}
			items = append(items, c.Value)
		}
		*dst = items
	case *map[string]string:
		if null {
			*dst = nil
			return nil
		}
		if v.Kind != yaml.MappingNode {
			return fmt.Errorf("want a mapping of variable names to values")
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i], v.Content[i+1]
			if val.Kind != yaml.ScalarNode || val.Tag == "!!null" {
				return fmt.Errorf("%s: want a value (quote numbers and booleans: \"1\")", k.Value)
			}
			if *dst == nil {
				*dst = map[string]string{}
			}
			(*dst)[k.Value] = val.Value
		}
	}
	return nil
}

// check validates the field's value in s.
func (f field) check(s *Site) error {
	var vals []string
	switch v := f.value(s).(type) {
	case *string:
		if *v != "" {
			vals = []string{*v}
		}
	case *[]string:
		vals = *v
	case *map[string]string:
		return checkEnv(*v)
	}
	for _, v := range vals {
		var err error
		switch f.kind {
		case kindURL:
			err = checkURL(v)
		case kindHost:
			err = checkHost(v)
		case kindPath:
			if !filepath.IsAbs(v) {
				err = fmt.Errorf("%q: give an absolute path", v)
			}
		case kindRepo:
			err = checkRepo(v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks every setting: URLs are absolute http, https or file
// URLs without spaces, hosts are "host" or "host:port", paths are absolute,
// image repositories carry no tag or digest, env names are variable names.
func (s Site) Validate() error {
	for _, f := range fields {
		if err := f.check(&s); err != nil {
			return fmt.Errorf("site configuration: %s: %v", f.key, err)
		}
	}
	return nil
}

func checkURL(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		// "127.0.0.1:8080/simple" (no scheme) lands here, with url's
		// own wording; say what is wanted.
		return fmt.Errorf("%q: want an absolute http://, https:// or file:// URL (%v)", v, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") || strings.ContainsAny(v, " \t\n") {
		return fmt.Errorf("%q: want an absolute http://, https:// or file:// URL without spaces", v)
	}
	return nil
}

var hostRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$`)
})

func checkHost(v string) error {
	if !hostRE().MatchString(v) {
		return fmt.Errorf("%q: want a host name or address, with an optional :port (no scheme, no path)", v)
	}
	return nil
}

// repoRE is a repository name: an optional registry host[:port], then
// lower-case path components (the distribution spec's grammar, loosely).
var repoRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([A-Za-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$`)
})

func checkRepo(v string) error {
	if !repoRE().MatchString(v) {
		return fmt.Errorf("%q: want an image repository without tag or digest, e.g. registry.internal:5000/astral-sh/uv", v)
	}
	return nil
}

var envNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })

func checkEnv(env map[string]string) error {
	for k := range env {
		if !envNameRE().MatchString(k) {
			return fmt.Errorf("%q is not a variable name (letters, digits and _, not starting with a digit)", k)
		}
	}
	return nil
}

// StepEnv is the environment the site gives every build step, as sorted
// "KEY=VALUE" entries:
//
//	PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST     from the pip_* keys
//	UV_INDEX_URL, UV_EXTRA_INDEX_URL, UV_INSECURE_HOST      from the uv_* keys, else the pip_* ones
//	MAMBA_CHANNEL_ALIAS, CONDA_CHANNEL_ALIAS                from conda_channel_alias
//	anything in env                                          (winning over the above)
//
// Lists are joined with spaces, as pip and uv split them. uv gets
// UV_INDEX_URL, not UV_DEFAULT_INDEX: it is the variable of uv's
// --index-url option, the one Modal's uv_pip_install(index_url=) passes, so
// that the command's own option replaces it rather than adding a second
// default index.
func (s Site) StepEnv() []string {
	m := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("PIP_INDEX_URL", s.PipIndexURL)
	set("PIP_EXTRA_INDEX_URL", strings.Join(s.PipExtraIndexURLs, " "))
	set("PIP_TRUSTED_HOST", strings.Join(s.PipTrustedHosts, " "))
	set("UV_INDEX_URL", orDefault(s.UvIndexURL, s.PipIndexURL))
	set("UV_EXTRA_INDEX_URL", strings.Join(orList(s.UvExtraIndexURLs, s.PipExtraIndexURLs), " "))
	set("UV_INSECURE_HOST", strings.Join(orList(s.UvInsecureHosts, s.PipTrustedHosts), " "))
	set("MAMBA_CHANNEL_ALIAS", s.CondaChannelAlias)
	set("CONDA_CHANNEL_ALIAS", s.CondaChannelAlias)
	for k, v := range s.Env {
		m[k] = v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + m[k]
	}
	return out
}

func orList(l, def []string) []string {
	if len(l) == 0 {
		return def
	}
	return l
}
