package sandbox

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pty pair as the container's init does: the master from
// /dev/ptmx, the slave by its number.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// TestConsoleSocketPTY passes a pty master over the console socket as
// libcontainer's init sends it, then drives the slave through Run's copier:
// input reaches the slave, output (with the kernel's ONLCR) reaches Stdout,
// sizes from Resize reach the pty, and the copier ends when the slave is
// closed.
func TestConsoleSocketPTY(t *testing.T) {
	m, slave := openPTY(t)
	parent, child, err := consoleSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	oob := unix.UnixRights(int(m.Fd()))
	if err := unix.Sendmsg(int(child.Fd()), []byte("/dev/ptmx"), oob, nil, 0); err != nil {
		t.Fatal(err)
	}
	m.Close()
	child.Close()
	master, err := recvMaster(parent)
	if err != nil {
		t.Fatal(err)
	}
	if master.Name() != "/dev/ptmx" {
		t.Errorf("master name = %q, want the name sent", master.Name())
	}
	if _, err := recvMaster(parent); err == nil {
		t.Error("a second receive on a closed socket: no error")
	}

	if err := setWinSize(master, WinSize{Width: 101, Height: 33}); err != nil {
		t.Fatal(err)
	}
	if ws, err := unix.IoctlGetWinsize(int(slave.Fd()), unix.TIOCGWINSZ); err != nil || ws.Col != 101 || ws.Row != 33 {
		t.Errorf("slave size = %+v, %v; want 101x33", ws, err)
	}

	inR, inW := io.Pipe()
	var out lockedBuffer
	resize := make(chan WinSize)
	c := startPTY(master, &Terminal{Resize: resize}, inR, &out)

	resize <- WinSize{Width: 80, Height: 24}
	// The send returns once the copier took the size; it is set right after.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws, err := unix.IoctlGetWinsize(int(slave.Fd()), unix.TIOCGWINSZ)
		if err == nil && ws.Col == 80 && ws.Row == 24 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slave size = %+v, %v after Resize; want 80x24", ws, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Raw input on the slave side, so that the bytes arrive as sent.
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag &^= unix.ICANON | unix.ECHO
	if err := unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	if _, err := inW.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(slave, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("slave read %q, %v; want ping", buf, err)
	}
	if _, err := slave.Write([]byte("line1\nline2\n")); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	c.finish(5 * time.Second)
	if got := out.String(); got != "line1\r\nline2\r\n" {
		t.Errorf("output = %q, want the slave's lines with CRLF", got)
	}
	inW.Close()
}

// lockedBuffer is a bytes.Buffer the copier may write while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
