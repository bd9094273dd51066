package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Terminal asks Run for a pseudo-terminal, as `runc run -t`, `docker run -t`
// and `podman run -t` give one: the container's init allocates a pty inside
// the container (on the container's own /dev/pts instance, so it works in a
// user namespace), makes its slave the process's stdin, stdout, stderr and
// controlling terminal (the process leads a new session), and hands the
// master to Run over libcontainer's console socket.
//
// Run then copies Spec.Stdin to the master and the master to Spec.Stdout;
// Spec.Stderr is not used, as the terminal merges the two output streams.
// The pty's line discipline is the kernel default (echo, canonical input,
// ISIG, ONLCR): a 0x03 byte on Stdin (Ctrl-C from a host terminal in raw
// mode) sends SIGINT to the terminal's foreground process group, 0x1c
// SIGQUIT, 0x1a SIGTSTP. As in Docker, a process that is the container's
// PID 1 only gets the signals it has a handler for; shells fork their
// commands, so Ctrl-C in `bash` or `sh -c 'CMD; ...'` reaches CMD.
type Terminal struct {
	// Size is the window size the pty starts with. The zero value leaves
	// it 0x0, which programs that ask read as "unknown".
	Size WinSize
	// Resize delivers later window sizes, e.g. the host terminal's on
	// SIGWINCH; the pty's foreground process group gets SIGWINCH for each.
	// Run stops reading it when the process has exited. nil means the size
	// never changes.
	Resize <-chan WinSize
}

// WinSize is a terminal window size in character cells.
type WinSize struct {
	Width, Height uint16 // columns, rows
}

// consoleSocket is a socket pair for libcontainer.Process.ConsoleSocket: the
// container's init sends the pty master over child; Run receives it on
// parent.
func consoleSocket() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "console-parent"), os.NewFile(uintptr(fds[1]), "console-child"), nil
}

// recvMaster receives the pty master that the container's init sends on
// sock (one SCM_RIGHTS descriptor, with the pty's path as data), as
// runc's cmsg.RecvFile does. The returned file is non-blocking, so that
// Go's poller serves it and Close interrupts a pending Read.
func recvMaster(sock *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(int(sock.Fd()), name, oob, unix.MSG_CMSG_CLOEXEC)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("receiving the pty master: %w", os.NewSyscallError("recvmsg", err))
	}
	if n == 0 && oobn == 0 {
		return nil, errors.New("receiving the pty master: the container's init closed the console socket without sending one")
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receiving the pty master: %w", err)
	}
	var fds []int
	for i := range msgs {
		if msgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return nil, fmt.Errorf("receiving the pty master: %w", err)
		}
		fds = append(fds, got...)
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receiving the pty master: got %d file descriptors, want 1", len(fds))
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receiving the pty master: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}

// setWinSize sets the window size of the pty whose master is f.
func setWinSize(f *os.File, ws WinSize) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	if err := conn.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: ws.Width, Row: ws.Height})
	}); err != nil {
		return err
	}
	return ioctlErr
}

// ptyCopier copies between a pty master and the caller's stdio while the
// process runs.
type ptyCopier struct {
	master  *os.File
	outDone chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

// startPTY starts copying stdin to master and master to stdout (either may
// be nil) and applying t.Resize.
func startPTY(master *os.File, t *Terminal, stdin io.Reader, stdout io.Writer) *ptyCopier {
	c := &ptyCopier{master: master, outDone: make(chan struct{}), stop: make(chan struct{})}
	if stdout == nil {
		stdout = io.Discard
	}
	go func() {
		defer close(c.outDone)
		// The read ends with EIO once the last slave descriptor is closed,
		// i.e. when every process in the container has exited.
		_, _ = io.Copy(stdout, master)
	}()
	if stdin != nil {
		// Not waited for: a read from the caller's stdin cannot be
		// interrupted, and what it reads after the process exits is dropped.
		go func() { _, _ = io.Copy(master, stdin) }()
	}
	if t.Resize != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				select {
				case ws, ok := <-t.Resize:
					if !ok {
						return
					}
					_ = setWinSize(master, ws)
				case <-c.stop:
					return
				}
			}
		}()
	}
	return c
}

// finish waits, after the process has exited, for the output still in the
// pty to be copied (at most grace), then closes the master.
func (c *ptyCopier) finish(grace time.Duration) {
	close(c.stop)
	select {
	case <-c.outDone:
	case <-time.After(grace):
	}
	c.master.Close()
	<-c.outDone
	c.wg.Wait()
}
