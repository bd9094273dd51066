package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter" // runc's C constructor for "init"
	"go.podman.io/storage/pkg/reexec"
	"go.podman.io/storage/pkg/unshare"
	"golang.org/x/sys/unix"

	_ "github.com/opencontainers/cgroups/devices" // device rules on cgroup v1 as real root
)

// envMountNS marks a process that Init already moved into a private mount
// namespace (the real-root case).
const envMountNS = "_SNAPBUILD_MOUNTNS"

// Init prepares the current process for running sandboxes. It must be the first
// call in main, before any goroutine or flag parsing, because it may re-execute
// the process:
//
//   - when started as "<exe> init" (libcontainer's container init), it becomes
//     the container process and never returns;
//   - when started for a registered reexec handler (go.podman.io/storage), it
//     runs that handler and exits;
//   - when not real root, it re-executes the process inside a user namespace
//     mapped from /etc/subuid and /etc/subgid and exits with the child's status;
//   - when real root, it re-executes the process inside a private mount
//     namespace, so that overlay mounts vanish with the process.
//
// After Init returns the process is "root" in a namespace that owns its mounts.
// Init exits the process with status 125 and a message on stderr when the user
// namespace cannot be set up (no subordinate ID range, missing newuidmap).
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
	if os.Geteuid() != 0 {
		if err := checkSubIDs(); err != nil {
			fmt.Fprintf(os.Stderr, "snapbuild: cannot run rootless: %v\n", err)
			os.Exit(125)
		}
		unshare.MaybeReexecUsingUserNamespace(false) // returns only in the child
		workerSetup()
		return
	}
	if os.Getenv(unshare.UsernsEnvName) != "" || os.Getenv(envMountNS) != "" {
		workerSetup()
		return
	}
	os.Exit(reexecInMountNS())
}

// InUserNamespace reports whether the process runs in a user namespace, that is
// whether overlay mounts need the userxattr option and whiteouts/opaque markers
// use the user.overlay.* xattrs.
func InUserNamespace() bool {
	return unshare.IsRootless() || os.Getenv(unshare.UsernsEnvName) != ""
}

// workerSetup runs in the process that builds: its mounts must not propagate
// back to the host's namespace, and files it makes in images (WORKDIR, COPY
// parents) get Docker's modes whatever the invoking shell's umask.
func workerSetup() {
	makeMountsPrivate()
	unix.Umask(0o022)
}

func makeMountsPrivate() {
	// Our mounts must not propagate back to the host's namespace.
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
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "snapbuild: cannot enter a private mount namespace: %v\n", err)
		return 125
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
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
	u, err := user.Current()
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
			return fmt.Errorf("%s gives user %s %d subordinate IDs, need at least 65536: run `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s` as root", file, u.Username, n, u.Username)
		}
	}
	return nil
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
