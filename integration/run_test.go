package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// hostToolsImage writes an OCI layout in dir holding one image, tagged
// name, made of the host's sh, sleep, tty, stty, echo, cat and env with
// their libraries (no Debian bootstrap is needed), whose config has
// entrypoint and cmd; everyone may read it (the rootless tests load it).
func hostToolsImage(t *testing.T, dir, name string, entrypoint, cmd []string) {
	t.Helper()
	must(t, testimage.WriteLayout(dir, testimage.Spec{
		Tag:        name,
		Tools:      []string{"sh", "sleep", "tty", "stty", "echo", "cat", "env"},
		Dirs:       []string{"/etc", "/tmp", "/root"},
		Files:      map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"},
		Entrypoint: entrypoint, Cmd: cmd,
	}))
	if err := exec.Command("chmod", "-R", "a+rX", dir).Run(); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRunEntrypoint checks `snapbuild run --entrypoint` against docker's
// rules: it replaces the image's ENTRYPOINT and drops its CMD, "" clears
// it so the arguments run alone, a JSON array (podman) gives arguments.
func TestRunEntrypoint(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd")
	dir := t.TempDir()
	hostToolsImage(t, filepath.Join(dir, "layout"), "epimage", []string{"echo", "from-entrypoint"}, []string{"from-cmd"})
	r := runner{t: t, root: filepath.Join(dir, "store")}
	r.ok("load", filepath.Join(dir, "layout"))

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "epimage"}, "from-entrypoint from-cmd\n"},
		{[]string{"run", "epimage", "an-arg"}, "from-entrypoint an-arg\n"},
		// --entrypoint drops the image's CMD too.
		{[]string{"run", "--entrypoint", "echo", "epimage"}, "\n"},
		{[]string{"run", "--entrypoint", "echo", "epimage", "only", "args"}, "only args\n"},
		{[]string{"run", "--entrypoint=sh", "epimage", "-c", "echo shell $0", "zero"}, "shell zero\n"},
		{[]string{"run", "--entrypoint", "", "epimage", "sh", "-c", "echo cleared"}, "cleared\n"},
		{[]string{"run", "--entrypoint", `["sh", "-c"]`, "epimage", "echo json"}, "json\n"},
	} {
		res := r.run("", tc.args...)
		if res.code != 0 || res.stdout != tc.want {
			t.Errorf("snapbuild %q: exit %d, stdout %q, want %q\n%s", tc.args, res.code, res.stdout, tc.want, res.stderr)
		}
	}
	res := r.run("", "run", "--entrypoint", "", "epimage")
	if res.code != 1 || !strings.Contains(res.stderr, "clears the image's ENTRYPOINT and CMD") || strings.Count(res.stderr, "\n") != 1 {
		t.Errorf(`run --entrypoint "" without a command: exit %d, stderr %q; want 1 and one line saying the command is missing`, res.code, res.stderr)
	}
	res = r.run("", "run", "--entrypoint", `["sh", 1]`, "epimage")
	if res.code != 1 || !strings.Contains(res.stderr, "--entrypoint") {
		t.Errorf("run with a bad JSON entrypoint: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestRunStdin checks docker's stdin rules: without -i the command reads
// nothing; -i passes stdin; -it refuses a stdin that is not a terminal.
func TestRunStdin(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd")
	dir := t.TempDir()
	hostToolsImage(t, filepath.Join(dir, "layout"), "stdinimage", nil, []string{"sh"})
	r := runner{t: t, root: filepath.Join(dir, "store")}
	r.ok("load", filepath.Join(dir, "layout"))

	if res := r.run("piped\n", "run", "stdinimage", "cat"); res.code != 0 || res.stdout != "" {
		t.Errorf("run without -i: exit %d, stdout %q; want stdin not attached\n%s", res.code, res.stdout, res.stderr)
	}
	for _, flag := range []string{"-i", "--interactive"} {
		if res := r.run("piped\n", "run", flag, "stdinimage", "cat"); res.code != 0 || res.stdout != "piped\n" {
			t.Errorf("run %s: exit %d, stdout %q; want stdin passed\n%s", flag, res.code, res.stdout, res.stderr)
		}
	}
	res := r.run("piped\n", "run", "-it", "stdinimage", "cat")
	if res.code != 1 || !strings.Contains(res.stderr, "the input device is not a TTY") || strings.Count(res.stderr, "\n") != 1 {
		t.Errorf("run -it with a pipe: exit %d, stderr %q; want docker's error, once", res.code, res.stderr)
	}
	// -t alone needs no terminal: the output comes through a pty (CRLF).
	if res := r.run("", "run", "-t", "stdinimage", "sh", "-c", "tty; echo done"); res.code != 0 || !regexp.MustCompile(`^/dev/pts/\d+\r\ndone\r\n$`).MatchString(res.stdout) {
		t.Errorf("run -t without a terminal: exit %d, stdout %q\n%s", res.code, res.stdout, res.stderr)
	}
}

// TestRunInteractiveTTYRoot and TestRunInteractiveTTYRootless drive
// `snapbuild run -it` through a real pty, as a user at a terminal would.
func TestRunInteractiveTTYRoot(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd")
	dir := t.TempDir()
	hostToolsImage(t, filepath.Join(dir, "layout"), "ttyimage", nil, []string{"sh"})
	r := runner{t: t, root: filepath.Join(dir, "store")}
	r.ok("load", filepath.Join(dir, "layout"))
	interactiveTTY(t, r)
}

func TestRunInteractiveTTYRootless(t *testing.T) {
	requireTools(t, "ldd")
	u := ensureTestUser(t)
	home := userDir(t, u)
	layoutDir := filepath.Join(home, "layout")
	hostToolsImage(t, layoutDir, "ttyimage", nil, []string{"sh"})
	r := runner{t: t, user: u.Username, root: filepath.Join(home, "store")}
	r.ok("load", layoutDir)
	interactiveTTY(t, r)
}

// interactiveTTY runs a prompt, tty, stty size (before and after a window
// resize) and a sleep that Ctrl-C interrupts, in `snapbuild run -it`
// whose stdin, stdout and stderr are the slave of a pty this test holds
// the master of.
func interactiveTTY(t *testing.T, r runner) {
	master, slave := openTestPTY(t)
	defer master.Close()
	must(t, unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120}))
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	must(t, err)

	script := `printf 'name? '; read n; echo "hello $n"; tty; stty size; read _; stty size; echo sleeping; sleep 100; echo after sleep`
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := r.cmd(ctx, "run", "-it", "ttyimage", "sh", "-c", script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	must(t, cmd.Start())
	slave.Close()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()

	out := newPTYReader(master)
	out.expect(t, "name? ")
	// A terminal in raw mode sends CR for Enter; the container's pty turns
	// it into NL (ICRNL) and echoes it.
	_, err = master.Write([]byte("bob\r"))
	must(t, err)
	out.expect(t, "hello bob\r\n")
	ttyLine := out.expectRegexp(t, `(/dev/pts/\d+|not a tty)\r\n`)
	if !strings.HasPrefix(ttyLine, "/dev/pts/") {
		t.Errorf("tty inside: %q, want /dev/pts/N", ttyLine)
	}
	out.expect(t, "40 120\r\n")

	// A new window size reaches snapbuild as SIGWINCH and the container's
	// pty as its size.
	must(t, unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 50, Col: 132}))
	time.Sleep(200 * time.Millisecond)
	_, err = master.Write([]byte("\r"))
	must(t, err)
	out.expect(t, "50 132\r\n")

	// Ctrl-C is a byte in raw mode; the container's pty turns it into
	// SIGINT for its foreground process group: sleep dies of it and the
	// shell stops the script and exits 128+2, as at a terminal.
	out.expect(t, "sleeping\r\n")
	var waited error
	exited := false
	for i := 0; i < 10 && !exited; i++ {
		time.Sleep(300 * time.Millisecond)
		_, err = master.Write([]byte{0x03})
		must(t, err)
		select {
		case waited = <-waitErr:
			exited = true
		case <-time.After(2 * time.Second):
		}
	}
	if !exited {
		t.Fatalf("snapbuild run -it did not exit after Ctrl-C\n%q", out.all())
	}
	var ee *exec.ExitError
	if !errors.As(waited, &ee) || ee.ExitCode() != 130 {
		t.Errorf("snapbuild run -it after Ctrl-C: %v, want exit status 130\n%q", waited, out.all())
	}
	out.drain(5 * time.Second)
	if strings.Contains(out.all(), "snapbuild: interrupted") {
		t.Errorf("Ctrl-C interrupted snapbuild instead of reaching the container (terminal not in raw mode?):\n%q", out.all())
	}
	if strings.Contains(out.all(), "after sleep") {
		t.Errorf("the script went on after Ctrl-C:\n%q", out.all())
	}
	// The host terminal is as it was: not left in raw mode.
	after, err := unix.IoctlGetTermios(int(master.Fd()), unix.TCGETS)
	must(t, err)
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("terminal not restored: lflag %#x iflag %#x oflag %#x, want %#x %#x %#x",
			after.Lflag, after.Iflag, after.Oflag, before.Lflag, before.Iflag, before.Oflag)
	}
}

