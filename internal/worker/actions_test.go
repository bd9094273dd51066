package worker

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/buildkit/solver/pb"
	copy "github.com/tonistiigi/fsutil/copy"
	"golang.org/x/sys/unix"
)

// needRoot skips a test that needs root (chown, file capabilities; root in
// the builder's user namespace will do), or fails it with CI=true.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the test needs root (CI=true: not skipped)")
	}
	t.Skip("the test needs root")
}

func write(t *testing.T, root, rel, data string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// copyOp is a FileActionCopy with BuildKit's defaults for COPY.
func copyOp(src, dest string) *pb.FileActionCopy {
	return &pb.FileActionCopy{Src: src, Dest: dest, Mode: -1, Timestamp: -1, FollowSymlink: true,
		DirCopyContents: true, CreateDestPath: true, AllowWildcard: true, AllowEmptyWildcard: false}
}

// TestCopyKeepsMetadata checks that a copy without --chown keeps owners,
// modes, setuid bits, xattrs and file capabilities (security.capability,
// set with setcap), and that --chown and --chmod apply to every copied
// entry and to the directories the copy creates.
func TestCopyKeepsMetadata(t *testing.T) {
	needRoot(t)
	src, dest := t.TempDir(), t.TempDir()
	bin := write(t, src, "app/bin/tool", "#!/bin/sh\n", 0o755)
	suid := write(t, src, "app/bin/suid", "x", 0o755)
	if err := unix.Chmod(suid, 0o4755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(bin, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(src, "app/bin"), 42, 43); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("setcap", "cap_net_raw=ep", bin).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v\n%s", err, out)
	}
	if err := unix.Lsetxattr(bin, "user.origin", []byte("host"), 0); err != nil {
		t.Fatal(err)
	}
	capBefore := make([]byte, 64)
	n, err := unix.Lgetxattr(bin, "security.capability", capBefore)
	if err != nil {
		t.Fatal(err)
	}
	capBefore = capBefore[:n]

	if err := copyAction(context.Background(), src, nil, dest, copyOp("/app", "/opt/app/"), nil); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dest, "opt/app/bin/tool")
	if st := lstat(t, got); st.Uid != 1234 || st.Gid != 5678 || st.Mode&0o7777 != 0o755 {
		t.Errorf("tool: %d:%d %o, want 1234:5678 755", st.Uid, st.Gid, st.Mode&0o7777)
	}
	if st := lstat(t, filepath.Join(dest, "opt/app/bin")); st.Uid != 42 || st.Gid != 43 {
		t.Errorf("bin/: %d:%d, want the source's 42:43", st.Uid, st.Gid)
	}
	if st := lstat(t, filepath.Join(dest, "opt/app/bin/suid")); st.Mode&0o7777 != 0o4755 {
		t.Errorf("suid: mode %o, want 4755", st.Mode&0o7777)
	}
	capAfter := make([]byte, 64)
	n, err = unix.Lgetxattr(got, "security.capability", capAfter)
	if err != nil || !bytes.Equal(capAfter[:n], capBefore) {
		t.Errorf("security.capability after the copy = %x, %v; want %x", capAfter[:n], err, capBefore)
	}
	if out, err := exec.Command("getcap", got).Output(); err != nil || !strings.Contains(string(out), "cap_net_raw=ep") {
		t.Errorf("getcap %s = %q, %v; want cap_net_raw=ep", got, out, err)
	}
	v := make([]byte, 16)
	if n, err := unix.Lgetxattr(got, "user.origin", v); err != nil || string(v[:n]) != "host" {
		t.Errorf("user.origin = %q, %v", v[:n], err)
	}

	// --chown=7:8 --chmod=0640: every entry copied, and the destination
	// directories the copy creates, get the owner (BuildKit's rule).
	dest2 := t.TempDir()
	a := copyOp("/app", "/srv/new/")
	a.Mode = 0o640
	if err := copyAction(context.Background(), src, nil, dest2, a, &copy.User{UID: 7, GID: 8}); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"srv/new", "srv/new/bin", "srv/new/bin/tool"} {
		if st := lstat(t, filepath.Join(dest2, rel)); st.Uid != 7 || st.Gid != 8 {
			t.Errorf("%s: %d:%d, want 7:8", rel, st.Uid, st.Gid)
		}
	}
	if st := lstat(t, filepath.Join(dest2, "srv/new/bin/tool")); st.Mode&0o7777 != 0o640 {
		t.Errorf("--chmod=640: tool mode %o", st.Mode&0o7777)
	}
}

