#!/bin/sh
# Installs what snapbuild and its tests need, if any is missing, on Debian:
#
#   - the Debian packages below;
#   - Go: when no Go at go.mod's `go` version (e.g. 1.26.8) or newer is
#     found (scripts/go says where it looks), and no Go 1.21 or newer that
#     can fetch it, it installs the newest golang-1.N-go of Debian's
#     backports (bookworm-backports on Debian 12: golang-1.23-go), adding
#     that suite to APT's sources when missing; then scripts/go runs that Go
#     with GOTOOLCHAIN=goVERSION+auto, which fetches go.mod's exact toolchain
#     through the Go module proxy (here, once, so that the build after it
#     does not look hung);
#   - buildkitd and buildctl at go.mod's BuildKit version, built once from
#     the Go module proxy into a cache directory (scripts/buildkit.sh);
#   - for an ordinary user, a subordinate UID and GID range (/etc/subuid,
#     /etc/subgid): when the user has none, it prints the usermod command
#     that adds a range no other user has, and fails.
#
# As root it runs apt-get; otherwise it uses sudo when that needs no
# password, or says what to run as root.
#
# Overridable for tests: SNAPBUILD_APT_DIR (/etc/apt), SNAPBUILD_OS_RELEASE
# (/etc/os-release), SNAPBUILD_SUBUID (/etc/subuid), SNAPBUILD_SUBGID
# (/etc/subgid), and those scripts/lib.sh names.
set -eu
snapbuild_dir=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
. "$snapbuild_dir/scripts/lib.sh"

apt_dir=${SNAPBUILD_APT_DIR:-/etc/apt}
subuid=${SNAPBUILD_SUBUID:-/etc/subuid}
subgid=${SNAPBUILD_SUBGID:-/etc/subgid}

PKGS="mmdebstrap uidmap slirp4netns skopeo podman buildah umoci runc zstd xz-utils libcap2-bin libarchive-tools gcc libseccomp-dev pkg-config python3 python3-cloudpickle docker-registry docker.io strace"

# can_root succeeds when as_root can run commands.
can_root() {
	[ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }
}

# as_root runs a command as root: directly, or through sudo.
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	else
		sudo "$@"
	fi
}

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "deps: installing:$missing"
	if ! can_root; then
		echo "deps: missing Debian packages:$missing" >&2
		echo "deps: run as root: apt-get install -y$missing" >&2
		exit 1
	fi
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi

want=$(gomod_go)
if ! find_go "$want" >/dev/null && ! newest_go >/dev/null; then
	codename=$(sed -n 's/^VERSION_CODENAME=//p' "${SNAPBUILD_OS_RELEASE:-/etc/os-release}" | tr -d '"')
	suite=${codename:-bookworm}-backports
	source_line="deb http://deb.debian.org/debian $suite main"
	source_file=$apt_dir/sources.list.d/$suite.list
	if ! can_root; then
		echo "deps: Go $want or newer is needed; as root run:" >&2
		echo "  echo '$source_line' > $source_file" >&2
		echo "  apt-get update && apt-get install -y -t $suite golang-1.23-go" >&2
		echo "deps: (or put Go $want on PATH)" >&2
		exit 1
	fi
	if ! grep -qs -- "$suite" "$apt_dir/sources.list" "$apt_dir"/sources.list.d/*; then
		echo "deps: adding $suite to APT's sources ($source_file)"
		echo "$source_line" | as_root tee "$source_file" >/dev/null
	fi
	as_root apt-get update -qq
	# The newest golang-1.N-go known to APT, if it is 1.21 or newer (able to
	# fetch another toolchain).
	best=
	for v in $(apt-cache pkgnames golang-1. | sed -n 's/^golang-\(1\.[0-9]*\)-go$/\1/p'); do
		if version_ge "$v" 1.21 && { [ -z "$best" ] || ! version_ge "$best" "$v"; }; then
			best=$v
		fi
	done
	if [ -z "$best" ]; then
		echo "deps: $suite offers no golang-1.N-go package of Go 1.21 or newer: install Go $want (https://go.dev/dl/) and put it on PATH" >&2
		exit 1
	fi
	echo "deps: installing golang-$best-go from $suite"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t "$suite" "golang-$best-go"
	if ! newest_go >/dev/null; then
		echo "deps: golang-$best-go is installed but no Go 1.21 or newer is found: put Go $want on PATH" >&2
		exit 1
	fi
fi
if ! find_go "$want" >/dev/null; then
	g=$(newest_go)
	modcache=$(cd / && GOTOOLCHAIN=local "$g" env GOMODCACHE 2>/dev/null || true)
	if [ -n "$modcache" ] && ls -d "$modcache/golang.org/toolchain@v0.0.1-go$want".* >/dev/null 2>&1; then
		echo "deps: using Go $want (go.mod's toolchain), fetched earlier into $modcache, through $g"
	else
		echo "deps: fetching Go $want (go.mod's toolchain) with $g through the Go module proxy"
	fi
	"$snapbuild_dir/scripts/go" version
fi

# buildkitd and buildctl, for the tests of build --builder: built from
# go.mod's BuildKit module, once, into a cache directory (scripts/buildkit.sh).
# Only those tests need them: a failure is a warning here, and theirs.
if ! "$snapbuild_dir/scripts/buildkit.sh" >/dev/null; then
	echo "deps: warning: buildkitd and buildctl could not be built (scripts/buildkit.sh): the build --builder tests will fail" >&2
fi

# --network private runs slirp4netns, which opens /dev/net/tun: rootless, as
# the user (Debian's udev rules make it mode 0666).
if [ "$(id -u)" != 0 ] && [ -c /dev/net/tun ] && ! { : <>/dev/net/tun; } 2>/dev/null; then
	echo "deps: /dev/net/tun is not readable and writable by $(id -un): builds with --network private will fail; as root run:" >&2
	echo "  chmod 0666 /dev/net/tun" >&2
fi

if [ "$(id -u)" != 0 ]; then
	u=$(id -un)
	cmd=$(subid_command "$u" "$subuid" "$subgid")
	if [ -n "$cmd" ]; then
		echo "deps: user $u has no subordinate ID range in $subuid or $subgid; as root run:" >&2
		echo "  $cmd" >&2
		echo "deps: (that range is past every range $subuid and $subgid give: no other user's containers use its IDs)" >&2
		exit 1
	fi
fi
