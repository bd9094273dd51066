package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
	"github.com/opencontainers/go-digest"
	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/worker"
	fscopy "github.com/tonistiigi/fsutil/copy"
)

// contextFile is one file of a layer's build context, at its path relative to
// the context root (which COPY . / puts at "/").
type contextFile struct {
	path   string // relative to the context root, "/"-separated
	source string // absolute local path (symlinks resolved)
	mode   os.FileMode
	digest digest.Digest
}

// ContextPaths lists the files of l's build context as a build copies
// them: paths relative to the context root ("/"-separated), sorted. Errors
// are resolveContext's.
func ContextPaths(l *modal.Layer) ([]string, error) {
	files, err := resolveContext(l)
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.path
	}
	return paths, err
}

// resolveContext lists, stats and hashes the files a layer copies, sorted by
// path. Errors name the local path, as Modal's FileNotFoundError does.
func resolveContext(l *modal.Layer) ([]contextFile, error) {
	var files []contextFile
	for _, in := range l.Context {
		var err error
		if in.Dir {
			files, err = addDir(files, in)
		} else {
			files, err = addFile(files, in)
		}
		if err != nil {
			return nil, &modal.InvalidError{Method: l.Method, Message: err.Error()}
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	for i := range files {
		d, err := hashFile(files[i].source)
		if err != nil {
			return nil, &modal.InvalidError{Method: l.Method, Message: err.Error()}
		}
		files[i].digest = d
	}
	return files, nil
}

// contextSource is the directory a layer's build context source
// (local://context) reads, and the patterns its source op carries.
type contextSource struct {
	dir string
	// include and exclude are the source op's patterns
	// (local.includepattern, local.excludepatterns): the COPY and ADD
	// sources a Modal build reads, and the ignore file's patterns.
	include, exclude []string
	release          func()
}

// localContext returns the build context of l for the worker, reading as
// little as it can:
//
//   - a context that is one directory at "/" (from_dockerfile, a
//     dockerfile_commands context_dir) whose ignore rules are patterns is
//     that directory itself, read in place by the worker through patterns
//     that select what resolveContext selected: the COPY and ADD sources
//     (include) and the ignore file's patterns (exclude), as docker build
//     sends a context through its .dockerignore. Nothing is copied.
//   - anything else is a directory made of the files resolveContext
//     selected (materializeContext, hard links where it can): Modal's
//     add_local_* and context_files put files at their paths in the image,
//     which no one directory holds; an ignore= that is a function or an
//     inverted matcher is no pattern list; and a symlink of the context
//     that leads out of it is copied as the file it leads to, which the
//     directory in place would hold as a link.
//
// tmp is where a made directory goes ("" for the system's); release
// removes it.
func localContext(ctx context.Context, l *modal.Layer, files []contextFile, tmp string) (contextSource, error) {
	if cs, ok, err := contextInPlace(l, files); err != nil || ok {
		return cs, err
	}
	dir, err := os.MkdirTemp(tmp, "context-")
	if err != nil {
		return contextSource{}, err
	}
	if err := materializeContext(ctx, l, files, dir); err != nil {
		os.RemoveAll(dir)
		return contextSource{}, err
	}
	return contextSource{dir: dir, release: func() { os.RemoveAll(dir) }}, nil
}

// contextInPlace returns the build context of l as its directory and
// patterns, when localContext's first case holds.
func contextInPlace(l *modal.Layer, files []contextFile) (contextSource, bool, error) {
	if len(l.Context) != 1 || !l.Context[0].Dir || l.Context[0].Remote != "/" {
		return contextSource{}, false, nil
	}
	in := l.Context[0]
	var exclude []string
	switch m := in.Ignore.(type) {
	case nil:
	case *modal.FilePatternMatcher:
		if s := modal.SpecOf(m); s.Inverted || s.Keep != nil {
			return contextSource{}, false, nil
		}
		var err error
		if exclude, err = m.Patterns(); err != nil {
			return contextSource{}, false, err
		}
	default:
		return contextSource{}, false, nil
	}
	abs, err := modal.AbsLocal(in.Local)
	if err != nil {
		return contextSource{}, false, err
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return contextSource{}, false, err
	}
	include := in.Include
	if slices.Contains(include, "**") {
		include = nil // every file
	}
	selected := make(map[string]bool, len(files))
	for _, f := range files {
		selected[f.path] = true
	}
	for _, f := range files {
		// resolveContext resolved links: a file whose source is not at
		// its own path is a link. It must lead inside the context, and
		// its target comes along (a COPY of the link follows it, and the
		// source's key must cover what it leads to).
		if filepath.Join(root, filepath.FromSlash(f.path)) == f.source {
			continue
		}
		rel, err := filepath.Rel(root, f.source)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return contextSource{}, false, nil
		}
		rel = filepath.ToSlash(rel)
		if selected[rel] {
			continue
		}
		if include == nil {
			return contextSource{}, false, nil // the ignore file leaves the target out
		}
		if in.Ignore != nil {
			if out, err := in.Ignore.Match(rel); err != nil || out {
				return contextSource{}, false, err
			}
		}
		selected[rel] = true
		include = append(slices.Clone(include), escapePattern(rel))
	}
	return contextSource{dir: root, include: include, exclude: exclude, release: func() {}}, true, nil
}

// escapePattern returns a pattern that matches the path p only.
func escapePattern(p string) string {
	var sb strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// materializeContext writes the context files of l that resolveContext
// selected into dir, as the build context's local source: hard links
// where the store shares the file system, else copies (modes, owners and
// xattrs kept); a symlink of the context directory as a symlink.
// Directories take the mode and owner of the context directory's own,
// where l has one.
func materializeContext(ctx context.Context, l *modal.Layer, files []contextFile, dir string) error {
	var root string
	for _, in := range l.Context {
		if in.Dir && in.Remote == "/" {
			if r, err := filepath.EvalSymlinks(in.Local); err == nil {
				root = r
			}
		}
	}
	type dirMode struct {
		path string
		mode os.FileMode
	}
	var modes []dirMode // set last: a directory stays writable until filled
	made := map[string]bool{"": true}
	var mkdirs func(rel string) error
	mkdirs = func(rel string) error {
		if made[rel] {
			return nil
		}
		if err := mkdirs(parentOf(rel)); err != nil {
			return err
		}
		made[rel] = true
		p := filepath.Join(dir, filepath.FromSlash(rel))
		mode := os.FileMode(0o755)
		var fi os.FileInfo
		if root != "" {
			if s, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err == nil && s.IsDir() {
				fi, mode = s, s.Mode().Perm()
			}
		}
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		if fi != nil {
			chownLike(p, fi)
		}
		modes = append(modes, dirMode{p, mode})
		return nil
	}
	files = slices.Clone(files)
	selected := map[string]bool{}
	for _, f := range files {
		selected[strings.TrimPrefix(path.Clean("/"+f.path), "/")] = true
	}
	for i := 0; i < len(files); i++ { // symlinks add their targets
		f := files[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := strings.TrimPrefix(path.Clean("/"+f.path), "/")
		if err := mkdirs(parentOf(rel)); err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if root != "" {
			// A symlink of the context directory stays a symlink, as in
			// Docker's build context (Modal's upload would follow it);
			// COPY follows a symlink that a source names itself.
			// Its target, inside the context, comes along: COPY of the
			// link alone must find it. A link that leads out of the
			// context is copied as the file it leads to (Docker's context
			// would hold a dangling link).
			orig := filepath.Join(root, filepath.FromSlash(rel))
			if fi, err := os.Lstat(orig); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				trel, err := filepath.Rel(root, f.source)
				if err == nil && trel != ".." && !strings.HasPrefix(trel, "../") {
					target, err := os.Readlink(orig)
					if err != nil {
						return err
					}
					if err := os.Symlink(target, dst); err != nil {
						return err
					}
					trel = filepath.ToSlash(trel)
					if !selected[trel] {
						selected[trel] = true
						files = append(files, contextFile{path: trel, source: f.source, mode: f.mode})
					}
					continue
				}
			}
		}
		if err := os.Link(f.source, dst); err == nil {
			continue
		}
		if err := fscopy.Copy(ctx, filepath.Dir(f.source), filepath.Base(f.source), filepath.Dir(dst), filepath.Base(dst)); err != nil {
			return fmt.Errorf("context file %s: %w", f.source, err)
		}
	}
	for i := len(modes) - 1; i >= 0; i-- {
		if err := os.Chmod(modes[i].path, modes[i].mode); err != nil {
			return err
		}
	}
	return nil
}

// chownLike gives p the owner of fi, where the process may (as root, or a
// user whose own files they are); otherwise p keeps the process's.
func chownLike(p string, fi os.FileInfo) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		_ = os.Lchown(p, int(st.Uid), int(st.Gid))
	}
}