// TestCopyForms checks the COPY forms Docker users rely on: a file into an
// existing directory, wildcards, include and exclude patterns, a symlink
// followed, a missing source.
func TestCopyForms(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	write(t, src, "file.txt", "file", 0o644)
	write(t, src, "a.go", "a", 0o644)
	write(t, src, "b.go", "b", 0o644)
	write(t, src, "c.txt", "c", 0o644)
	write(t, src, "tree/keep/x.md", "x", 0o644)
	write(t, src, "tree/drop/y.md", "y", 0o644)
	write(t, src, "tree/keep/z.txt", "z", 0o644)
	if err := os.Symlink("file.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}

	// COPY file.txt . with WORKDIR /app existing: lands in /app.
	dest := t.TempDir()
	if err := os.Mkdir(filepath.Join(dest, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyAction(ctx, src, nil, dest, copyOp("/file.txt", "/app/"), nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dest, "app/file.txt")); got != "file" {
		t.Errorf("/app/file.txt = %q", got)
	}
	// COPY file.txt /app (no slash, an existing directory): into it too.
	if err := copyAction(ctx, src, nil, dest, copyOp("/c.txt", "/app"), nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dest, "app/c.txt")); got != "c" {
		t.Errorf("/app/c.txt = %q", got)
	}

	// COPY *.go /src/
	if err := copyAction(ctx, src, nil, dest, copyOp("/*.go", "/src/"), nil); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dest, "src"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "a.go,b.go" {
		t.Errorf("COPY *.go /src/ gave %v", names)
	}

	// Include and exclude patterns (COPY --exclude, the context filter).
	a := copyOp("/tree", "/t/")
	a.IncludePatterns = []string{"**/*.md"}
	a.ExcludePatterns = []string{"drop"}
	if err := copyAction(ctx, src, nil, dest, a, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dest, "t/keep/x.md")); err != nil {
		t.Errorf("included t/keep/x.md: %v", err)
	}
	for _, rel := range []string{"t/drop", "t/keep/z.txt"} {
		if _, err := os.Lstat(filepath.Join(dest, rel)); err == nil {
			t.Errorf("%s copied despite the patterns", rel)
		}
	}

	// A symlink named as the source is followed (COPY link /l).
	if err := copyAction(ctx, src, nil, dest, copyOp("/link", "/l"), nil); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(dest, "l")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("/l is not a regular file: mode %o", st.Mode)
	}

	// A source that matches nothing is an error naming it, as BuildKit's
	// ("/x": not found), wildcard or not.
	err := copyAction(ctx, src, nil, dest, copyOp("/nothing*", "/x/"), nil)
	if err == nil || !strings.Contains(err.Error(), `"/nothing*": not found`) {
		t.Errorf("missing source: %v", err)
	}
	err = copyAction(ctx, src, nil, dest, copyOp("/nothere.txt", "/x"), nil)
	if err == nil || !strings.Contains(err.Error(), `"/nothere.txt": not found`) || !strings.Contains(err.Error(), ".dockerignore") {
		t.Errorf("missing source: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dest, "x")); err == nil {
		t.Error("a copy of a missing source created its destination")
	}
	// Without CreateDestPath a missing parent is an error.
	b := copyOp("/file.txt", "/no/such/dir/f")
	b.CreateDestPath = false
	if err := copyAction(ctx, src, nil, dest, b, nil); err == nil {
		t.Error("a missing destination parent without CreateDestPath: no error")
	}
	// The error names paths as the image sees them, not the host's.
	if err != nil && strings.Contains(err.Error(), src) {
		t.Errorf("error names the host path: %v", err)
	}
}

