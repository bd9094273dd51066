// Package userdb reads an image's /etc/passwd and /etc/group, resolving a
// Docker USER value ("name", "uid", "name:group", "uid:gid") to the ids a
// process runs as, as runc and BuildKit do (github.com/moby/sys/user). The
// build's exec ops, file ops' owners by name and `snapbuild run` use it, so
// a USER means the same thing in all three.
package userdb

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
)

// MaxFileSize bounds the /etc/passwd and /etc/group files read (BuildKit's
// limit).
const MaxFileSize = 10 << 20

// Open opens the passwd- or group-format file name inside root, resolving
// symlinks within root. A missing file (or an empty filesystem, root "") is
// (nil, nil).
func Open(root, name string) (io.ReadCloser, error) {
	if root == "" {
		return nil, nil
	}
	p, err := securejoin.SecureJoin(root, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if st.Size() > MaxFileSize {
		f.Close()
		return nil, fmt.Errorf("%s is larger than %d bytes", name, MaxFileSize)
	}
	return f, nil
}

// LookupPasswd finds user name in root's /etc/passwd.
func LookupPasswd(root, name string) (user.User, bool, error) {
	f, err := Open(root, "/etc/passwd")
	if err != nil || f == nil {
		return user.User{}, false, err
	}
	defer f.Close()
	us, err := user.ParsePasswdFilter(f, func(u user.User) bool { return u.Name == name })
	if err != nil {
		return user.User{}, false, fmt.Errorf("/etc/passwd: %w", err)
	}
	if len(us) == 0 {
		return user.User{}, false, nil
	}
	return us[0], true, nil
}

// LookupGroup finds group name in root's /etc/group.
func LookupGroup(root, name string) (user.Group, bool, error) {
	f, err := Open(root, "/etc/group")
	if err != nil || f == nil {
		return user.Group{}, false, err
	}
	defer f.Close()
	gs, err := user.ParseGroupFilter(f, func(g user.Group) bool { return g.Name == name })
	if err != nil {
		return user.Group{}, false, fmt.Errorf("/etc/group: %w", err)
	}
	if len(gs) == 0 {
		return user.Group{}, false, nil
	}
	return gs[0], true, nil
}

// ExecUser resolves a process's user ("", "name", "uid", "name:group",
// "uid:gid", as Docker's USER) against root's /etc/passwd and /etc/group,
// as runc and BuildKit do (github.com/moby/sys/user): a name must exist, a
// numeric uid need not; without a group, the user's primary group (0 for a
// uid not in passwd). It returns the uid, the gid and the supplementary
// groups of the user, and the home directory.
func ExecUser(root, spec string) (*user.ExecUser, error) {
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	passwd, err := Open(root, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	if passwd != nil {
		defer passwd.Close()
	}
	group, err := Open(root, "/etc/group")
	if err != nil {
		return nil, err
	}
	if group != nil {
		defer group.Close()
	}
	// GetExecUser wants nil readers (not typed nils) for missing files.
	var pr, gr io.Reader
	if passwd != nil {
		pr = passwd
	}
	if group != nil {
		gr = group
	}
	u, err := user.GetExecUser(spec, defaults, pr, gr)
	if err != nil {
		return nil, fmt.Errorf("user %q: %w (in the image's /etc/passwd and /etc/group)", spec, err)
	}
	return u, nil
}
