package snapbuild

// The package-installer methods of modal.Image (pip, uv, poetry, micromamba),
// lowered to the exact commands of Modal's 2025.06 image builder, which each
// method's godoc quotes.
//
// Conventions shared by every method here:
//
//   - An optional string argument that Modal types as Optional[str] is ""
//     when not given: "" means None. (Modal's pip flags test `is not None`, so
//     find_links="" gives `--find-links ''` there; snapbuild cannot express
//     that and omits the flag.)
//   - Modal evaluates most checks lazily, when the image is built. snapbuild
//     does them when the method is called and keeps the error in the Image
//     (see Image.Err), as it does for every other method: this covers reading
//     pyproject.toml (PipInstallFromPyproject, UvSync) and the existence of
//     poetry.lock and uv.lock. The command text is fixed at call time too, so
//     a uv.lock created after UvSync was called is not seen.
//   - Local paths are expanded ("~") and made absolute when the method is
//     called; their files are read (and hashed) when the image is built.
//   - A method called on an Image that carries an error returns it unchanged;
//     on an Image without layers it fails as Modal's "Image has not been
//     constructed yet" does, before any other check (Modal's
//     @_requires_image_instance runs first).
//   - Every error is an *InvalidError whose Message is Modal's text where Modal
//     has one (Modal raises ValueError or NotFoundError for some; the text is
//     the same).
//   - An argument that would put a line break into a Dockerfile line is an
//     error naming the argument and its value (Modal sends it and its build
//     fails on the next line, or runs it as an instruction).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// PipOptions are the pip flags shared by PipInstallWith,
// PipInstallFromRequirements, PipInstallFromPyproject and
// PipInstallPrivateRepos (Modal's find_links, index_url, extra_index_url, pre
// and extra_options keyword arguments). The zero value adds no flags.
type PipOptions struct {
	FindLinks     string // --find-links <quoted>; "" for none
	IndexURL      string // --index-url <quoted>; "" for none
	ExtraIndexURL string // --extra-index-url <quoted>; "" for none
	Pre           bool   // --pre
	ExtraOptions  string // appended verbatim, e.g. "--no-build-isolation --no-clean"
}

// lineArgs names the options written into the RUN line, for oneLine.
func (o PipOptions) lineArgs() []namedValues {
	return []namedValues{lineArg("find_links", o.FindLinks), lineArg("index_url", o.IndexURL),
		lineArg("extra_index_url", o.ExtraIndexURL), lineArg("extra_options", o.ExtraOptions)}
}

// args is Modal's _make_pip_install_args: the flags in fixed order, each value
// shell-quoted when needed, then " --pre" (with its leading space even when
// nothing precedes it: Modal's double-space quirk), then extra_options.
func (o PipOptions) args() string {
	var flags []string
	for _, f := range [][2]string{{"--find-links", o.FindLinks}, {"--index-url", o.IndexURL}, {"--extra-index-url", o.ExtraIndexURL}} {
		if f[1] != "" {
			flags = append(flags, f[0]+" "+modal.ShlexQuote(f[1]))
		}
	}
	args := strings.Join(flags, " ")
	if o.Pre {
		args += " --pre"
	}
	if o.ExtraOptions != "" {
		if args != "" {
			args += " "
		}
		args += o.ExtraOptions
	}
	return args
}

// installPipLine is the RUN line of pip_install and pip_install_from_pyproject:
// packages sorted (Python code-point order, which is Go's byte order for
// UTF-8) and quoted when needed, the flags after them, the line stripped.
func installPipLine(packages []string, o PipOptions) string {
	sorted := slices.Clone(packages)
	sort.Strings(sorted)
	return installStrip("RUN python -m pip install " + shlexJoin(sorted) + " " + o.args())
}

// PipInstallWith is modal.Image.pip_install with its pip flags:
//
//	RUN python -m pip install <sorted quoted packages> [--find-links <q>] [--index-url <q>] [--extra-index-url <q>] [--pre] [<extra_options>]
//
// e.g. RUN python -m pip install 'a b' 'torch~=2.2' transformers==4.23.0
// --find-links /wheels --index-url agi.se --extra-index-url 'https://x/y?z=1&q'
// --pre --no-build-isolation. Like Modal, pre alone gives a double space:
// "RUN python -m pip install a  --pre". No packages gives the same image
// (whatever the options); a package starting with "-" is Modal's InvalidError
// "Package list for `Image.pip_install` cannot contain other arguments; try
// the `extra_options` parameter instead." With a zero PipOptions
// it is PipInstall.
func (img Image) PipInstallWith(packages []string, o PipOptions, opts ...StepOption) Image {
	const method = "pip_install"
	if img.err != nil || len(img.layers) == 0 {
		return img.with(&modal.Layer{Method: method}, nil)
	}
	if err := oneLine(method, append(o.lineArgs(), lineArgs("packages", packages))...); err != nil {
		return img.fail(err)
	}
	if len(packages) == 0 {
		return img
	}
	if err := installCheckPackages(method, "Image.pip_install", packages); err != nil {
		return img.fail(err)
	}
	return img.withInstall(&modal.Layer{Method: method, Commands: []string{"FROM base", installPipLine(packages, o)}}, opts)
}