// parentOf returns the parent of a slash-separated relative path, "" for
// the root.
func parentOf(rel string) string {
	d := path.Dir(rel)
	if d == "." || d == "/" {
		return ""
	}
	return d
}

func addFile(files []contextFile, in modal.ContextInput) ([]contextFile, error) {
	abs, err := modal.AbsLocal(in.Local)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("local file %s does not exist", abs)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("local file %s does not exist", abs)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("local file %s is not a regular file: use add_local_dir (AddLocalDir) for directories", abs)
	}
	return append(files, contextFile{path: strings.TrimPrefix(in.Remote, "/"), source: real, mode: fi.Mode().Perm() | fi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)}), nil
}

func addDir(files []contextFile, in modal.ContextInput) ([]contextFile, error) {
	abs, err := modal.AbsLocal(in.Local)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("local dir %s does not exist", abs)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("local dir %s is not a directory", abs)
	}
	var inc *patternmatcher.PatternMatcher
	if in.Include != nil {
		if inc, err = patternmatcher.New(in.Include); err != nil {
			return nil, fmt.Errorf("COPY sources %q: %w", in.Include, err)
		}
	}
	// A local_path that is itself a symlink to a directory is walked through
	// (os.walk does), only symlinks below it are not.
	walkRoot, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(walkRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == walkRoot || d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(walkRoot, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if inc != nil {
			if ok, err := inc.MatchesOrParentMatches(rel); err != nil || !ok {
				return err
			}
		}
		var st fs.FileInfo
		var statErr error
		if d.Type().IsRegular() {
			st, statErr = d.Info()
		} else {
			st, statErr = os.Stat(p) // follows file symlinks, as Modal's os.walk upload does
		}
		if statErr == nil && st.IsDir() {
			return nil // a directory symlink: os.walk lists it as a directory and does not descend
		}
		if in.Ignore != nil {
			ignored, err := in.Ignore.Match(rel)
			if err != nil {
				return err
			}
			if ignored {
				return nil
			}
		}
		if statErr != nil {
			return fmt.Errorf("%s: %w (a dangling symlink?)", p, statErr)
		}
		if !st.Mode().IsRegular() {
			return nil // sockets, fifos, devices: nothing to upload
		}
		// The walk is below the resolved root and enters no linked
		// directory: only a link itself leads elsewhere.
		real := p
		if d.Type()&fs.ModeSymlink != 0 {
			if real, err = filepath.EvalSymlinks(p); err != nil {
				return err
			}
		}
		files = append(files, contextFile{
			path:   strings.TrimPrefix(path.Join(in.Remote, rel), "/"),
			source: real,
			mode:   st.Mode().Perm() | st.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky),
		})
		return nil
	})
	return files, err
}

