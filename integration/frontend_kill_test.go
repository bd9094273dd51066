package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The Python front end: nothing that `snapbuild build app.py` starts to
// read the file outlives snapbuild, however it ends, and nothing it writes
// to read it stays behind.

// loopApp is a Modal file that never finishes loading.
const loopApp = "import modal\nimage = modal.Image.debian_slim()\nprint('loading', flush=True)\nwhile True:\n    pass\n"

// loopSetup writes a file that loops at import, under a name unique to the
// test, into a working directory, and makes a TMPDIR for snapbuild; both
// belong to user (nil: root). It returns the runner, the file's base name
// and the TMPDIR.
func loopSetup(t *testing.T, rootless bool) (r runner, name, tmp string) {
	t.Helper()
	requireTools(t, "python3")
	if rootless {
		u := ensureTestUser(t)
		dir, tmp := userDir(t, u), userDir(t, u)
		name = "loop_" + strings.ReplaceAll(t.Name(), "/", "_") + ".py"
		os.WriteFile(filepath.Join(dir, name), []byte(loopApp), 0o644)
		return runner{t: t, user: testUser, root: filepath.Join(userDir(t, u), "store"), dir: dir, env: []string{"TMPDIR=" + tmp}}, name, tmp
	}
	dir, tmp := t.TempDir(), t.TempDir()
	name = "loop_" + strings.ReplaceAll(t.Name(), "/", "_") + ".py"
	os.WriteFile(filepath.Join(dir, name), []byte(loopApp), 0o644)
	return runner{t: t, root: filepath.Join(t.TempDir(), "store"), dir: dir, env: []string{"TMPDIR=" + tmp}}, name, tmp
}

// procsWith lists "PID: ARGV" of the processes whose command line holds s,
// and whose argv[0] is argv0 when that is not empty.
func procsWith(s, argv0 string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), s) {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if argv0 != "" && args[0] != argv0 {
			continue
		}
		out = append(out, e.Name()+": "+strings.Join(args, " "))
	}
	return out
}

// waitLoading waits until python runs the file name (the loader and the
// process that imports it), checks that the loader's directory is in tmp,
// and returns the pid of the snapbuild that the test started (snapbuild
// re-executes itself in a namespace: the outer one).
func waitLoading(t *testing.T, name, tmp string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var py []string
		for _, p := range procsWith(name, "") {
			if strings.Contains(p, "snapbuild_frontend.py") {
				py = append(py, p)
			}
		}
		if len(py) == 2 {
			if !strings.Contains(py[0], " --owns "+tmp+"/snapbuild-frontend-") {
				t.Errorf("python's directory is not in TMPDIR (%s): %s", tmp, py[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("python never ran %s: %q", name, procsWith(name, ""))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range procsWith(name, bin) {
		pid, _ := strconv.Atoi(strings.SplitN(p, ":", 2)[0])
		stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 2 {
			continue
		}
		if parent, _ := os.Readlink("/proc/" + f[1] + "/exe"); parent != bin {
			return pid
		}
	}
	t.Fatalf("no snapbuild process: %q", procsWith(name, ""))
	return 0
}

// assertGone fails the test unless, within 10s, no process holds the file
// name on its command line and tmp is empty.
func assertGone(t *testing.T, name, tmp string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs := procsWith(name, "")
		ents, _ := os.ReadDir(tmp)
		if len(procs) == 0 && len(ents) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var left []string
			for _, e := range ents {
				left = append(left, e.Name())
			}
			t.Fatalf("10s after snapbuild ended: processes %q, in TMPDIR %q", procs, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func bothModes(t *testing.T, f func(t *testing.T, rootless bool)) {
	requireRoot(t)
	t.Run("root", func(t *testing.T) { f(t, false) })
	t.Run("rootless", func(t *testing.T) { f(t, true) })
}

// TestPythonLoadKilled: SIGKILL of snapbuild while it reads a Python file
// that loops at import leaves no python process and no temporary directory.
func TestPythonLoadKilled(t *testing.T) {
	bothModes(t, func(t *testing.T, rootless bool) {
		r, name, tmp := loopSetup(t, rootless)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := r.cmd(ctx, "build", name, "--load-timeout", "0")
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := waitLoading(t, name, tmp)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		assertGone(t, name, tmp)
	})
}

// TestPythonLoadInterrupt: Ctrl-C (SIGINT) while a file loops at import
// stops python; snapbuild exits 130.
func TestPythonLoadInterrupt(t *testing.T) {
	bothModes(t, func(t *testing.T, rootless bool) {
		r, name, tmp := loopSetup(t, rootless)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := r.cmd(ctx, "build", name)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		// As a terminal's Ctrl-C: SIGINT to the foreground process group.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitLoading(t, name, tmp)
		start := time.Now()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
			t.Errorf("snapbuild build after SIGINT: %v, want exit status 130\n%s", err, stderr.String())
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("snapbuild took %v to exit after SIGINT", took)
		}
		if !strings.Contains(stderr.String(), "snapbuild: interrupted") {
			t.Errorf("stderr: %q, want snapbuild: interrupted", stderr.String())
		}
		assertGone(t, name, tmp)
	})
}

// TestPythonLoadTimeout: a file still loading after --load-timeout is
// stopped, with an error that names the file and the timeout.
func TestPythonLoadTimeout(t *testing.T) {
	bothModes(t, func(t *testing.T, rootless bool) {
		r, name, tmp := loopSetup(t, rootless)
		start := time.Now()
		res := r.run("", "build", name, "--load-timeout", "2s")
		took := time.Since(start)
		if res.code != 1 {
			t.Errorf("exit %d, want 1\n%s", res.code, res.stderr)
		}
		want := "snapbuild: " + name + ": still loading after 2s, the load timeout: python was stopped"
		if !strings.HasPrefix(res.stderr, "loading\n"+want) && !strings.Contains(res.stderr, "\n"+want) {
			t.Errorf("stderr %q, want a line starting %q", res.stderr, want)
		}
		if !strings.Contains(res.stderr, "give it longer with --load-timeout (now 2s; 0 for no limit)") {
			t.Errorf("stderr %q does not say how to give it longer", res.stderr)
		}
		if took < 2*time.Second || took > 10*time.Second {
			t.Errorf("snapbuild build --load-timeout 2s took %v", took)
		}
		assertGone(t, name, tmp)
		if res := r.run("", "build", name, "--load-timeout", "-1s"); res.code != 125 || !strings.Contains(res.stderr, "--load-timeout -1s: give a duration") {
			t.Errorf("--load-timeout -1s: exit %d, %q", res.code, res.stderr)
		}
	})
}
