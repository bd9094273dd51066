package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/storage/pkg/unshare"
	"golang.org/x/sys/unix"
)

// EnvUserNS is the environment variable that selects how a rootless
// snapbuild maps IDs in its user namespace (a UserNSMode): "auto" (the
// default), "subids" or "single".
const EnvUserNS = "SNAPBUILD_USERNS"

// envSingleID marks a process that EnterNamespace moved into a single-ID
// user namespace.
const envSingleID = "_SNAPBUILD_USERNS_SINGLE"

// UserNSMode is how a rootless snapbuild maps user and group IDs in the user
// namespace it builds in. As real root the mode does not apply: the build
// runs in the host's IDs.
type UserNSMode string

const (
	// UserNSAuto maps the user's subordinate ranges (UserNSSubIDs) when
	// they can be used, and one ID (UserNSSingle) otherwise, with a
	// warning that says why. It is the default.
	UserNSAuto UserNSMode = "auto"
	// UserNSSubIDs maps 0 to the user and 1..65536 to the user's ranges in
	// /etc/subuid and /etc/subgid through newuidmap and newgidmap (podman's
	// and buildah's rootless mode). It needs a range of at least 65536 IDs,
	// the setuid newuidmap and newgidmap (Debian package uidmap) and a
	// process allowed to gain privileges (no no_new_privs, which
	// Kubernetes' allowPrivilegeEscalation: false sets).
	UserNSSubIDs UserNSMode = "subids"
	// UserNSSingle maps only the user's own uid and gid, to 0, which an
	// unprivileged process may write itself ("0 UID 1" in uid_map,
	// setgroups denied, "0 GID 1" in gid_map): podman's rootless mode
	// without subordinate IDs (ignore_chown_errors), BuildKit's rootless
	// mode with one ID. It works in a container without capabilities and
	// without /etc/subuid. Its limits: files of a layer owned by other IDs
	// are unpacked as 0 (their owner is squashed, as podman does with
	// ignore_chown_errors), and a step that needs another ID (chown or
	// chgrp to it, USER of another user, su to one) fails, with an error
	// naming the mode and the fix. apt runs with APT::Sandbox::User
	// "root" in this mode, so it does not drop to its _apt user.
	UserNSSingle UserNSMode = "single"
)

// ParseUserNSMode returns the mode named s; "" is UserNSAuto.
func ParseUserNSMode(s string) (UserNSMode, error) {
	switch m := UserNSMode(s); m {
	case "":
		return UserNSAuto, nil
	case UserNSAuto, UserNSSubIDs, UserNSSingle:
		return m, nil
	}
	return "", fmt.Errorf("%s=%q: unknown user namespace mode: use %q (the default: subordinate IDs when the user has them, else one ID), %q or %q",
		EnvUserNS, s, UserNSAuto, UserNSSubIDs, UserNSSingle)
}

// SingleID reports whether the process runs in the single-ID user namespace
// that EnterNamespace made (UserNSSingle): only 0 is mapped, to the
// invoking user.
func SingleID() bool {
	return Entered() && os.Getenv(envSingleID) != ""
}

// ErrSingleID marks the error of a step that needed an ID the single-ID
// user namespace does not map (UserNSSingle).
var ErrSingleID = errors.New("the ID is not mapped in single-ID mode")

// SingleIDError returns the one error of a step that needs an ID other than
// 0 in single-ID mode: what is refused (what), why, and the fix
// (SingleIDFix). It wraps ErrSingleID.
func SingleIDError(what string) error {
	explicit := UserNSMode(os.Getenv(EnvUserNS)) == UserNSSingle
	why := "no usable subordinate ID range"
	if explicit {
		why = EnvUserNS + "=single"
	}
	return fmt.Errorf("%s: %w: snapbuild runs in single-ID mode (%s), whose user namespace maps only ID 0 (to uid %d): a step or a run cannot use another user or group ID; %s",
		what, ErrSingleID, why, unshare.GetRootlessUID(), SingleIDFix())
}

// SingleIDFix says how to leave single-ID mode: when SNAPBUILD_USERNS=single
// chose it and the user's subordinate ID range is usable, unset the
// variable (or set it to auto or subids); otherwise give the user a range
// (usermod --add-subuids as root), then build with auto or subids.
func SingleIDFix() string {
	uid := unshare.GetRootlessUID()
	name := "USER"
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		name = u.Username
	}
	explicit := UserNSMode(os.Getenv(EnvUserNS)) == UserNSSingle
	var subErr error
	if explicit {
		subErr = subIDsUsable()
	}
	return singleIDFix(explicit, subErr, name, freeSubIDs("/etc/subuid", "/etc/subgid"))
}