// PipInstallFromRequirements is modal.Image.pip_install_from_requirements:
// the local file requirementsTxt ("~" expanded) goes into the build context
// as /.requirements.txt, then
//
//	COPY /.requirements.txt /.requirements.txt
//	RUN python -m pip install -r /.requirements.txt[ -f <find_links>] <pip flags>
//
// Modal's quirk is kept: find_links appears twice, unquoted after -f and
// quoted after --find-links ("-f /wh --find-links /wh"). The file stays in the
// image at /.requirements.txt; "-r"/"-c" lines naming other local files are
// not copied (as in Modal). The file is read when the image is built; a
// missing file is an error then. An empty path is an error now.
func (img Image) PipInstallFromRequirements(requirementsTxt string, o PipOptions, opts ...StepOption) Image {
	const method = "pip_install_from_requirements"
	if img.err != nil || len(img.layers) == 0 {
		return img.with(&modal.Layer{Method: method}, nil)
	}
	if err := oneLine(method, append(o.lineArgs(), lineArg("requirements_txt", requirementsTxt))...); err != nil {
		return img.fail(err)
	}
	if requirementsTxt == "" {
		return img.fail(modal.Invalidf(method, "requirements_txt: empty path"))
	}
	local, err := modal.AbsLocal(requirementsTxt)
	if err != nil {
		return img.fail(modal.Invalidf(method, "%v", err))
	}
	findLinks := ""
	if o.FindLinks != "" {
		findLinks = " -f " + o.FindLinks
	}
	return img.withInstall(&modal.Layer{Method: method,
		Commands: []string{
			"FROM base",
			"COPY /.requirements.txt /.requirements.txt",
			installStrip("RUN python -m pip install -r /.requirements.txt" + findLinks + " " + o.args()),
		},
		Context: []modal.ContextInput{{Local: local, Remote: "/.requirements.txt"}},
	}, opts)
}

// PipInstallFromPyproject is modal.Image.pip_install_from_pyproject: the
// [project].dependencies of the local pyprojectToml ("~" expanded), plus the
// entries of each [project.optional-dependencies] group named in
// optionalDependencies (names the file lacks are skipped, as in Modal), are
// installed exactly as PipInstallWith does (sorted, quoted, same flags):
//
//	RUN python -m pip install numpy pytest 'requests>=2'
//
// The pyproject file is not copied and the project itself is not installed.
//
// Modal reads the file when the image is built; snapbuild reads it now and
// keeps any error in the Image, so the command text is known at once (a later
// edit of the file needs a new call). Errors: no [project].dependencies gives
// Modal's message ("No [project.dependencies] section in pyproject.toml file.
// If your pyproject.toml instead declares [tool.poetry.dependencies], use
// `Image.poetry_install_from_file()`. ..."); a missing file gives Python's
// "[Errno 2] No such file or directory: '<path>'". Where Modal crashes with a
// bare KeyError (optional groups requested but no
// [project.optional-dependencies] table) or a TypeError (entries that are not
// strings), snapbuild says so in words. An empty dependency list gives
// Modal's "RUN python -m pip install" (which pip rejects at build time).
func (img Image) PipInstallFromPyproject(pyprojectToml string, optionalDependencies []string, o PipOptions, opts ...StepOption) Image {
	const method = "pip_install_from_pyproject"
	if img.err != nil || len(img.layers) == 0 {
		return img.with(&modal.Layer{Method: method}, nil)
	}
	if err := oneLine(method, append(o.lineArgs(), lineArg("pyproject_toml", pyprojectToml), lineArgs("optional_dependencies", optionalDependencies))...); err != nil {
		return img.fail(err)
	}
	path, err := modal.ExpandHome(pyprojectToml)
	if err != nil {
		return img.fail(modal.Invalidf(method, "%v", err))
	}
	doc, err := installReadTOML(path)
	if err != nil {
		return img.fail(modal.Invalidf(method, "%v", err))
	}
	project, _ := doc["project"].(map[string]any)
	rawDeps, ok := project["dependencies"]
	if !ok {
		return img.fail(modal.Invalidf(method, "No [project.dependencies] section in pyproject.toml file. "+
			"If your pyproject.toml instead declares [tool.poetry.dependencies], use `Image.poetry_install_from_file()`. "+
			"See https://packaging.python.org/en/latest/guides/writing-pyproject-toml for further file format guidelines."))
	}
	deps, err := installTOMLStrings(rawDeps, "[project].dependencies", path)
	if err != nil {
		return img.fail(modal.Invalidf(method, "%v", err))
	}
	if len(optionalDependencies) > 0 {
		optionals, ok := project["optional-dependencies"].(map[string]any)
		if !ok {
			return img.fail(modal.Invalidf(method, "no [project.optional-dependencies] table in %s, but optional_dependencies %s were requested (Modal fails with KeyError: 'optional-dependencies')", path, installPyList(optionalDependencies)))
		}
		for _, group := range optionalDependencies {
			raw, ok := optionals[group]
			if !ok {
				continue
			}
			more, err := installTOMLStrings(raw, "[project.optional-dependencies]."+group, path)
			if err != nil {
				return img.fail(modal.Invalidf(method, "%v", err))
			}
			deps = append(deps, more...)
		}
	}
	return img.withInstall(&modal.Layer{Method: method, Commands: []string{"FROM base", installPipLine(deps, o)}}, opts)
}

