package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/snapbuild/snapbuild/siteconfig"
)

// siteFlags are build's site configuration flags: --site-config names the
// file, the others override its keys.
type siteFlags struct {
	file                                      *string
	pipIndex, uvIndex, condaAlias             *string
	pythonDir, uvImage, micromambaImage       *string
	pipExtra, pipTrusted, uvExtra, uvInsecure listFlag
}

func addSiteFlags(fs *flag.FlagSet) *siteFlags {
	f := &siteFlags{}
	f.file = fs.String("site-config", "", "site configuration `FILE` (default: $SNAPBUILD_SITE_CONFIG, else /etc/snapbuild/site.yaml and ~/.config/snapbuild/site.yaml)")
	f.pipIndex = fs.String("pip-index-url", "", "Python package index `URL` for pip (and uv) in every step")
	fs.Var(&f.pipExtra, "pip-extra-index-url", "extra Python package index `URL` for pip (and uv) (repeatable)")
	fs.Var(&f.pipTrusted, "pip-trusted-host", "`HOST[:PORT]` pip (and uv) may reach without verified TLS (repeatable)")
	f.uvIndex = fs.String("uv-index-url", "", "Python package index `URL` for uv (default: --pip-index-url)")
	fs.Var(&f.uvExtra, "uv-extra-index-url", "extra Python package index `URL` for uv (repeatable; default: --pip-extra-index-url)")
	fs.Var(&f.uvInsecure, "uv-insecure-host", "`HOST[:PORT]` uv may reach without verified TLS (repeatable; default: --pip-trusted-host)")
	f.condaAlias = fs.String("conda-channel-alias", "", "`URL` conda channel names resolve under (micromamba, conda)")
	f.pythonDir = fs.String("python-standalone-dir", "", "`DIR` of python-build-standalone archives for add_python")
	f.uvImage = fs.String("uv-image", "", "`REPO` replacing ghcr.io/astral-sh/uv (tag kept)")
	f.micromambaImage = fs.String("micromamba-image", "", "`REPO` replacing mambaorg/micromamba (tag kept)")
	return f
}

// load reads the site configuration files and applies the flags given over
// them (a repeatable flag replaces the file's whole list). debianMirror is
// --mirror's value. It reports the files read on stderr when any set
// something.
func (f *siteFlags) load(debianMirror string) (siteconfig.Site, error) {
	s, files, err := siteconfig.Load(siteconfig.Options{File: *f.file})
	if err != nil {
		return siteconfig.Site{}, err
	}
	str := func(v string) bool { return v != "" }
	list := func(v listFlag) bool { return len(v) > 0 }
	for _, o := range []struct {
		flag string
		set  bool
		fn   func(*siteconfig.Site)
	}{
		{"--pip-index-url", str(*f.pipIndex), func(s *siteconfig.Site) { s.PipIndexURL = *f.pipIndex }},
		{"--pip-extra-index-url", list(f.pipExtra), func(s *siteconfig.Site) { s.PipExtraIndexURLs = f.pipExtra }},
		{"--pip-trusted-host", list(f.pipTrusted), func(s *siteconfig.Site) { s.PipTrustedHosts = f.pipTrusted }},
		{"--uv-index-url", str(*f.uvIndex), func(s *siteconfig.Site) { s.UvIndexURL = *f.uvIndex }},
		{"--uv-extra-index-url", list(f.uvExtra), func(s *siteconfig.Site) { s.UvExtraIndexURLs = f.uvExtra }},
		{"--uv-insecure-host", list(f.uvInsecure), func(s *siteconfig.Site) { s.UvInsecureHosts = f.uvInsecure }},
		{"--conda-channel-alias", str(*f.condaAlias), func(s *siteconfig.Site) { s.CondaChannelAlias = *f.condaAlias }},
		{"--mirror", str(debianMirror), func(s *siteconfig.Site) { s.DebianMirror = debianMirror }},
		{"--python-standalone-dir", str(*f.pythonDir), func(s *siteconfig.Site) { s.PythonStandaloneDir = *f.pythonDir }},
		{"--uv-image", str(*f.uvImage), func(s *siteconfig.Site) { s.UvImage = *f.uvImage }},
		{"--micromamba-image", str(*f.micromambaImage), func(s *siteconfig.Site) { s.MicromambaImage = *f.micromambaImage }},
	} {
		if !o.set {
			continue
		}
		var only siteconfig.Site
		o.fn(&only)
		if err := only.Validate(); err != nil {
			return siteconfig.Site{}, fmt.Errorf("build %s: %w", o.flag, err)
		}
		o.fn(&s)
	}
	if len(files) > 0 {
		fmt.Fprintf(os.Stderr, "snapbuild: site configuration from %s\n", strings.Join(files, ", "))
	}
	return s, nil
}