// TestAddArchive checks ADD's rule: an archive is told by its content, not
// its name; an archive is unpacked, anything else copied.
func TestAddArchive(t *testing.T) {
	needRoot(t) // unpacking chroots (go-archive's chrootarchive, as BuildKit)
	ctx := context.Background()
	src, dest := t.TempDir(), t.TempDir()
	var tgz bytes.Buffer
	gw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gw)
	tw.WriteHeader(&tar.Header{Name: "pkg/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "pkg/readme", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5})
	tw.Write([]byte("hello"))
	tw.Close()
	gw.Close()
	write(t, src, "data.bin", tgz.String(), 0o644)             // an archive with no archive name
	write(t, src, "notes.tar.gz", "plain text, no tar", 0o644) // a name that lies
	for _, s := range []string{"/data.bin", "/notes.tar.gz"} {
		a := copyOp(s, "/dst/")
		a.AttemptUnpackDockerCompatibility = true
		if err := copyAction(ctx, src, nil, dest, a, nil); err != nil {
			t.Fatalf("ADD %s: %v", s, err)
		}
	}
	if got := readFile(t, filepath.Join(dest, "dst/pkg/readme")); got != "hello" {
		t.Errorf("unpacked readme = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dest, "dst/data.bin")); err == nil {
		t.Error("the archive was copied as well as unpacked")
	}
	if got := readFile(t, filepath.Join(dest, "dst/notes.tar.gz")); got != "plain text, no tar" {
		t.Errorf("notes.tar.gz = %q, want it copied as it is", got)
	}
	// COPY never unpacks.
	if err := copyAction(ctx, src, nil, dest, copyOp("/data.bin", "/cp/"), nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dest, "cp/data.bin")); got != tgz.String() {
		t.Error("COPY changed the archive")
	}
}

func TestMkfileMkdirRmSymlink(t *testing.T) {
	root := t.TempDir()
	if err := mkdirAction(root, &pb.FileActionMkDir{Path: "/app/data", Mode: 0o750, MakeParents: true, Timestamp: -1}, nil); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(root, "app/data")); st.Mode&0o777 != 0o750 {
		t.Errorf("mkdir mode %o", st.Mode&0o777)
	}
	// An existing directory is fine; a missing parent without MakeParents is not.
	if err := mkdirAction(root, &pb.FileActionMkDir{Path: "/app", Mode: 0o755, Timestamp: -1}, nil); err != nil {
		t.Errorf("mkdir of an existing directory: %v", err)
	}
	if err := mkdirAction(root, &pb.FileActionMkDir{Path: "/x/y", Mode: 0o755, Timestamp: -1}, nil); err == nil {
		t.Error("mkdir without parents: no error")
	}
	if err := mkfileAction(root, &pb.FileActionMkFile{Path: "/app/data/f", Data: []byte("one"), Mode: 0o600, Timestamp: 1e9 * 1000}, nil); err != nil {
		t.Fatal(err)
	}
	st := lstat(t, filepath.Join(root, "app/data/f"))
	if st.Mode&0o777 != 0o600 || st.Mtim.Sec != 1000 {
		t.Errorf("mkfile: mode %o mtime %d, want 600 and 1000", st.Mode&0o777, st.Mtim.Sec)
	}
	// A symlink on the path resolves inside the root, never to the host:
	// /app/link -> /etc/target writes <root>/etc/target.
	write(t, root, "etc/.keep", "", 0o644)
	if err := os.Symlink("/etc/snapbuild-worker-test-target", filepath.Join(root, "app/link")); err != nil {
		t.Fatal(err)
	}
	if err := mkfileAction(root, &pb.FileActionMkFile{Path: "/app/link", Data: []byte("new"), Mode: 0o644, Timestamp: -1}, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "etc/snapbuild-worker-test-target")); got != "new" {
		t.Errorf("mkfile through a symlink wrote %q in the root", got)
	}
	if _, err := os.Lstat("/etc/snapbuild-worker-test-target"); err == nil {
		t.Error("mkfile through a symlink wrote on the host")
	}
	if err := symlinkAction(root, &pb.FileActionSymlink{Oldpath: "data/f", Newpath: "/app/sl", Timestamp: -1}, nil); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(root, "app/sl")); err != nil || target != "data/f" {
		t.Errorf("symlink = %q, %v", target, err)
	}
	// rm: wildcards, a missing path with and without AllowNotFound.
	write(t, root, "logs/a.log", "", 0o644)
	write(t, root, "logs/b.log", "", 0o644)
	write(t, root, "logs/keep", "", 0o644)
	if err := rmAction(root, &pb.FileActionRm{Path: "/logs/*.log", AllowWildcard: true}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "logs")); len(ents) != 1 || ents[0].Name() != "keep" {
		t.Errorf("rm /logs/*.log left %v", ents)
	}
	if err := rmAction(root, &pb.FileActionRm{Path: "/nope"}); err == nil || !strings.Contains(err.Error(), "/nope") || strings.Contains(err.Error(), root) {
		t.Errorf("rm of a missing path = %v, want an error naming /nope only", err)
	}
	if err := rmAction(root, &pb.FileActionRm{Path: "/nope", AllowNotFound: true}); err != nil {
		t.Errorf("rm AllowNotFound: %v", err)
	}
}