// PipInstallPrivateRepos is modal.Image.pip_install_private_repos: pip
// installs from private GitHub/GitLab repositories over HTTPS with a token
// that a Secret puts in the step's environment. repositories are refs
// without scheme ("github.com/org/repo@v1",
// "gitlab.com/org/repo#subdirectory=x"); gitUser is put in each URL; the
// secrets are given as in Modal, with the Secrets step option (e.g.
// Secrets(SecretFromName("github-read-private")), whose GITHUB_TOKEN or
// GITLAB_TOKEN the commands use). Commands:
//
//	RUN bash -c "[[ -v GITHUB_TOKEN ]] || (echo 'GITHUB_TOKEN env var not set by provided modal.Secret(s): <names>' && exit 1)"   (if a ref is on GitHub)
//	RUN bash -c "[[ -v GITLAB_TOKEN ]] || (echo 'GITLAB_TOKEN env var not set by provided modal.Secret(s): <names>' && exit 1)"   (if a ref is on GitLab)
//	RUN apt-get update && apt-get install -y git
//	RUN python3 -m pip install "git+https://<git_user>:$GITHUB_TOKEN@<ref>" <pip flags>   (one per ref; $GITLAB_TOKEN for GitLab)
//
// <names> are the secrets' reprs (Secret.Repr, e.g.
// "modal.Secret.from_name('github-read-private')"), comma-joined, followed by
// the repr of SecretFromDict(vars) when BuildEnv(vars) is given: Modal
// appends env= to the secrets as a from_dict Secret before naming them. The
// names are part of the command text and so of the cache key; the token's
// value is not.
//
// Errors (Modal's text): no Secrets option, "No secrets provided to
// function. Installing private packages requires tokens to be passed via
// modal.Secret objects." (BuildEnv alone does not count, as in Modal); refs
// not on github.com/ or gitlab.com/, "<n> out of <m> given repository refs
// are invalid. Invalid refs: [...]. ". snapbuild adds: an empty gitUser is
// Python's missing-argument TypeError text.
func (img Image) PipInstallPrivateRepos(repositories []string, gitUser string, o PipOptions, opts ...StepOption) Image {
	const method = "pip_install_private_repos"
	if img.err != nil || len(img.layers) == 0 {
		return img.with(&modal.Layer{Method: method}, nil)
	}
	if err := oneLine(method, append(o.lineArgs(), lineArgs("repositories", repositories), lineArg("git_user", gitUser))...); err != nil {
		return img.fail(err)
	}
	if gitUser == "" {
		return img.fail(modal.Invalidf(method, "pip_install_private_repos() missing 1 required keyword-only argument: 'git_user'"))
	}
	l := installApply(&modal.Layer{Method: method}, opts)
	if len(l.Secrets) == 0 {
		return img.fail(modal.Invalidf(method, "No secrets provided to function. Installing private packages requires tokens to be passed via modal.Secret objects."))
	}
	var invalid, urls []string
	for _, ref := range repositories {
		host, _, _ := strings.Cut(ref, "/")
		switch host {
		case "github.com":
			urls = append(urls, "git+https://"+gitUser+":$GITHUB_TOKEN@"+ref)
		case "gitlab.com":
			urls = append(urls, "git+https://"+gitUser+":$GITLAB_TOKEN@"+ref)
		default:
			invalid = append(invalid, ref)
		}
	}
	if len(invalid) > 0 {
		return img.fail(modal.Invalidf(method, "%d out of %d given repository refs are invalid. Invalid refs: %s. ", len(invalid), len(repositories), installPyList(invalid)))
	}
	var names []string
	for _, s := range l.Secrets {
		names = append(names, s.Repr())
	}
	if len(l.BuildEnv) > 0 {
		names = append(names, SecretFromDict(l.BuildEnv).Repr())
	}
	secretList := strings.Join(names, ",")
	cmds := []string{"FROM base"}
	for _, tok := range []struct{ prefix, env string }{{"github", "GITHUB_TOKEN"}, {"gitlab", "GITLAB_TOKEN"}} {
		if slices.ContainsFunc(repositories, func(r string) bool { return strings.HasPrefix(r, tok.prefix) }) {
			cmds = append(cmds, fmt.Sprintf(`RUN bash -c "[[ -v %s ]] || (echo '%s env var not set by provided modal.Secret(s): %s' && exit 1)"`, tok.env, tok.env, secretList))
		}
	}
	cmds = append(cmds, "RUN apt-get update && apt-get install -y git")
	extra := o.args()
	for _, u := range urls {
		cmds = append(cmds, installStrip(`RUN python3 -m pip install "`+u+`" `+extra))
	}
	l.Commands = cmds
	return img.withInstall(l, nil)
}