// hashFile returns the sha256 of the file p.
func hashFile(p string) (digest.Digest, error) { return worker.HashFile(p) }

// copyInto writes f at dest inside rootfs, resolving dest's directories
// within rootfs (a symlink in the image cannot lead outside it). Missing
// parent directories are made 0755 root:root. The content is re-hashed
// while copied: a file changed since the build started is an error, as
// Modal's build validation makes it.
func copyInto(rootfs, dest string, f contextFile) error {
	parent, err := mkdirAllIn(rootfs, path.Dir(dest))
	if err != nil {
		return err
	}
	target := filepath.Join(parent, path.Base(dest))
	if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
		return fmt.Errorf("cannot copy a file over the directory %s", dest)
	}
	in, err := os.Open(f.source)
	if err != nil {
		return err
	}
	defer in.Close()
	os.Remove(target) // replace a file or symlink, never write through it
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := digest.SHA256.Digester()
	if _, err := io.Copy(io.MultiWriter(out, h.Hash()), in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if h.Digest() != f.digest {
		return fmt.Errorf("%s was modified during build process", f.source)
	}
	if err := os.Chown(target, 0, 0); err != nil {
		return err
	}
	if err := os.Chmod(target, f.mode); err != nil {
		return err
	}
	if st, err := os.Stat(f.source); err == nil {
		_ = os.Chtimes(target, st.ModTime(), st.ModTime())
	}
	return nil
}

// mkdirAllIn makes dir (absolute, in the image) inside rootfs like mkdir -p,
// resolving symlinks within rootfs. Directories it creates are 0755 and owned
// by the process (root in the image), whatever the umask. It returns the
// directory's host path.
func mkdirAllIn(rootfs, dir string) (string, error) {
	target, err := securejoin.SecureJoin(rootfs, dir)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(rootfs, target)
	if err != nil {
		return "", err
	}
	cur := rootfs
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." || part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		err := os.Mkdir(cur, 0o755)
		switch {
		case err == nil:
			if err := os.Chmod(cur, 0o755); err != nil {
				return "", err
			}
		case errors.Is(err, fs.ErrExist):
			if fi, err := os.Stat(cur); err != nil || !fi.IsDir() {
				return "", fmt.Errorf("%s exists in the image and is not a directory", dir)
			}
		default:
			return "", err
		}
	}
	return target, nil
}