func TestResolveOwner(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n", 0o644)
	write(t, root, "etc/group", "root:x:0:\nstaff:x:50:\n", 0o644)
	in := func(*pb.NamedUserOpt) (string, error) { return root, nil }
	byName := func(n string) *pb.UserOpt {
		return &pb.UserOpt{User: &pb.UserOpt_ByName{ByName: &pb.NamedUserOpt{Name: n}}}
	}
	byID := func(id uint32) *pb.UserOpt { return &pb.UserOpt{User: &pb.UserOpt_ByID{ByID: id}} }
	for _, c := range []struct {
		name     string
		opt      *pb.ChownOpt
		uid, gid int
		err      string
	}{
		{"name", &pb.ChownOpt{User: byName("app")}, 1000, 1001, ""},
		{"name:group", &pb.ChownOpt{User: byName("app"), Group: byName("staff")}, 1000, 50, ""},
		{"uid", &pb.ChownOpt{User: byID(7)}, 7, 7, ""},
		{"uid:gid", &pb.ChownOpt{User: byID(7), Group: byID(9)}, 7, 9, ""},
		{"unknown user", &pb.ChownOpt{User: byName("nobody")}, 0, 0, `user "nobody": no such user`},
		{"unknown group", &pb.ChownOpt{User: byID(1), Group: byName("wheel")}, 0, 0, `group "wheel": no such group`},
	} {
		u, err := resolveOwner(c.opt, in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error with %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || u.UID != c.uid || u.GID != c.gid {
			t.Errorf("%s: %+v, %v; want %d:%d", c.name, u, err, c.uid, c.gid)
		}
	}
}

// Errors name paths as the image sees them, in the path error and in
// messages that carry a host path (fsutil's "failed to chown ...").
func TestTrimRoot(t *testing.T) {
	root := "/var/lib/snapbuild/snapshots/.tmp/active-1/fs"
	inner := &os.PathError{Op: "lchown", Path: root + "/f", Err: syscall.EINVAL}
	err := trimRoot(fmt.Errorf("failed to copy file info: failed to chown %s/f: %w", root, inner), root)
	if got := err.Error(); got != "failed to copy file info: failed to chown /f: lchown /f: invalid argument" {
		t.Errorf("error = %q", got)
	}
	if !errors.Is(err, syscall.EINVAL) {
		t.Error("the trimmed error lost its cause")
	}
	if trimRoot(nil, root) != nil {
		t.Error("trimRoot(nil) is not nil")
	}
}