// singleIDFix is SingleIDFix for the user named name: explicit when
// SNAPBUILD_USERNS=single chose the mode, subErr nil when the user's
// subordinate IDs are usable, lo the start of a free range of subordinate
// IDs.
func singleIDFix(explicit bool, subErr error, name string, lo int) string {
	if explicit && subErr == nil {
		return fmt.Sprintf("your subordinate ID range is usable: unset %s (or set it to auto or subids) to use it", EnvUserNS)
	}
	return fmt.Sprintf("give the user a subordinate range (`usermod --add-subuids %d-%d --add-subgids %d-%d %s` as root, with the uidmap package and a process allowed to gain privileges) and use %s=auto or subids",
		lo, lo+65535, lo, lo+65535, name, EnvUserNS)
}

// userNSChoice is the mapping EnterNamespace makes.
type userNSChoice struct {
	single bool
	// warn is the warning printed once when single was chosen by
	// UserNSAuto: why the subordinate IDs cannot be used.
	warn string
}

// chooseUserNS picks the mapping for mode, given whether the subordinate
// IDs can be used (subErr: nil when they can, else why not). An explicit
// UserNSSubIDs with unusable ranges is an error naming the fix.
func chooseUserNS(mode UserNSMode, subErr error) (userNSChoice, error) {
	switch mode {
	case UserNSSingle:
		return userNSChoice{single: true}, nil
	case UserNSSubIDs:
		if subErr != nil {
			return userNSChoice{}, subErr
		}
		return userNSChoice{}, nil
	case UserNSAuto, "":
		if subErr != nil {
			return userNSChoice{single: true, warn: subErr.Error()}, nil
		}
		return userNSChoice{}, nil
	}
	_, err := ParseUserNSMode(string(mode))
	return userNSChoice{}, err
}

// subIDsUsable reports why the subordinate ID mapping cannot be made: nil
// when newuidmap and newgidmap exist, the user has a range of 65536 and the
// process may gain privileges (newuidmap is setuid; no_new_privs makes
// the setuid bit void).
func subIDsUsable() error {
	if err := checkSubIDs(); err != nil {
		return err
	}
	if noNewPrivs() {
		return errors.New("the process runs with no_new_privs (Kubernetes' allowPrivilegeEscalation: false, podman's --security-opt no-new-privileges), so the setuid newuidmap and newgidmap cannot map the subordinate IDs")
	}
	return nil
}

// noNewPrivs reports whether the process has no_new_privs set.
func noNewPrivs() bool {
	v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	return err == nil && v == 1
}

// singleIDWarning is what a command that enters the namespace in single-ID
// mode prints once (a build, a run, a prune).
func singleIDWarning(why string) string {
	msg := fmt.Sprintf("snapbuild: warning: single-ID mode (%s): the user namespace maps only uid %d and gid %d, to 0; files of other owners in a layer are unpacked as 0, and a step that needs another ID fails",
		EnvUserNS, os.Getuid(), os.Getgid())
	if why != "" {
		msg += "; subordinate IDs unusable: " + why
	}
	return msg
}

// reexecSingleID re-executes the program in a new user and mount namespace
// that maps only the caller's uid and gid to 0, written by the caller
// itself (no newuidmap), and returns its exit status.
func reexecSingleID() int {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	cmd := unshare.Command(append([]string{exe}, os.Args[1:]...)...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), unshare.UsernsEnvName+"=1", envSingleID+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.UnshareFlags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
	cmd.UidMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getuid()), Size: 1}}
	cmd.GidMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getgid()), Size: 1}}
	// An unprivileged process may write its own gid_map only once
	// setgroups is denied.
	cmd.GidMappingsEnableSetgroups = false
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return runChild(cmd.Cmd, cmd.Start, "cannot run rootless: cannot create a user namespace (the kernel must allow unprivileged user namespaces, user.max_user_namespaces > 0, and a container's seccomp profile must allow unshare and mount: podman's default does, Kubernetes' RuntimeDefault does not without CAP_SYS_ADMIN; see README \"CI runners\")")
}
