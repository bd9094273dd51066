package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/sirupsen/logrus"
	_ "github.com/opencontainers/runc/libcontainer/nsenter" // runc's C constructor for "init"
	"go.podman.io/storage/pkg/reexec"
	"go.podman.io/storage/pkg/unshare"
	"golang.org/x/sys/unix"

	_ "github.com/opencontainers/cgroups/devices" // device rules on cgroup v1 as real root
)

// envMountNS marks a process that Init already moved into a private mount
// namespace (the real-root case).
const envMountNS = "_SNAPBUILD_MOUNTNS"

// Init handles the roles a re-executed snapbuild process plays. It must be
// the first call in main, before any goroutine or flag parsing:
//
//   - when started as "<exe> init" (libcontainer's container init), it becomes
//     the container process and never returns;
//   - when started for a registered reexec handler (go.podman.io/storage), it
//     runs that handler and exits;
//   - otherwise it returns, and the process goes on where it was started:
//     in the host's namespaces, or in the namespace EnterNamespace made for
//     it (Entered), where it also makes its mounts private.
//
// Init enters no namespace itself: a process that only reads and writes the
// store's files (listing images, a fully cached build) runs as one process,
// and one that must mount a snapshot or run a step calls EnterNamespace.
// Init sets the umask to 022, so that files made in images (WORKDIR, COPY
// parents) and in the store get Docker's modes whatever the invoking
// shell's umask.
func Init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		// This runs in the container's init process (runc's stage 2, made
		// with CLONE_PARENT, so its parent is the builder). libcontainer's
		// ParentDeathSignal only reaches the stage-0 process, so without
		// this a killed builder would leave the step running. libcontainer
		// keeps the signal across its credential changes.
		_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
		libcontainer.Init() // never returns
	}
	if reexec.Init() {
		os.Exit(0)
	}
	unix.Umask(0o022)
	// libcontainer forwards its container init's log lines, and logs its
	// own warnings, through logrus' standard logger, whose text on
	// standard error would be interleaved with snapbuild's progress; what
	// fails also comes back as the error Run returns, which snapbuild
	// reports.
	logrus.SetOutput(io.Discard)
	if Entered() {
		makeMountsPrivate()
	}
}

// Entered reports whether the process runs in the namespace EnterNamespace
// makes: a user namespace (mapped from /etc/subuid and /etc/subgid, or
// from the user's own ID only: SingleID), in which it is root (rootless),
// or a private mount namespace (real root). Only there may it mount
// snapshots and run sandboxes.
func Entered() bool {
	return os.Geteuid() == 0 && (os.Getenv(unshare.UsernsEnvName) != "" || os.Getenv(envMountNS) != "")
}

// EnterNamespace moves the program into the namespace it builds in, as
// buildah and podman do, unless it is there already (Entered), in which case
// it returns at once. Otherwise it re-executes the program with the same
// arguments and environment, plus a marker the new process finds with
// Entered:
//
//   - when not real root, in a user namespace mapped as the variable
//     SNAPBUILD_USERNS (EnvUserNS) says: by default from /etc/subuid and
//     /etc/subgid (newuidmap and newgidmap, as podman's rootless mode,
//     UserNSSubIDs) when the user has a usable range, else with the user's
//     own ID only (UserNSSingle), with a warning on standard error that
//     says why and what single-ID mode cannot do;
//   - when real root, in a private mount namespace, so that overlay mounts
//     vanish with the process.
//
// The calling process then waits for the new one, forwarding SIGINT,
// SIGTERM and SIGHUP, and exits with its status (128+N when killed by
// signal N): EnterNamespace does not return there, and deferred calls do
// not run, so a caller closes what it opened first. The re-executed program
// starts again from main, calls Init, and reaches EnterNamespace again,
// which then returns: whatever it did before this call, it does twice.
//
// EnterNamespace exits with status 125 and a message on standard error when
// the namespace cannot be made (SNAPBUILD_USERNS=subids without a usable
// subordinate ID range, a kernel or seccomp profile that refuses user
// namespaces).
func EnterNamespace() {
	if Entered() {
		return
	}
	if os.Geteuid() != 0 {
		choice, err := userNSFor(os.Getenv(EnvUserNS))
		if err != nil {
			fmt.Fprintf(os.Stderr, "snapbuild: %v\n", err)
			os.Exit(125)
		}
		if choice.single {
			fmt.Fprintln(os.Stderr, singleIDWarning(choice.warn))
			os.Exit(reexecSingleID())
		}
		unshare.MaybeReexecUsingUserNamespace(false) // exits with the child's status
		fmt.Fprintln(os.Stderr, "snapbuild: cannot run rootless: the user namespace was not entered")
		os.Exit(125)
	}
	os.Exit(reexecInMountNS())
}

