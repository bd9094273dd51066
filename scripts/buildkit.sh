#!/bin/sh
# scripts/buildkit.sh builds buildkitd and buildctl, for the tests of
# `snapbuild build --builder`, from the BuildKit module go.mod requires,
# through the Go module proxy only, once: into
#   ${SNAPBUILD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/snapbuild/tools}/buildkit-VERSION
# (a directory CI keeps between runs), and prints that directory. Present
# binaries are not built again. `go install ...@VERSION` cannot build them:
# BuildKit's go.mod has exclude directives, which go install refuses, so
# they are built inside the downloaded module, with its own go.sum.
set -eu
snapbuild_dir=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
version=$(sed -n 's#^[[:space:]]*github.com/moby/buildkit \(v[^ ]*\).*#\1#p' "$snapbuild_dir/go.mod" | head -n 1)
if [ -z "$version" ]; then
	echo "buildkit.sh: go.mod requires no github.com/moby/buildkit" >&2
	exit 1
fi
dir=${SNAPBUILD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/snapbuild/tools}/buildkit-$version
if [ -x "$dir/buildkitd" ] && [ -x "$dir/buildctl" ]; then
	echo "$dir"
	exit 0
fi
go=$snapbuild_dir/scripts/go
mod=$(cd "$snapbuild_dir" && "$go" mod download -json "github.com/moby/buildkit@$version" | sed -n 's#^[[:space:]]*"Dir": "\(.*\)",*$#\1#p')
if [ -z "$mod" ]; then
	echo "buildkit.sh: go mod download github.com/moby/buildkit@$version gave no directory" >&2
	exit 1
fi
mkdir -p "$dir"
echo "buildkit.sh: building buildkitd and buildctl $version into $dir (a few minutes, once)" >&2
(cd "$mod" && GOFLAGS=-mod=readonly CGO_ENABLED=1 "$go" build -o "$dir/" ./cmd/buildkitd ./cmd/buildctl) >&2
echo "$dir"
