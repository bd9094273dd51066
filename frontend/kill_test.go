package frontend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapbuild/snapbuild/frontend"
)

// loopSource is a Modal file that never finishes loading.
const loopSource = "import modal\nimage = modal.Image.debian_slim()\nwhile True:\n    pass\n"

// writeLoop writes loop.py (with a name unique to the test, so that its
// processes can be told from others) into a new working directory and
// points TMPDIR at a new directory; it returns the file's absolute path
// and that temporary directory.
func writeLoop(t *testing.T) (file, tmp string) {
	t.Helper()
	dir := t.TempDir()
	file = filepath.Join(dir, "loop_"+strings.ReplaceAll(t.Name(), "/", "_")+".py")
	if err := os.WriteFile(file, []byte(loopSource), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp = t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Chdir(dir)
	return file, tmp
}

// processesOf lists the pids whose command line holds s, this process
// excepted.
func processesOf(t *testing.T, s string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range ents {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || e.Name() == "self" || e.Name() == "thread-self" || e.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		if bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return pids
}

// waitGone waits up to 10s for no process to hold file on its command
// line and for tmp to be empty, and fails the test otherwise.
func waitGone(t *testing.T, file, tmp string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs := processesOf(t, file)
		ents, _ := os.ReadDir(tmp)
		if len(procs) == 0 && len(ents) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("after 10s, processes of %s: %q; left in %s: %q", filepath.Base(file), procs, tmp, names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEvaluateTimeout(t *testing.T) {
	needPython(t)
	file, tmp := writeLoop(t)
	start := time.Now()
	_, err := frontend.Evaluate(context.Background(), file, frontend.Options{Timeout: time.Second})
	var te *frontend.TimeoutError
	if !errors.As(err, &te) || te.Timeout != time.Second || te.File != file {
		t.Fatalf("Evaluate(loop.py, Timeout 1s) = %v, want a *TimeoutError for %s", err, file)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Evaluate took %v to stop a file at a 1s timeout", took)
	}
	if want := file + ": still loading after 1s, the load timeout"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start %q", err, want)
	}
	waitGone(t, file, tmp)
}

func TestEvaluateCancel(t *testing.T) {
	needPython(t)
	file, tmp := writeLoop(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	_, err := frontend.Evaluate(ctx, file, frontend.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Evaluate(loop.py) cancelled = %v, want context.Canceled", err)
	}
	waitGone(t, file, tmp)
}

// TestEvaluateKilled kills, with SIGKILL, a process that is running
// Evaluate on a file that loops at import: python notices, kills the file
// and removes the temporary directory.
func TestEvaluateKilled(t *testing.T) {
	if file := os.Getenv("FRONTEND_TEST_EVALUATE"); file != "" {
		// The process to kill.
		_, err := frontend.Evaluate(context.Background(), file, frontend.Options{})
		t.Fatalf("Evaluate returned: %v", err)
	}
	needPython(t)
	file, tmp := writeLoop(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestEvaluateKilled$", "-test.v")
	cmd.Env = append(os.Environ(), "FRONTEND_TEST_EVALUATE="+file)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 2 * time.Second // an orphan python may hold the output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the file runs: the loader's child holds it, with its
	// own process group.
	deadline := time.Now().Add(10 * time.Second)
	for len(processesOf(t, file)) < 2 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("python never ran %s: %q\n%s", file, processesOf(t, file), out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 1 {
		t.Errorf("while it loads, %s holds %d entries, want its temporary directory", tmp, len(ents))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waitGone(t, file, tmp)
}

// TestEvaluateSweep: a temporary directory of a process that is gone is
// removed by the next Evaluate; one of a live process is kept.
func TestEvaluateSweep(t *testing.T) {
	needPython(t)
	dir := writeApp(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(tmp, "snapbuild-frontend-"+strconv.Itoa(dead.ProcessState.Pid())+"-123")
	live := filepath.Join(tmp, "snapbuild-frontend-1-456") // init is alive
	other := filepath.Join(tmp, "snapbuild-frontend-x")
	for _, d := range []string{stale, live, other} {
		if err := os.MkdirAll(filepath.Join(d, "modal"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := frontend.Load(context.Background(), filepath.Join(dir, "app.py"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory of a process that is gone is still there: %v", err)
	}
	for _, d := range []string{live, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
}

// detachedSource starts, at import, a process in a session of its own
// (out of the loader's process group), holding the file's path on its
// command line, then either loops or finishes loading.
const detachedSource = `import modal, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)", __file__], start_new_session=True)
image = modal.Image.debian_slim()
while LOOP:
    pass
`

// TestEvaluateDetached: what a file starts in a session of its own at
// import does not outlive Evaluate, whether the file is stopped at its
// load timeout or finishes loading.
func TestEvaluateDetached(t *testing.T) {
	needPython(t)
	for _, loop := range []bool{true, false} {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			file, tmp := writeLoop(t)
			src := strings.Replace(detachedSource, "LOOP", map[bool]string{true: "True", false: "False"}[loop], 1)
			if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			timeout := time.Minute // loading may be slow on a busy machine
			if loop {
				timeout = 2 * time.Second
			}
			_, err := frontend.Evaluate(context.Background(), file, frontend.Options{Timeout: timeout})
			var te *frontend.TimeoutError
			if loop != errors.As(err, &te) || (!loop && err != nil) {
				t.Fatalf("Evaluate = %v, want a *TimeoutError: %v", err, loop)
			}
			waitGone(t, file, tmp)
		})
	}
}