// openTestPTY opens a pty pair; the slave is readable and writable by the
// unprivileged test user too.
func openTestPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	must(t, err)
	must(t, unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	must(t, err)
	name := "/dev/pts/" + strconv.Itoa(n)
	must(t, os.Chmod(name, 0o666))
	s, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	must(t, err)
	return m, s
}

// ptyReader collects what a pty master reads, for expectations with a
// deadline.
type ptyReader struct {
	ch  chan []byte
	buf []byte // read and not yet matched
	log []byte // everything read
}

func newPTYReader(f *os.File) *ptyReader {
	r := &ptyReader{ch: make(chan []byte, 64)}
	go func() {
		for {
			b := make([]byte, 4096)
			n, err := f.Read(b)
			if n > 0 {
				r.ch <- b[:n]
			}
			if err != nil {
				close(r.ch)
				return
			}
		}
	}()
	return r
}

func (r *ptyReader) all() string { return string(r.log) }

// tryRegexp waits up to d for re to match what was read and not yet
// matched, and consumes the input up to the end of the match.
func (r *ptyReader) tryRegexp(re string, d time.Duration) (string, error) {
	rx := regexp.MustCompile(re)
	deadline := time.After(d)
	for {
		if loc := rx.FindIndex(r.buf); loc != nil {
			m := string(r.buf[loc[0]:loc[1]])
			r.buf = r.buf[loc[1]:]
			return m, nil
		}
		select {
		case b, ok := <-r.ch:
			if !ok {
				return "", fmt.Errorf("pty closed before %q", re)
			}
			r.buf = append(r.buf, b...)
			r.log = append(r.log, b...)
		case <-deadline:
			return "", fmt.Errorf("no %q within %s", re, d)
		}
	}
}

// drain reads until the pty is closed (every slave descriptor is), or d
// has passed.
func (r *ptyReader) drain(d time.Duration) {
	deadline := time.After(d)
	for {
		select {
		case b, ok := <-r.ch:
			if !ok {
				return
			}
			r.buf = append(r.buf, b...)
			r.log = append(r.log, b...)
		case <-deadline:
			return
		}
	}
}

func (r *ptyReader) expectRegexp(t *testing.T, re string) string {
	t.Helper()
	m, err := r.tryRegexp(re, 60*time.Second)
	if err != nil {
		t.Fatalf("%v; output so far:\n%q", err, r.all())
	}
	return m
}

func (r *ptyReader) expect(t *testing.T, s string) {
	t.Helper()
	r.expectRegexp(t, regexp.QuoteMeta(s))
}
