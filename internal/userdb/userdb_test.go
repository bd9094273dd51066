package userdb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestExecUser resolves USER values as runc and BuildKit do: a name must
// exist, a numeric uid need not; without a group, the user's primary one.
func TestExecUser(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
	write(t, root, "etc/group", "root:x:0:\nstaff:x:50:app\n")
	for _, c := range []struct {
		spec     string
		uid, gid int
		ok       bool
	}{
		{"", 0, 0, true},
		{"app", 1000, 1001, true},
		{"app:staff", 1000, 50, true},
		{"1000", 1000, 1001, true},
		{"4242", 4242, 0, true}, // a uid not in passwd is allowed
		{"4242:7", 4242, 7, true},
		{"ghost", 0, 0, false},
		{"app:nogroup", 0, 0, false},
	} {
		u, err := ExecUser(root, c.spec)
		if !c.ok {
			if err == nil || !strings.Contains(err.Error(), c.spec) {
				t.Errorf("ExecUser(%q) = %v, want an error naming it", c.spec, err)
			}
			continue
		}
		if err != nil || u.Uid != c.uid || u.Gid != c.gid {
			t.Errorf("ExecUser(%q) = %+v, %v; want %d:%d", c.spec, u, err, c.uid, c.gid)
		}
	}
	// An empty filesystem has no passwd: root, and numeric ids, still work.
	if u, err := ExecUser(t.TempDir(), "5:6"); err != nil || u.Uid != 5 || u.Gid != 6 {
		t.Errorf("execUser without /etc/passwd = %+v, %v", u, err)
	}
}
