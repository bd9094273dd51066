# Shell functions shared by scripts/deps.sh and scripts/go (sourced, POSIX sh).
#
# Overridable for tests:
#   snapbuild_dir         the checkout (default: the parent of $0's directory)
#   SNAPBUILD_GOMOD       go.mod to read (default: the one beside scripts/)
#   SNAPBUILD_GO_SEARCH   Go binaries to look at besides `go` on PATH
#                         (default: /usr/local/go/bin/go /usr/lib/go-1.*/bin/go)

snapbuild_dir=${snapbuild_dir:-$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)}
gomod=${SNAPBUILD_GOMOD:-$snapbuild_dir/go.mod}
go_search=${SNAPBUILD_GO_SEARCH-/usr/local/go/bin/go /usr/lib/go-1.*/bin/go}

# gomod_go prints the version on go.mod's `go` line, e.g. 1.26.8.
gomod_go() {
	v=$(sed -n 's/^go[[:space:]]\{1,\}\([0-9][0-9.]*\).*/\1/p' "$gomod" | head -n 1)
	if [ -z "$v" ]; then
		echo "snapbuild: $gomod has no 'go' line" >&2
		return 1
	fi
	echo "$v"
}

# version_ge A B succeeds when Go version A is B or newer. Versions are
# compared number by number (1.26.10 > 1.26.8 > 1.26 = 1.26.0, 1.100 > 1.26);
# a pre-release suffix is cut (1.27rc1 counts as 1.27.0, 1.26rc1 as 1.26.0).
version_ge() {
	a=$(echo "$1" | sed 's/^go//; s/[^0-9.].*//')
	b=$(echo "$2" | sed 's/^go//; s/[^0-9.].*//')
	while [ -n "$a$b" ]; do
		x=${a%%.*} y=${b%%.*}
		x=${x:-0} y=${y:-0}
		[ "$x" -gt "$y" ] && return 0
		[ "$x" -lt "$y" ] && return 1
		case $a in *.*) a=${a#*.} ;; *) a= ;; esac
		case $b in *.*) b=${b#*.} ;; *) b= ;; esac
	done
	return 0
}

# go_version GO prints the version of the Go binary GO (1.23.4), without
# letting it switch toolchains.
go_version() {
	(cd / && GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null) | sed -n 's/^go\([0-9][0-9.a-z]*\).*/\1/p'
}

# go_candidates prints the Go binaries found: `go` on PATH, then
# $go_search (newest /usr/lib/go-1.N last, as the glob sorts 1.19 < 1.23).
go_candidates() {
	command -v go 2>/dev/null || true
	for g in $go_search; do
		[ -x "$g" ] && echo "$g"
	done
}

# find_go WANT prints the first Go binary of go_candidates at version WANT
# or newer, and fails when there is none.
find_go() {
	for g in $(go_candidates); do
		v=$(go_version "$g")
		if [ -n "$v" ] && version_ge "$v" "$1"; then
			echo "$g"
			return 0
		fi
	done
	return 1
}

# newest_go prints the newest Go binary of go_candidates that can fetch
# another toolchain itself (Go 1.21 or newer: GOTOOLCHAIN), and fails when
# there is none.
newest_go() {
	best= bestv=
	for g in $(go_candidates); do
		v=$(go_version "$g")
		if [ -n "$v" ] && version_ge "$v" 1.21 && { [ -z "$bestv" ] || ! version_ge "$bestv" "$v"; }; then
			best=$g bestv=$v
		fi
	done
	[ -n "$best" ] && echo "$best"
}

# free_subid_start SUBUID SUBGID prints the first ID of a 65536-ID range
# that no line of either file (NAME:START:COUNT) overlaps: the highest end
# in the files (at least 100000, useradd's SUB_UID_MIN), rounded up to a
# multiple of 65536. Missing files count as empty.
free_subid_start() {
	cat "$1" "$2" 2>/dev/null | awk -F: '
		$2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { if ($2 + $3 > end) end = $2 + $3 }
		END {
			if (end < 100000) end = 100000
			end += 65535 # rounded up to a multiple of 65536
			printf "%.0f\n", end - end % 65536
		}'
}

# has_subid FILE USER succeeds when FILE gives USER (by name or by UID) a range.
has_subid() {
	grep -q "^$2:" "$1" 2>/dev/null && return 0
	uid=$(id -u "$2" 2>/dev/null) && [ -n "$uid" ] && grep -q "^$uid:" "$1" 2>/dev/null
}

# subid_command USER SUBUID SUBGID prints the usermod command that gives USER
# a free range (free_subid_start) in each file where USER has none, and
# nothing when USER has a range in both.
subid_command() {
	flags=
	has_subid "$2" "$1" || flags=--add-subuids
	has_subid "$3" "$1" || flags="$flags --add-subgids"
	[ -n "$flags" ] || return 0
	first=$(free_subid_start "$2" "$3")
	last=$(awk -v a="$first" 'BEGIN { printf "%.0f", a + 65535 }')
	cmd=usermod
	for f in $flags; do
		cmd="$cmd $f $first-$last"
	done
	echo "$cmd $1"
}