// UvPipOptions are uv_pip_install's keyword arguments. The zero value adds
// no flags and uses uv "latest".
type UvPipOptions struct {
	Requirements  []string // local requirements files ("~" expanded), passed as --requirements
	FindLinks     string   // --find-links <quoted>; "" for none
	IndexURL      string   // --index-url <quoted>; "" for none
	ExtraIndexURL string   // --extra-index-url <quoted>; "" for none
	Pre           bool     // --prerelease allow
	ExtraOptions  string   // appended verbatim after the flags
	UvVersion     string   // tag of ghcr.io/astral-sh/uv; "" for "latest"
}

// UvPipInstall is modal.Image.uv_pip_install: installs packages with uv into
// the environment of the first `python` on PATH:
//
//	COPY --from=ghcr.io/astral-sh/uv:<uv_version or latest> /uv /.uv/uv
//	COPY /.<i>_<basename> /.uv/<i>/<basename>   (per requirements file i, from the build context)
//	RUN /.uv/uv pip install --python $(command -v python) --compile-bytecode [--find-links <q>] [--index-url <q>] [--extra-index-url <q>] [--prerelease allow] [<extra_options>] [--requirements /.uv/<i>/<basename> ...] <sorted quoted packages>
//
// e.g. RUN /.uv/uv pip install --python $(command -v python) --compile-bytecode
// --index-url agi.se --prerelease allow --no-build-isolation --requirements
// /.uv/0/requirements.txt --requirements /.uv/1/requirements.txt 'a b'
// 'torch~=2.2' transformers==4.23.0. Requirements file i is put in the build
// context as /.<i>_<basename> (the index keeps same-named files apart) and
// read when the image is built. No packages and no requirements gives the
// same image; a package starting with "-" is Modal's InvalidError "Package
// list for `Image.uv_pip_install` cannot contain other arguments; try the
// `extra_options` parameter instead."
func (img Image) UvPipInstall(packages []string, o UvPipOptions, opts ...StepOption) Image {
	const method = "uv_pip_install"
	if img.err != nil || len(img.layers) == 0 {
		return img.with(&modal.Layer{Method: method}, nil)
	}
	if err := oneLine(method, lineArgs("packages", packages), lineArgs("requirements", o.Requirements), lineArg("find_links", o.FindLinks), lineArg("index_url", o.IndexURL), lineArg("extra_index_url", o.ExtraIndexURL), lineArg("extra_options", o.ExtraOptions), lineArg("uv_version", o.UvVersion)); err != nil {
		return img.fail(err)
	}
	if len(packages) == 0 && len(o.Requirements) == 0 {
		return img
	}
	if err := installCheckPackages(method, "Image.uv_pip_install", packages); err != nil {
		return img.fail(err)
	}
	cmds := []string{"FROM base", installUvCopy(o.UvVersion)}
	args := []string{"--python $(command -v python)", "--compile-bytecode"}
	for _, f := range [][2]string{{"--find-links", o.FindLinks}, {"--index-url", o.IndexURL}, {"--extra-index-url", o.ExtraIndexURL}} {
		if f[1] != "" {
			args = append(args, f[0]+" "+modal.ShlexQuote(f[1]))
		}
	}
	if o.Pre {
		args = append(args, "--prerelease allow")
	}
	if o.ExtraOptions != "" {
		args = append(args, o.ExtraOptions)
	}
	var ctx []modal.ContextInput
	var reqFlags []string
	for i, req := range o.Requirements {
		base := installBasename(req)
		if base == "" {
			return img.fail(modal.Invalidf(method, "requirements: %q is not a file path", req))
		}
		local, err := modal.AbsLocal(req)
		if err != nil {
			return img.fail(modal.Invalidf(method, "%v", err))
		}
		ctxPath := fmt.Sprintf("/.%d_%s", i, base)
		dest := fmt.Sprintf("/.uv/%d/%s", i, base)
		cmds = append(cmds, "COPY "+ctxPath+" "+dest)
		ctx = append(ctx, modal.ContextInput{Local: local, Remote: ctxPath})
		reqFlags = append(reqFlags, "--requirements "+dest)
	}
	if len(reqFlags) > 0 {
		args = append(args, strings.Join(reqFlags, " "))
	}
	sorted := slices.Clone(packages)
	sort.Strings(sorted)
	for _, p := range sorted {
		args = append(args, modal.ShlexQuote(p))
	}
	cmds = append(cmds, "RUN /.uv/uv pip install "+strings.Join(args, " "))
	return img.withInstall(&modal.Layer{Method: method, Commands: cmds, Context: ctx}, opts)
}

