package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/buildkit/solver/pb"

	"github.com/snapbuild/snapbuild/internal/atomicfile"
	"github.com/snapbuild/snapbuild/internal/worker"
)

// packageCacheRoot is where the package caches are mounted in a step: a
// directory no image has, which the worker keeps out of the layer.
const packageCacheRoot = "/.snapbuild-cache"

// aptCacheConf is apt's configuration for the apt cache (APT_CONFIG, read
// before /etc/apt/apt.conf.d): the downloaded packages go to the cache's
// archives/ and stay there. Pointing Dir::Cache::Archives away from
// /var/cache/apt/archives leaves the image's own cache directory as it is
// and out of reach of Docker's docker-clean hook (DPkg::Post-Invoke "rm -f
// /var/cache/apt/archives/*.deb"), which images built from Docker's Debian
// carry; apt-get keeps what it downloads by default, and the Keep options
// say so for the apt command too (BuildKit's recipe for
// RUN --mount=type=cache,target=/var/cache/apt).
const aptCacheConf = `// Written by snapbuild: the package cache of apt_install steps.
Dir::Cache::Archives "` + packageCacheRoot + `/apt/archives";
APT::Keep-Downloaded-Packages "true";
Binary::apt::APT::Keep-Downloaded-Packages "true";
`

// The package caches, by tool.
var (
	aptCache = worker.PackageCache{
		Name: "apt", Dest: packageCacheRoot + "/apt", Locked: true,
		Env:     []string{"APT_CONFIG=" + packageCacheRoot + "/apt/apt.conf"},
		Prepare: prepareAptCache,
	}
	pipCache = worker.PackageCache{
		Name: "pip", Dest: packageCacheRoot + "/pip",
		Env: []string{"PIP_CACHE_DIR=" + packageCacheRoot + "/pip"},
	}
	// uv links installed files from its cache by default; across the
	// mount that fails and uv copies with a warning, so copy outright.
	uvCache = worker.PackageCache{
		Name: "uv", Dest: packageCacheRoot + "/uv",
		Env: []string{"UV_CACHE_DIR=" + packageCacheRoot + "/uv", "UV_LINK_MODE=copy"},
	}
	poetryCache = worker.PackageCache{
		Name: "poetry", Dest: packageCacheRoot + "/poetry", Locked: true,
		Env: []string{"POETRY_CACHE_DIR=" + packageCacheRoot + "/poetry"},
	}
	micromambaCache = worker.PackageCache{
		Name: "micromamba", Dest: packageCacheRoot + "/micromamba", Locked: true,
		Env: []string{"CONDA_PKGS_DIRS=" + packageCacheRoot + "/micromamba"},
	}
)

// methodCaches are the package caches each Modal installer method's steps
// get: the tools its Modal text runs. Other methods get none: run_commands
// and Dockerfile RUN steps (dockerfile_commands, from_dockerfile) run what
// the user wrote, whose caches are the user's (RUN --mount=type=cache), as
// in Docker and BuildKit; run_function steps run the user's function.
var methodCaches = map[string][]worker.PackageCache{
	"apt_install":                   {aptCache},
	"pip_install":                   {pipCache},
	"pip_install_from_requirements": {pipCache},
	"pip_install_from_pyproject":    {pipCache},
	"pip_install_private_repos":     {aptCache, pipCache},
	"uv_pip_install":                {uvCache},
	"uv_sync":                       {uvCache},
	"poetry_install_from_file":      {pipCache, poetryCache},
	"micromamba":                    {micromambaCache},
	"micromamba_install":            {micromambaCache},
}

// packageCaches returns the package caches of the layer's steps, for
// worker.WithPackageCaches: its method's (methodCaches), none when the
// engine's are off (WithoutPackageCaches).
func (x *llbLayer) packageCaches(context.Context, *pb.ExecOp) []worker.PackageCache {
	if x.b.noPackageCaches {
		return nil
	}
	return methodCaches[x.l.Method]
}

// prepareAptCache writes apt's configuration into the apt cache dir and
// empties archives/partial/, where a killed apt leaves its downloads half
// done (the cache is locked: no apt is using it).
func prepareAptCache(dir string) error {
	conf := filepath.Join(dir, "apt.conf")
	if b, err := os.ReadFile(conf); err != nil || string(b) != aptCacheConf {
		if err := atomicfile.Write(conf, []byte(aptCacheConf), 0o644); err != nil {
			return fmt.Errorf("writing apt's configuration: %w", err)
		}
	}
	partial := filepath.Join(dir, "archives", "partial")
	if err := os.RemoveAll(partial); err != nil {
		return fmt.Errorf("emptying %s: %w", partial, err)
	}
	// apt makes archives/ and archives/partial/ itself (partial owned by
	// its _apt user).
	return os.MkdirAll(filepath.Join(dir, "archives"), 0o755)
}
