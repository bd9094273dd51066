package worker

// The file actions on a directory. They follow BuildKit's file op backend
// (solver/llbsolver/file in github.com/moby/buildkit) rule for rule, so that
// a file op gives the tree BuildKit gives; the copying itself is BuildKit's
// own code, github.com/tonistiigi/fsutil/copy.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/continuity/fs"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/go-archive"
	"github.com/moby/go-archive/chrootarchive"
	"github.com/moby/go-archive/compression"
	"github.com/snapbuild/snapbuild/internal/userdb"
	copy "github.com/tonistiigi/fsutil/copy"
)

// timestamp is an action's Timestamp (ns since the Unix epoch), nil for -1
// (keep the source's, or now for new entries).
func timestamp(ns int64) *time.Time {
	if ns == -1 {
		return nil
	}
	t := time.Unix(ns/1e9, ns%1e9)
	return &t
}

// chowner returns the fsutil Chowner for owner u: nil keeps the source's
// owner (a new entry gets root's, the process's own).
func chowner(u *copy.User) copy.Chowner {
	if u == nil {
		return func(old *copy.User) (*copy.User, error) { return old, nil }
	}
	v := *u
	return func(*copy.User) (*copy.User, error) { return &v, nil }
}

// trimRoot removes the host directory root from the paths of a path error,
// and from the text of errors that name host paths in their message
// (fsutil's "failed to chown <host path>: ..."), so that errors name paths
// as the image sees them.
func trimRoot(err error, roots ...string) error {
	if err == nil {
		return nil
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		for _, r := range roots {
			if r != "" && strings.HasPrefix(pe.Path, r) {
				pe.Path = "/" + strings.TrimLeft(strings.TrimPrefix(pe.Path, r), "/")
			}
		}
	}
	msg := err.Error()
	for _, r := range roots {
		if r != "" {
			msg = strings.ReplaceAll(msg, strings.TrimRight(r, "/")+"/", "/")
		}
	}
	if msg != err.Error() {
		return &trimmedError{msg: msg, err: err}
	}
	return err
}

// trimmedError is err with its message's host paths made image paths.
type trimmedError struct {
	msg string
	err error
}

func (e *trimmedError) Error() string { return e.msg }
func (e *trimmedError) Unwrap() error { return e.err }

// mkdirAction creates a.Path in root (with its parents when MakeParents) with
// a.Mode and owner u. An existing directory is left as it is.
func mkdirAction(root string, a *pb.FileActionMkDir, u *copy.User) (err error) {
	defer func() { err = trimRoot(err, root) }()
	p, err := fs.RootPath(root, a.Path)
	if err != nil {
		return err
	}
	tm := timestamp(a.Timestamp)
	if a.MakeParents {
		_, err := copy.MkdirAll(p, os.FileMode(a.Mode)&0o777, chowner(u), tm)
		return err
	}
	if err := os.Mkdir(p, os.FileMode(a.Mode)&0o777); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return err
	}
	if err := copy.Chown(p, nil, chowner(u)); err != nil {
		return err
	}
	return copy.Utimes(p, tm)
}