// installUvCopy copies the uv binary from its registry image.
func installUvCopy(version string) string {
	if version == "" {
		version = "latest"
	}
	return "COPY --from=ghcr.io/astral-sh/uv:" + version + " /uv /.uv/uv"
}

// UvSyncOptions are uv_sync's keyword arguments. The zero value is Modal's
// default (frozen=True, uv "latest").
type UvSyncOptions struct {
	Groups       []string // --group=<g> each, unquoted
	Extras       []string // --extra=<e> each, unquoted
	NoFrozen     bool     // frozen=False: omit --frozen, so uv may update the lock at build time
	ExtraOptions string   // appended verbatim before --frozen
	UvVersion    string   // tag of ghcr.io/astral-sh/uv; "" for "latest"
}

// UvSync is modal.Image.uv_sync: a venv at /.uv/.venv with the dependencies of
// the local uv project in uvProjectDir ("" means "./", Modal's default; "~"
// expanded), not the project itself:
//
//	COPY --from=ghcr.io/astral-sh/uv:<uv_version or latest> /uv /.uv/uv
//	COPY /.pyproject.toml /.uv/pyproject.toml
//	COPY /.uv.lock /.uv/uv.lock                        (only if <dir>/uv.lock exists)
//	RUN /.uv/uv sync --project=/.uv --no-install-workspace --compile-bytecode [--group=G ...] [--extra=E ...] [<extra_options>] [--frozen]
//	ENV PATH=/.uv/.venv/bin:$PATH
//
// --frozen is there only when uv.lock exists and NoFrozen is false. The
// pyproject.toml (and uv.lock) go into the build context as /.pyproject.toml
// (and /.uv.lock).
//
// Modal checks the project when the image is built; snapbuild checks it now:
// a missing <dir>/pyproject.toml is Modal's "Expected <path> to exist" (path
// as os.path.join gives it, e.g. "./pyproject.toml"), a [tool.uv.workspace]
// table is "uv workspaces are not supported". Modal's check that modal is a
// dependency applies to builders <= 2024.10 only, so not here.
func (img Image) UvSync(uvProjectDir string, o UvSyncOptions, opts ...StepOption) Image {
	const method = "uv_sync"
	if img.err != nil || len(img.layers) == 0 {
		return img.with(&modal.Layer{Method: method}, nil)
	}
	if err := oneLine(method, lineArg("uv_project_dir", uvProjectDir), lineArgs("groups", o.Groups), lineArgs("extras", o.Extras), lineArg("extra_options", o.ExtraOptions), lineArg("uv_version", o.UvVersion)); err != nil {
		return img.fail(err)
	}
	if uvProjectDir == "" {
		uvProjectDir = "./"
	}
	dir, err := modal.ExpandHome(uvProjectDir)
	if err != nil {
		return img.fail(modal.Invalidf(method, "%v", err))
	}
	pyproject := installJoin(dir, "pyproject.toml")
	if _, err := os.Stat(pyproject); err != nil {
		return img.fail(modal.Invalidf(method, "Expected %s to exist", pyproject))
	}
	doc, err := installReadTOML(pyproject)
	if err != nil {
		return img.fail(modal.Invalidf(method, "%v", err))
	}
	if tool, ok := doc["tool"].(map[string]any); ok {
		if uv, ok := tool["uv"].(map[string]any); ok {
			if _, ok := uv["workspace"]; ok {
				return img.fail(modal.Invalidf(method, "uv workspaces are not supported"))
			}
		}
	}
	args := []string{"--project=/.uv", "--no-install-workspace", "--compile-bytecode"}
	for _, g := range o.Groups {
		args = append(args, "--group="+g)
	}
	for _, e := range o.Extras {
		args = append(args, "--extra="+e)
	}
	if o.ExtraOptions != "" {
		args = append(args, o.ExtraOptions)
	}
	localPyproject, err := modal.AbsLocal(pyproject)
	if err != nil {
		return img.fail(modal.Invalidf(method, "%v", err))
	}
	cmds := []string{"FROM base", installUvCopy(o.UvVersion), "COPY /.pyproject.toml /.uv/pyproject.toml"}
	ctx := []modal.ContextInput{{Local: localPyproject, Remote: "/.pyproject.toml"}}
	lock := installJoin(dir, "uv.lock")
	if _, err := os.Stat(lock); err == nil {
		localLock, err := modal.AbsLocal(lock)
		if err != nil {
			return img.fail(modal.Invalidf(method, "%v", err))
		}
		ctx = append(ctx, modal.ContextInput{Local: localLock, Remote: "/.uv.lock"})
		cmds = append(cmds, "COPY /.uv.lock /.uv/uv.lock")
		if !o.NoFrozen {
			args = append(args, "--frozen")
		}
	}
	cmds = append(cmds,
		"RUN /.uv/uv sync "+installStrip(strings.Join(args, " ")),
		"ENV PATH=/.uv/.venv/bin:$PATH",
	)
	return img.withInstall(&modal.Layer{Method: method, Commands: cmds, Context: ctx}, opts)
}

