package idmap

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	m, err := Parse(strings.NewReader("         0       1000          1\n         1     100000      65536\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Map{{0, 1000, 1}, {1, 100000, 65536}}
	if len(m) != 2 || m[0] != want[0] || m[1] != want[1] {
		t.Fatalf("Parse = %+v, want %+v", m, want)
	}
	for id, in := range map[int]bool{-1: false, 0: true, 1: true, 65536: true, 65537: false, 1000: true, 100000: false} {
		if got := m.Contains(id); got != in {
			t.Errorf("Contains(%d) = %v", id, got)
		}
	}
	if got := m.String(); got != "0-65536" {
		t.Errorf("String() = %q", got)
	}
	if got := (Map{{1000, 5, 1000}, {0, 1, 1}, {5000, 0, 1}}).String(); got != "0, 1000-1999, 5000" {
		t.Errorf("String() = %q", got)
	}
	full, _ := Parse(strings.NewReader("0 0 4294967295\n"))
	if !full.Contains(4294967294) || full.Contains(4294967295) || full.String() != "0-4294967294" {
		t.Errorf("identity map: %v %v %q", full.Contains(4294967294), full.Contains(4294967295), full.String())
	}
	if got := (Map{}).String(); got != "none" {
		t.Errorf("empty String() = %q", got)
	}
	for _, bad := range []string{"0 0\n", "0 x 1\n", "0 0 99999999999\n"} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("Parse(%q) = nil error", bad)
		}
	}
}

func TestExplain(t *testing.T) {
	uids := Map{{0, 1000, 1}, {1, 100000, 65536}}
	gids := Map{{0, 1000, 1}}
	cause := &os.PathError{Op: "lchown", Path: "/x", Err: syscall.EINVAL}
	for _, c := range []struct {
		uid, gid int
		want     string
	}{
		{200000, 0, "uid 200000 is outside the user namespace's mapped uids (0-65536)"},
		{5, 7, "gid 7 is outside the user namespace's mapped gids (0)"},
		{-1, 9, "gid 9 is outside"},
		{5, -1, ""},
	} {
		err := explain(cause, c.uid, c.gid, uids, gids)
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("explain(%d, %d) = %v: does not wrap EINVAL", c.uid, c.gid, err)
		}
		if c.want == "" {
			if err != error(cause) {
				t.Errorf("explain(%d, %d) = %v, want the cause itself", c.uid, c.gid, err)
			}
			continue
		}
		if !strings.HasPrefix(err.Error(), c.want) || !strings.HasSuffix(err.Error(), "lchown /x: invalid argument") {
			t.Errorf("explain(%d, %d) = %q, want %q...", c.uid, c.gid, err, c.want)
		}
	}
}

const childEnv = "IDMAP_TEST_CHILD"

// TestMain runs the lchownChild half of TestLchownUnmapped in the child
// process the test starts in a user namespace.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(lchownChild(dir))
	}
	os.Exit(m.Run())
}

// lchownChild runs in a user namespace that maps only ID 0: Lchown to 0
// works, to 1000 fails naming the uid and the range.
func lchownChild(dir string) int {
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		os.Stderr.WriteString("write: " + err.Error() + "\n")
		return 2
	}
	if err := Lchown(p, 0, 0); err != nil {
		os.Stderr.WriteString("mapped id: " + err.Error() + "\n")
		return 3
	}
	err := Lchown(p, 1000, 0)
	os.Stdout.WriteString(err.Error())
	if !errors.Is(err, syscall.EINVAL) {
		return 4
	}
	return 0
}

// A chown to an ID outside the user namespace's map fails naming the ID
// and the mapped range, in a real user namespace.
func TestLchownUnmapped(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot start a process in a user namespace (CI=true: not skipping): %v", err)
		}
		t.Skipf("cannot start a process in a user namespace: %v", err)
	}
	if err != nil {
		t.Fatalf("child: %v: %s%s", err, out, ee.Stderr)
	}
	want := "uid 1000 is outside the user namespace's mapped uids (0); rootless, these are 0 and the invoking user's /etc/subuid range"
	if got := string(out); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, ": invalid argument") {
		t.Errorf("Lchown error = %q, want %q...", got, want)
	}
}
