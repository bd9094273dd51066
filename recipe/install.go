package recipe

import (
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/snapbuild/snapbuild"
)

// installMethods are the package-installer steps (pip, uv, poetry,
// micromamba), added to the method table by init (after the table of
// recipe.go, so pip_install here replaces the plain one there). Each takes
// Modal's argument names; a list or a scalar stands for the argument named
// in positional. Every non-root step also takes force_build, env, gpu and
// secrets (see stepOptions). Local paths are relative to the recipe's
// directory; "~" is expanded by the Image method.
//
//   - pip_install: {packages, find_links, index_url, extra_index_url, pre, extra_options}
//   - pip_install_from_requirements: {requirements_txt, find_links, index_url, extra_index_url, pre, extra_options}
//   - pip_install_from_pyproject: {pyproject_toml, optional_dependencies, find_links, ...}
//   - pip_install_private_repos: {repositories, git_user, secrets, find_links, ...};
//     secrets may also be a list of names, short for [{from_name: NAME}, ...]
//   - uv_pip_install: {packages, requirements, find_links, index_url, extra_index_url, pre, extra_options, uv_version}
//   - uv_sync: {uv_project_dir (default: the recipe's directory), groups, extras, frozen, extra_options, uv_version}
//   - poetry_install_from_file: {poetry_pyproject_toml, poetry_lockfile, ignore_lockfile, with_, without, only,
//     poetry_version (default "latest"; null: do not install poetry), old_installer}
//   - micromamba: {python_version} (a base, like debian_slim)
//   - micromamba_install: {packages, spec_file, channels}
func installMethods() map[string]method {
	return map[string]method{
		"pip_install": {positional: "packages", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			pkgs, err := a.strs("packages")
			if err != nil {
				return img, err
			}
			o, err := a.pipOptions()
			if err != nil {
				return img, err
			}
			opts, err := a.stepOptions(true)
			return img.PipInstallWith(pkgs, o, opts...), err
		}},
		"pip_install_from_requirements": {positional: "requirements_txt", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			req, err := a.requiredPath("requirements_txt")
			if err != nil {
				return img, err
			}
			o, err := a.pipOptions()
			if err != nil {
				return img, err
			}
			opts, err := a.stepOptions(true)
			return img.PipInstallFromRequirements(req, o, opts...), err
		}},
		"pip_install_from_pyproject": {positional: "pyproject_toml", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			pp, err := a.requiredPath("pyproject_toml")
			if err != nil {
				return img, err
			}
			optional, err := a.strs("optional_dependencies")
			if err != nil {
				return img, err
			}
			o, err := a.pipOptions()
			if err != nil {
				return img, err
			}
			opts, err := a.stepOptions(true)
			return img.PipInstallFromPyproject(pp, optional, o, opts...), err
		}},
		"pip_install_private_repos": {positional: "repositories", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			repos, err := a.strs("repositories")
			if err != nil {
				return img, err
			}
			user, err := a.str("git_user")
			if err != nil {
				return img, err
			}
			o, err := a.pipOptions()
			if err != nil {
				return img, err
			}
			a.secretNames("secrets")
			opts, err := a.stepOptions(true)
			return img.PipInstallPrivateRepos(repos, user, o, opts...), err
		}},
		"uv_pip_install": {positional: "packages", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			pkgs, err := a.strs("packages")
			if err != nil {
				return img, err
			}
			var o snapbuild.UvPipOptions
			if o.Requirements, err = a.localPaths("requirements"); err != nil {
				return img, err
			}
			pip, err := a.pipOptions()
			if err != nil {
				return img, err
			}
			o.FindLinks, o.IndexURL, o.ExtraIndexURL, o.Pre, o.ExtraOptions = pip.FindLinks, pip.IndexURL, pip.ExtraIndexURL, pip.Pre, pip.ExtraOptions
			if o.UvVersion, err = a.str("uv_version"); err != nil {
				return img, err
			}
			opts, err := a.stepOptions(true)
			return img.UvPipInstall(pkgs, o, opts...), err
		}},
		"uv_sync": {positional: "uv_project_dir", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			dir, err := a.localPath("uv_project_dir")
			if err != nil {
				return img, err
			}
			if dir == "" {
				dir = a.dir // Modal's "./", taken from the recipe's directory
			}
			var o snapbuild.UvSyncOptions
			if o.Groups, err = a.list("groups"); err != nil {
				return img, err
			}
			if o.Extras, err = a.list("extras"); err != nil {
				return img, err
			}
			frozen, err := a.boolean("frozen", true)
			if err != nil {
				return img, err
			}
			o.NoFrozen = !frozen
			if o.ExtraOptions, err = a.str("extra_options"); err != nil {
				return img, err
			}
			if o.UvVersion, err = a.str("uv_version"); err != nil {
				return img, err
			}
			opts, err := a.stepOptions(true)
			return img.UvSync(dir, o, opts...), err
		}},
		"poetry_install_from_file": {positional: "poetry_pyproject_toml", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			pp, err := a.requiredPath("poetry_pyproject_toml")
			if err != nil {
				return img, err
			}
			var o snapbuild.PoetryOptions
			if o.PoetryLockfile, err = a.localPath("poetry_lockfile"); err != nil {
				return img, err
			}
			if o.IgnoreLockfile, err = a.boolean("ignore_lockfile", false); err != nil {
				return img, err
			}
			if o.With, err = a.strs("with_"); err != nil {
				return img, err
			}
			if o.Without, err = a.strs("without"); err != nil {
				return img, err
			}
			if o.Only, err = a.strs("only"); err != nil {
				return img, err
			}
			if n := a.get("poetry_version"); n != nil && n.Tag == "!!null" {
				o.NoPoetryInstall = true
			} else if o.PoetryVersion, err = a.str("poetry_version"); err != nil {
				return img, err
			}
			if o.OldInstaller, err = a.boolean("old_installer", false); err != nil {
				return img, err
			}
			opts, err := a.stepOptions(true)
			return img.PoetryInstallFromFile(pp, o, opts...), err
		}},
		"micromamba": {root: true, positional: "python_version", apply: func(_ snapbuild.Image, a *args) (snapbuild.Image, error) {
			v, err := a.str("python_version")
			if err != nil {
				return snapbuild.Image{}, err
			}
			opts, err := a.stepOptions(false)
			return snapbuild.Micromamba(v, opts...), err
		}},
		"micromamba_install": {positional: "packages", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			pkgs, err := a.strs("packages")
			if err != nil {
				return img, err
			}
			var o snapbuild.MicromambaOptions
			if o.SpecFile, err = a.localPath("spec_file"); err != nil {
				return img, err
			}
			if o.Channels, err = a.strs("channels"); err != nil {
				return img, err
			}
			opts, err := a.stepOptions(true)
			return img.MicromambaInstall(pkgs, o, opts...), err
		}},
	}
}