// PoetryOptions are poetry_install_from_file's keyword arguments. The zero
// value is Modal's default: the lock file next to the pyproject, poetry
// "latest" installed with pip, the new installer.
type PoetryOptions struct {
	PoetryLockfile string   // local lock file ("~" expanded); "" infers <pyproject dir>/poetry.lock
	IgnoreLockfile bool     // do not copy or use a lock file
	With           []string // --with a,b (Modal's with_)
	Without        []string // --without a,b
	Only           []string // --only a,b
	// PoetryVersion is the poetry to pip install: "" or "latest" (Modal's
	// default) installs unpinned `poetry` (builder 2025.06), any other value
	// `poetry==<value>`.
	PoetryVersion string
	// NoPoetryInstall is Modal's poetry_version=None: do not install poetry
	// (the image must have it). It cannot be combined with PoetryVersion.
	NoPoetryInstall bool
	OldInstaller    bool // RUN poetry config experimental.new-installer false
}

// PoetryInstallFromFile is modal.Image.poetry_install_from_file: installs the
// dependencies (not the root project) of the local poetry project whose
// pyproject.toml is poetryPyprojectToml ("~" expanded) into the system
// interpreter. Commands for builder 2025.06:
//
//	RUN python -m pip install poetry[==<version>]           (unless NoPoetryInstall)
//	RUN poetry config experimental.new-installer false      (if OldInstaller)
//	COPY /.poetry.lock /tmp/poetry/poetry.lock              (unless IgnoreLockfile)
//	COPY /.pyproject.toml /tmp/poetry/pyproject.toml
//	RUN cd /tmp/poetry && \
//	  poetry config virtualenvs.create false && \
//	poetry install --no-root [--with a,b] [--without c] [--only d] --compile
//
// The last three are Modal's three list elements, each one Dockerfile line;
// the first two end in a backslash followed by one space ("RUN cd /tmp/poetry
// && \\ " in Python), and the three make one continued RUN instruction. Group
// names are comma-joined unquoted.
//
// When PoetryLockfile is "" and IgnoreLockfile is false the lock file is
// <pyproject dir>/poetry.lock and must exist; otherwise the error is Modal's
// "poetry.lock not found at inferred location: <abs>. If a lockfile is not
// needed, `ignore_lockfile=True` can be used." (Modal raises NotFoundError at
// build time; snapbuild checks when called). Deliberate deviation: Modal
// infers the lock path from the pyproject path before expanding "~" (so
// "~/p/pyproject.toml" never finds its lock) and does not expand "~" in a
// given lock file path; snapbuild expands both. The files themselves are read
// when the image is built.
func (img Image) PoetryInstallFromFile(poetryPyprojectToml string, o PoetryOptions, opts ...StepOption) Image {
	const method = "poetry_install_from_file"
	if img.err != nil || len(img.layers) == 0 {
		return img.with(&modal.Layer{Method: method}, nil)
	}
	if err := oneLine(method, lineArg("poetry_pyproject_toml", poetryPyprojectToml), lineArg("poetry_lockfile", o.PoetryLockfile), lineArgs("with_", o.With), lineArgs("without", o.Without), lineArgs("only", o.Only), lineArg("poetry_version", o.PoetryVersion)); err != nil {
		return img.fail(err)
	}
	if poetryPyprojectToml == "" {
		return img.fail(modal.Invalidf(method, "poetry_pyproject_toml: empty path"))
	}
	if o.NoPoetryInstall && o.PoetryVersion != "" {
		return img.fail(modal.Invalidf(method, "PoetryVersion %q and NoPoetryInstall (poetry_version=None) contradict each other: give one", o.PoetryVersion))
	}
	pyproject, err := modal.AbsLocal(poetryPyprojectToml)
	if err != nil {
		return img.fail(modal.Invalidf(method, "%v", err))
	}
	cmds := []string{"FROM base"}
	if !o.NoPoetryInstall {
		spec := ""
		if o.PoetryVersion != "" && o.PoetryVersion != "latest" {
			spec = "==" + o.PoetryVersion
		}
		cmds = append(cmds, "RUN python -m pip install poetry"+spec)
	}
	if o.OldInstaller {
		cmds = append(cmds, "RUN poetry config experimental.new-installer false")
	}
	ctx := []modal.ContextInput{{Local: pyproject, Remote: "/.pyproject.toml"}}
	if !o.IgnoreLockfile {
		lock := o.PoetryLockfile
		if lock == "" {
			lock = filepath.Join(filepath.Dir(pyproject), "poetry.lock")
			if _, err := os.Stat(lock); err != nil {
				return img.fail(modal.Invalidf(method, "poetry.lock not found at inferred location: %s. If a lockfile is not needed, `ignore_lockfile=True` can be used.", lock))
			}
		}
		local, err := modal.AbsLocal(lock)
		if err != nil {
			return img.fail(modal.Invalidf(method, "%v", err))
		}
		ctx = append(ctx, modal.ContextInput{Local: local, Remote: "/.poetry.lock"})
		cmds = append(cmds, "COPY /.poetry.lock /tmp/poetry/poetry.lock")
	}
	install := "poetry install --no-root"
	if len(o.With) > 0 {
		install += " --with " + strings.Join(o.With, ",")
	}
	if len(o.Without) > 0 {
		install += " --without " + strings.Join(o.Without, ",")
	}
	if len(o.Only) > 0 {
		install += " --only " + strings.Join(o.Only, ",")
	}
	install += " --compile"
	cmds = append(cmds,
		"COPY /.pyproject.toml /tmp/poetry/pyproject.toml",
		"RUN cd /tmp/poetry && \\ ",
		"  poetry config virtualenvs.create false && \\ ",
		install,
	)
	return img.withInstall(&modal.Layer{Method: method, Commands: cmds, Context: ctx}, opts)
}