// mkfileAction writes a.Data to a.Path in root with a.Mode and owner u,
// replacing whatever is there (never writing through it: the new file is
// written beside it and renamed over it). The parent must exist.
func mkfileAction(root string, a *pb.FileActionMkFile, u *copy.User) (err error) {
	defer func() { err = trimRoot(err, root) }()
	target := filepath.Join("/", a.Path)
	p, err := fs.RootPath(root, target)
	if err != nil {
		return err
	}
	if p == root {
		return &os.PathError{Op: "mkfile", Path: target, Err: syscall.EISDIR}
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-mkfile")
	if err != nil {
		return &os.PathError{Op: "mkfile", Path: p, Err: errors.Unwrap(err)}
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(a.Data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, os.FileMode(a.Mode)&0o777); err != nil {
		return err
	}
	if err := copy.Chown(tmp, nil, chowner(u)); err != nil {
		return err
	}
	if tm := timestamp(a.Timestamp); tm != nil {
		if err := os.Chtimes(tmp, *tm, *tm); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		return &os.PathError{Op: "mkfile", Path: p, Err: errors.Unwrap(err)}
	}
	return nil
}

// rmAction removes a.Path (every match, with AllowWildcard) from root and
// what is below it. A missing path is an error unless AllowNotFound. A
// symlink is removed itself, never followed out of root.
func rmAction(root string, a *pb.FileActionRm) (err error) {
	defer func() { err = trimRoot(err, root) }()
	paths := []string{a.Path}
	if a.AllowWildcard {
		paths, err = copy.ResolveWildcards(root, cleanPath(a.Path), false)
		if err != nil {
			return err
		}
	}
	for _, p := range paths {
		if err := rmPath(root, p, a.AllowNotFound); err != nil {
			return err
		}
	}
	return nil
}

func rmPath(root, src string, allowNotFound bool) error {
	src = filepath.Join("/", src)
	dir, base := filepath.Split(src)
	if base == "" {
		return errors.New("rm: the path is empty or the root")
	}
	dir, err := fs.RootPath(root, dir)
	if err != nil {
		return err
	}
	p := filepath.Join(dir, base)
	if !allowNotFound {
		// Stat, as BuildKit: a dangling symlink counts as missing.
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return os.RemoveAll(p)
}

// symlinkAction makes a.Newpath in root a symlink to a.Oldpath, owned by u.
func symlinkAction(root string, a *pb.FileActionSymlink, u *copy.User) (err error) {
	defer func() { err = trimRoot(err, root) }()
	p, err := fs.RootPath(root, filepath.Join("/", a.Newpath))
	if err != nil {
		return err
	}
	if err := os.Symlink(a.Oldpath, p); err != nil {
		return err
	}
	if err := copy.Chown(p, nil, chowner(u)); err != nil {
		return err
	}
	return copy.Utimes(p, timestamp(a.Timestamp))
}

// copyAction copies a.Src of src into a.Dest of dest as BuildKit does:
// wildcards, include and exclude patterns, directory contents, symlinks
// followed or not, mode (octal or chmod-style ModeStr), owner u (nil keeps
// the source's), timestamp, xattrs including security.capability; with
// AttemptUnpackDockerCompatibility (ADD), a source that is a tar archive
// (plain, gzip, bzip2, xz or zstd, told by content) is unpacked into the
// destination instead.
//
// When src is a local source read in place (local set, src its directory),
// the source's patterns apply too: a wildcard match or a required path they
// leave out is not there, and the copy of each match carries them,
// rewritten relative to the match (localRef.under), next to the copy's own
// patterns. Where they cannot be carried over exactly, copyAction returns
// errNotInPlace before it writes anything, and the caller copies from the
// source's selection instead.
func copyAction(ctx context.Context, src string, local *localRef, dest string, a *pb.FileActionCopy, u *copy.User) (err error) {
	defer func() { err = trimRoot(err, src, dest) }()
	srcPath := cleanPath(a.Src)
	destPath := cleanPath(a.Dest)
	if !a.CreateDestPath {
		p, err := fs.RootPath(dest, filepath.Join("/", a.Dest))
		if err != nil {
			return err
		}
		if _, err := os.Lstat(filepath.Dir(p)); err != nil {
			return fmt.Errorf("the destination's parent directory: %w", err)
		}
	}
	if local != nil && !local.filtered() {
		local = nil // the directory is the selection
	}
	if len(a.IncludePatterns) > 0 {
		for _, req := range a.RequiredPaths {
			rp := filepath.Join(srcPath, req)
			if local != nil {
				f, ok := local.under(rp)
				if !ok {
					return errNotInPlace
				}
				if f.missing {
					return fmt.Errorf("required path %s: %w", req, os.ErrNotExist)
				}
			}
			p, err := fs.RootPath(src, rp)
			if err != nil {
				return err
			}
			if _, err := os.Lstat(p); err != nil {
				return fmt.Errorf("required path %s: %w", req, err)
			}
		}
	}
	tm := timestamp(a.Timestamp)
	opt := func(f copyFilter) func(ci *copy.CopyInfo) {
		return func(ci *copy.CopyInfo) {
			ci.IncludePatterns = a.IncludePatterns
			if f.include != nil {
				ci.IncludePatterns = f.include // a.IncludePatterns is empty (see filterFor)
			}
			ci.ExcludePatterns = append(slices.Clone(f.exclude), a.ExcludePatterns...)
			ci.Chown = chowner(u)
			ci.Utime = tm
			if a.ModeStr != "" {
				ci.ModeStr = a.ModeStr
			} else if m := int(a.Mode); m != -1 {
				ci.Mode = &m
			}
			ci.CopyDirContents = a.DirCopyContents
			ci.FollowLinks = a.FollowSymlink
			ci.AlwaysReplaceExistingDestPaths = a.AlwaysReplaceExistingDestPaths
			ci.XAttrErrorHandler = xattrError
		}
	}
	matches := []string{srcPath}
	if a.AllowWildcard {
		matches, err = copy.ResolveWildcards(src, srcPath, a.FollowSymlink)
		if err != nil {
			return err
		}
	}
	// The source's patterns, per match, all known before anything is
	// written.
	filters := make([]copyFilter, len(matches))
	if local != nil {
		wildcard := a.AllowWildcard && strings.ContainsAny(srcPath, "*?[")
		if wildcard {
			// The directory the wildcard is resolved in must be there.
			dir := srcPath[:strings.IndexAny(srcPath, "*?[")]
			if f, ok := local.under(path.Dir(dir + "x")); !ok {
				return errNotInPlace
			} else if f.missing {
				return errSourceNotFound(srcPath)
			}
		}
		kept := matches[:0]
		for _, s := range matches {
			f, ok := filterFor(local, s, a)
			if !ok {
				return errNotInPlace
			}
			if f.missing && wildcard {
				continue // not in the source: no match
			}
			filters[len(kept)] = f
			kept = append(kept, s)
		}
		matches = kept
	}
	if a.AllowWildcard && len(matches) == 0 {
		if a.AllowEmptyWildcard {
			return nil
		}
		return errSourceNotFound(srcPath)
	}
	for i, s := range matches {
		if filters[i].missing {
			return errSourceNotFound(s)
		}
		p, err := fs.RootPath(src, s)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return errSourceNotFound(s)
		}
		if a.AttemptUnpackDockerCompatibility {
			ok, err := unpackArchive(src, s, dest, destPath, u, tm)
			if err != nil {
				return err
			}
			if ok {
				continue
			}
		}
		if err := copy.Copy(ctx, src, s, dest, destPath, opt(filters[i])); err != nil {
			return err
		}
	}
	return nil
}

// errNotInPlace is copyAction's answer when a local source's patterns
// cannot be carried over to the copy: the caller copies from the source's
// selection (localRef.selection) instead.
var errNotInPlace = errors.New("the local source's patterns cannot be applied in place")

// filterFor returns what a copy of s (a match of a.Src) from local applies
// for the source's patterns, with ok=false where they cannot be combined
// with the copy's own: both have include patterns (the copy would need
// the intersection), or the copy's exclude patterns hold an exclusion
// ("!"), which, after the source's, could bring back what the source
// leaves out.
func filterFor(local *localRef, s string, a *pb.FileActionCopy) (copyFilter, bool) {
	f, ok := local.under(s)
	if !ok || f.missing {
		return f, ok
	}
	if f.include != nil && len(a.IncludePatterns) > 0 {
		return f, false
	}
	if len(f.exclude) > 0 {
		for _, p := range a.ExcludePatterns {
			if strings.HasPrefix(p, "!") {
				return f, false
			}
		}
	}
	return f, true
}

// errSourceNotFound is the error of a copy whose source path matches nothing
// in the filesystem it copies from, as BuildKit's ("/x": not found), with
// where to look: a COPY or ADD without --from reads the build context, whose
// .dockerignore may have left the file out.
func errSourceNotFound(p string) error {
	return fmt.Errorf("%q: not found in the copy's source (the build context, or the --from stage or image): check the path, and that .dockerignore does not exclude it", p)
}

// xattrError decides what a copy does when an xattr cannot be copied: an
// xattr the destination cannot take (trusted.*, security.selinux, in a user
// namespace) is dropped, as BuildKit drops it; file capabilities
// (security.capability) must survive every copy, so losing them is an error.
func xattrError(dst, src, key string, err error) error {
	if key == "security.capability" {
		return fmt.Errorf("copying the file capabilities of %s: %w", src, err)
	}
	return nil
}

// unpackArchive unpacks the file srcRoot/src into destRoot/dest when it is a
// tar archive, compressed or not (told by content, not by name, as Docker's
// ADD), and reports whether it was one. Entries get owner u when set; their
// xattrs are kept where possible.
func unpackArchive(srcRoot, src, destRoot, dest string, u *copy.User, tm *time.Time) (bool, error) {
	p, err := fs.RootPath(srcRoot, src)
	if err != nil {
		return false, err
	}
	ok, err := isArchive(p)
	if err != nil || !ok {
		return false, err
	}
	d, err := fs.RootPath(destRoot, dest)
	if err != nil {
		return false, err
	}
	if _, err := copy.MkdirAll(d, 0o755, chowner(u), tm); err != nil {
		return false, err
	}
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	opts := &archive.TarOptions{BestEffortXattrs: true}
	if u != nil {
		opts.ChownOpts = &archive.ChownOpts{UID: u.UID, GID: u.GID}
	}
	if err := chrootarchive.Untar(f, d, opts); err != nil {
		return false, fmt.Errorf("unpacking %s: %w", src, err)
	}
	return true, nil
}

// isArchive reports whether the regular file p holds a tar stream, plain or
// compressed.
func isArchive(p string) (bool, error) {
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return false, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	r, err := compression.DecompressStream(f)
	if err != nil {
		// A compressed file whose decompressor (xz) is missing: say so
		// rather than copying the archive as it is.
		var ee interface{ Unwrap() error }
		if errors.As(err, &ee) && strings.Contains(err.Error(), "executable file not found") {
			return false, fmt.Errorf("%s looks compressed, but its decompressor is missing: %w", filepath.Base(p), err)
		}
		return false, nil
	}
	defer r.Close()
	_, err = tar.NewReader(r).Next()
	return err == nil, nil
}

// cleanPath makes s absolute and clean, keeping a trailing "/" or "/." that
// tells the copy to treat the destination as a directory (BuildKit's rule).
func cleanPath(s string) string {
	s2 := filepath.Join("/", s)
	if strings.HasSuffix(s, "/.") {
		if s2 != "/" {
			s2 += "/"
		}
		return s2 + "."
	}
	if strings.HasSuffix(s, "/") && s2 != "/" {
		s2 += "/"
	}
	return s2
}

// resolveOwner turns a ChownOpt into ids, BuildKit's rules: a user by id
// sets uid and gid to it; a user by name takes uid and primary gid from
// /etc/passwd; a group sets the gid, by id or from /etc/group. The files are
// read in the filesystem lookupRoot returns for the name's input ("" for an
// empty filesystem). A name that is not found is an error (BuildKit falls
// back to 0 there; Docker's builder errs, and so do we rather than give
// files to root silently).
func resolveOwner(c *pb.ChownOpt, lookupRoot func(*pb.NamedUserOpt) (string, error)) (*copy.User, error) {
	var us copy.User
	if c.User != nil {
		switch x := c.User.User.(type) {
		case *pb.UserOpt_ByName:
			root, err := lookupRoot(x.ByName)
			if err != nil {
				return nil, fmt.Errorf("user %q: %w", x.ByName.Name, err)
			}
			u, ok, err := userdb.LookupPasswd(root, x.ByName.Name)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("user %q: no such user in the image's /etc/passwd: create it first (RUN useradd) or give a numeric uid", x.ByName.Name)
			}
			us.UID, us.GID = u.Uid, u.Gid
		case *pb.UserOpt_ByID:
			us.UID, us.GID = int(x.ByID), int(x.ByID)
		}
	}
	if c.Group != nil {
		switch x := c.Group.User.(type) {
		case *pb.UserOpt_ByName:
			root, err := lookupRoot(x.ByName)
			if err != nil {
				return nil, fmt.Errorf("group %q: %w", x.ByName.Name, err)
			}
			g, ok, err := userdb.LookupGroup(root, x.ByName.Name)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("group %q: no such group in the image's /etc/group: create it first (RUN groupadd) or give a numeric gid", x.ByName.Name)
			}
			us.GID = g.Gid
		case *pb.UserOpt_ByID:
			us.GID = int(x.ByID)
		}
	}
	return &us, nil
}