// pipOptions reads pip's flags: find_links, index_url, extra_index_url, pre,
// extra_options.
func (a *args) pipOptions() (snapbuild.PipOptions, error) {
	var o snapbuild.PipOptions
	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{{"find_links", &o.FindLinks}, {"index_url", &o.IndexURL}, {"extra_index_url", &o.ExtraIndexURL}, {"extra_options", &o.ExtraOptions}} {
		if *f.dst, err = a.str(f.name); err != nil {
			return o, err
		}
	}
	o.Pre, err = a.boolean("pre", false)
	return o, err
}

// localPath reads a local path argument, relative to the recipe's directory
// ("" when absent; "~" and "~/..." are left to the Image method, which
// expands them; "~name" is a name relative to the recipe's directory).
func (a *args) localPath(name string) (string, error) {
	p, err := a.str(name)
	if err != nil || p == "" {
		return p, err
	}
	return a.resolve(p), nil
}

// requiredPath is localPath for an argument that must be given.
func (a *args) requiredPath(name string) (string, error) {
	p, err := a.localPath(name)
	if err == nil && p == "" {
		err = fmt.Errorf("%s: %s is required", a.method, name)
	}
	return p, err
}

// localPaths reads a list of local paths (Modal: None or a list).
func (a *args) localPaths(name string) ([]string, error) {
	ps, err := a.list(name)
	for i, p := range ps {
		ps[i] = a.resolve(p)
	}
	return ps, err
}

func (a *args) resolve(p string) string {
	if filepath.IsAbs(p) || p == "~" || strings.HasPrefix(p, "~/") {
		return p
	}
	return filepath.Join(a.dir, p)
}

// list reads an argument that Modal wants as None or a list of strings
// (uv_pip_install's requirements, uv_sync's groups and extras): a single
// string is Modal's "<name> must be None or a list of strings".
func (a *args) list(name string) ([]string, error) {
	if n := a.named[name]; n != nil && n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		a.used[name] = true
		return nil, fmt.Errorf("%s: %s must be None or a list of strings", a.method, name)
	}
	return a.strs(name)
}

// secretNames lets a list of secrets (or a single one) be given by name:
// "secrets: [gh]" is short for "secrets: [{from_name: gh}]". Entries in the
// long form are left as they are, for stepOptions.
func (a *args) secretNames(name string) {
	n := a.named[name]
	if n == nil || n.Tag == "!!null" {
		return
	}
	items := n.Content
	if n.Kind == yaml.ScalarNode {
		items = []*yaml.Node{n}
	} else if n.Kind != yaml.SequenceNode {
		return
	}
	out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: n.Line, Column: n.Column}
	for _, c := range items {
		if c.Kind == yaml.ScalarNode && c.Tag == "!!str" {
			c = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: c.Line, Column: c.Column, Content: []*yaml.Node{
				{Kind: yaml.ScalarNode, Tag: "!!str", Value: "from_name", Line: c.Line, Column: c.Column}, c,
			}}
		}
		out.Content = append(out.Content, c)
	}
	a.named[name] = out
}