// MicromambaImage is the registry image Micromamba starts from (builder
// 2025.06).
const MicromambaImage = "mambaorg/micromamba:2.1.1-debian12-slim"

// installMicromambaSeries is what Modal's 2025.06 builder accepts (its message lists
// "3.14t" although free-threaded versions are rejected before).
var installMicromambaSeries = []string{"3.10", "3.11", "3.12", "3.13", "3.14", "3.14t"}

// Micromamba is modal.Image.micromamba(python_version): a conda base image
// with Python from conda-forge:
//
//	FROM mambaorg/micromamba:2.1.1-debian12-slim
//	SHELL ["/usr/local/bin/_dockerfile_shell.sh"]
//	ENV MAMBA_DOCKERFILE_ACTIVATE=1
//	RUN micromamba install -n base -y python=<python_version> pip -c conda-forge
//	CMD ["sleep", "172800"]
//
// The SHELL wrapper makes every later RUN run in the activated base
// environment. pythonVersion is used as given ("3.12", or a micro version such
// as "3.12.4"); "" means DefaultPythonVersion (Modal uses the local
// interpreter's version). Errors (Modal's text): "Invalid Python version:
// '<v>'", "Free threaded Python is not supported with Image.micromamba",
// "Unsupported Python version: '<v>'. When using the '2025.06' Image builder,
// Modal supports the following series: [...]."
//
// snapbuild works offline: the FROM reference is not pulled but resolved from
// the store, where the micromamba image must have been put under the name
// "mambaorg/micromamba:2.1.1-debian12-slim" beforehand (the layer's root is
// that name, as FromID's is an image name).
func Micromamba(pythonVersion string, opts ...StepOption) Image {
	const method = "micromamba"
	if pythonVersion == "" {
		pythonVersion = DefaultPythonVersion
	}
	if !pythonVersionRE().MatchString(pythonVersion) {
		return Image{err: modal.Invalidf(method, "Invalid Python version: %s", modal.PyRepr(pythonVersion))}
	}
	if strings.HasSuffix(pythonVersion, "t") {
		return Image{err: modal.Invalidf(method, "Free threaded Python is not supported with Image.micromamba")}
	}
	parts := strings.Split(pythonVersion, ".")
	if series := parts[0] + "." + parts[1]; !slices.Contains(installMicromambaSeries, series) {
		return Image{err: modal.Invalidf(method, "Unsupported Python version: %s. When using the '%s' Image builder, Modal supports the following series: %s.", modal.PyRepr(pythonVersion), BuilderVersion, installPyList(installMicromambaSeries))}
	}
	l := installApply(&modal.Layer{
		Method: method,
		Commands: []string{
			"FROM " + MicromambaImage,
			`SHELL ["/usr/local/bin/_dockerfile_shell.sh"]`,
			"ENV MAMBA_DOCKERFILE_ACTIVATE=1",
			"RUN micromamba install -n base -y python=" + pythonVersion + " pip -c conda-forge",
			`CMD ["sleep", "172800"]`,
		},
		Root: &modal.RootSpec{FromID: MicromambaImage, Pull: true},
	}, opts)
	if l.OptErr != nil {
		return Image{err: l.OptErr}
	}
	return Image{layers: []*modal.Layer{l}}
}

