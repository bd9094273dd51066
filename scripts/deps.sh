#!/bin/sh
# Installs the Debian packages snapbuild and its tests use, if any is missing.
# As root it runs apt-get; otherwise it uses sudo when available, or says what
# to install. It also checks Go and, for users, the subordinate ID ranges.
set -eu

PKGS="mmdebstrap uidmap skopeo podman buildah umoci runc zstd libcap2-bin gcc python3 python3-cloudpickle docker-registry"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "deps: installing:$missing"
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo apt-get update -qq
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
	else
		echo "deps: missing Debian packages:$missing" >&2
		echo "deps: run as root: apt-get install -y$missing" >&2
		exit 1
	fi
fi

GO=${GO:-go}
if ! command -v "$GO" >/dev/null; then
	echo "deps: Go 1.26 or newer is needed (https://go.dev/dl/, or /usr/local/go/bin on PATH)" >&2
	exit 1
fi
v=$("$GO" env GOVERSION | sed 's/^go//')
case "$v" in
	1.2[6-9]*|1.[3-9]*) ;;
	*) echo "deps: Go $v is too old: snapbuild needs Go 1.26 or newer" >&2; exit 1 ;;
esac

if [ "$(id -u)" != 0 ]; then
	u=$(id -un)
	if ! grep -q "^$u:" /etc/subuid 2>/dev/null || ! grep -q "^$u:" /etc/subgid 2>/dev/null; then
		echo "deps: user $u has no subordinate ID range; as root run:" >&2
		echo "  usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $u" >&2
		exit 1
	fi
fi