// CheckNamespace reports whether EnterNamespace can succeed: nil as root or
// once entered; rootless, nil when the mode SNAPBUILD_USERNS names can be
// set up, else an error saying what is missing (with subids: newuidmap and
// newgidmap, a subordinate ID range of at least 65536 in /etc/subuid and
// /etc/subgid, a process allowed to gain privileges) and how to add it. A command that can do without the
// namespace (inspect without probing an image) asks it first.
func CheckNamespace() error {
	if Entered() || os.Geteuid() == 0 {
		return nil
	}
	_, err := userNSFor(os.Getenv(EnvUserNS))
	return err
}

// userNSFor is the mapping EnterNamespace makes for a rootless user with
// the mode named mode (SNAPBUILD_USERNS), or why none can be made.
func userNSFor(mode string) (userNSChoice, error) {
	m, err := ParseUserNSMode(mode)
	if err != nil {
		return userNSChoice{}, err
	}
	var subErr error
	if m != UserNSSingle {
		subErr = subIDsUsable()
	}
	c, err := chooseUserNS(m, subErr)
	if err != nil {
		return c, fmt.Errorf("cannot run rootless: %w (or set %s=single to map only your own ID, with the limits README \"Rootless without subordinate IDs\" lists)", err, EnvUserNS)
	}
	return c, nil
}

// InUserNamespace reports whether the process runs in a user namespace, that is
// whether overlay mounts need the userxattr option and whiteouts/opaque markers
// use the user.overlay.* xattrs.
func InUserNamespace() bool {
	return unshare.IsRootless() || os.Getenv(unshare.UsernsEnvName) != ""
}

// makeMountsPrivate keeps the mounts of the process that builds from
// propagating back to the host's namespace.
func makeMountsPrivate() {
	_ = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
}

func reexecInMountNS() int {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envMountNS+"=1")
	// Go makes the new namespace's mounts private when it unshares CLONE_NEWNS.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	return runChild(cmd, cmd.Start, "cannot enter a private mount namespace")
}

// runChild starts cmd with start (cmd.Start, or that of the wrapper that
// writes the child's ID maps), forwards SIGINT, SIGTERM, SIGHUP and
// SIGQUIT to it, waits, and returns its exit status: 128+N when signal N
// killed it, 125 when it could not start (the error, after what, on
// stderr) or its status is unknown.
func runChild(cmd *exec.Cmd, start func() error, what string) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	defer signal.Stop(sigs)
	if err := start(); err != nil {
		fmt.Fprintf(os.Stderr, "snapbuild: %s: %v\n", what, err)
		return 125
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
	if err != nil {
		return 125
	}
	return 0
}

// checkSubIDs gives the user a clear message before the user namespace setup
// fails with something obscure.
func checkSubIDs() error {
	// The invoking user, also from inside a user namespace (where the
	// process is uid 0).
	u, err := user.LookupId(strconv.Itoa(unshare.GetRootlessUID()))
	if err != nil {
		return fmt.Errorf("looking up the current user: %w", err)
	}
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install the uidmap package (apt-get install uidmap)", tool)
		}
	}
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		n, err := subIDCount(file, u.Username, u.Uid)
		if err != nil {
			return err
		}
		if n < 65536 {
			lo := freeSubIDs("/etc/subuid", "/etc/subgid")
			return fmt.Errorf("%s gives user %s %d subordinate IDs, need at least 65536: run `usermod --add-subuids %d-%d --add-subgids %d-%d %s` as root (a range no other user has)",
				file, u.Username, n, lo, lo+65535, lo, lo+65535, u.Username)
		}
	}
	return nil
}

// freeSubIDs is the start of a range of 65536 subordinate IDs that no entry
// of files (/etc/subuid, /etc/subgid) overlaps: 100000 (useradd's
// SUB_UID_MIN) plus the first multiple of 65536 past every range they give.
func freeSubIDs(files ...string) int {
	lo := 100000
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			parts := strings.Split(strings.TrimSpace(line), ":")
			if len(parts) != 3 {
				continue
			}
			start, err1 := strconv.Atoi(parts[1])
			n, err2 := strconv.Atoi(parts[2])
			if err1 == nil && err2 == nil && start+n > lo {
				lo = start + n
			}
		}
	}
	if r := (lo - 100000) % 65536; r != 0 {
		lo += 65536 - r
	}
	return lo
}

func subIDCount(file, name, uid string) (int, error) {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	total := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(parts) != 3 || (parts[0] != name && parts[0] != uid) {
			continue
		}
		if n, err := strconv.Atoi(parts[2]); err == nil {
			total += n
		}
	}
	return total, sc.Err()
}