// MicromambaOptions are micromamba_install's keyword arguments.
type MicromambaOptions struct {
	SpecFile string   // local conda spec file ("~" expanded), copied to /<basename>; "" for none
	Channels []string // -c <channel> each, unquoted
}

// MicromambaInstall is modal.Image.micromamba_install: installs conda packages
// into the base environment. Packages keep their order (not
// sorted) and are quoted when needed; channels are not quoted:
//
//	COPY /<spec basename> /<spec basename>              (with a spec file, from the build context)
//	RUN micromamba install [<packages>][ -f /<spec basename> -n base][ -c <channel>...] --yes
//
// e.g. "RUN micromamba install torch=2.2 'transformers<4.23.0' -f /env.yml -n
// base -c conda-forge -c my-channel --yes", "RUN micromamba install -f
// /env.yml -n base --yes", "RUN micromamba install numpy --yes" (no -n base
// without a spec file, as in Modal). No packages and no spec file gives the
// same image. The spec file is read when the image is built.
func (img Image) MicromambaInstall(packages []string, o MicromambaOptions, opts ...StepOption) Image {
	const method = "micromamba_install"
	if img.err != nil || len(img.layers) == 0 {
		return img.with(&modal.Layer{Method: method}, nil)
	}
	if err := oneLine(method, lineArgs("packages", packages), lineArg("spec_file", o.SpecFile), lineArgs("channels", o.Channels)); err != nil {
		return img.fail(err)
	}
	if len(packages) == 0 && o.SpecFile == "" {
		return img
	}
	pkgArgs := shlexJoin(packages)
	var channels strings.Builder
	for _, c := range o.Channels {
		channels.WriteString(" -c " + c)
	}
	cmds := []string{"FROM base"}
	var ctx []modal.ContextInput
	fileArg := ""
	if o.SpecFile != "" {
		base := installBasename(o.SpecFile)
		if base == "" {
			return img.fail(modal.Invalidf(method, "spec_file: %q is not a file path", o.SpecFile))
		}
		local, err := modal.AbsLocal(o.SpecFile)
		if err != nil {
			return img.fail(modal.Invalidf(method, "%v", err))
		}
		remote := "/" + base
		if pkgArgs != "" {
			fileArg = " "
		}
		fileArg += "-f " + remote + " -n base"
		cmds = append(cmds, "COPY "+remote+" "+remote)
		ctx = append(ctx, modal.ContextInput{Local: local, Remote: remote})
	}
	cmds = append(cmds, "RUN micromamba install "+pkgArgs+fileArg+channels.String()+" --yes")
	return img.withInstall(&modal.Layer{Method: method, Commands: cmds, Context: ctx}, opts)
}

// installApply applies opts to l and returns it.
func installApply(l *modal.Layer, opts []StepOption) *modal.Layer {
	for _, o := range opts {
		o(l)
	}
	return l
}

// withInstall appends l after applying opts. The methods check their
// arguments for line breaks (oneLine); with refuses any line break that is
// left (layer.checkLines).
func (img Image) withInstall(l *modal.Layer, opts []StepOption) Image {
	return img.with(l, opts)
}

// installCheckPackages is Modal's _validate_packages for pip_install and
// uv_pip_install.
func installCheckPackages(method, name string, packages []string) error {
	for _, p := range packages {
		if strings.HasPrefix(p, "-") {
			return modal.Invalidf(method, "Package list for `%s` cannot contain other arguments; try the `extra_options` parameter instead.", name)
		}
	}
	return nil
}

// installReadTOML reads and decodes a local TOML file.
func installReadTOML(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("[Errno 2] No such file or directory: %s", modal.PyRepr(path))
	}
	if err != nil {
		return nil, err
	}
	doc := map[string]any{}
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, fmt.Errorf("%s is not valid TOML: %v", path, err)
	}
	return doc, nil
}

// installTOMLStrings returns v as a list of strings.
func installTOMLStrings(v any, key, path string) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s in %s must be a list of strings", key, path)
	}
	out := make([]string, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s in %s must be a list of strings, not hold %v", key, path, e)
		}
		out[i] = s
	}
	return out, nil
}

// installStrip is Python's str.strip() for the whitespace that can occur here.
func installStrip(s string) string { return strings.TrimSpace(s) }

// installBasename is Python's os.path.basename: the part after the last "/"
// ("" for a path ending in "/").
func installBasename(p string) string { return p[strings.LastIndex(p, "/")+1:] }

// installJoin is Python's os.path.join(dir, name) for a relative name: no
// cleaning, so "./" gives "./name".
func installJoin(dir, name string) string {
	if dir == "" || strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// installPyList renders strings as Python's repr of a list: ['a', 'b'].
func installPyList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = modal.PyRepr(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
