package snapbuild

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
	"github.com/opencontainers/go-digest"
)

// contextInput is a local file or directory that a layer copies in.
type contextInput struct {
	local  string  // local path as given
	remote string  // absolute path in the image
	dir    bool    // AddLocalDir: copy the directory's contents
	ignore Matcher // files to leave out (paths relative to local); nil leaves none out
	// include, when set, selects the files to take (COPY source patterns,
	// matched with their parent directories); nil takes all.
	include []string
}

// contextFile is one file of a layer's build context, at its path relative to
// the context root (which COPY . / puts at "/").
type contextFile struct {
	path   string // relative to the context root, "/"-separated
	source string // absolute local path (symlinks resolved)
	mode   os.FileMode
	digest digest.Digest
}

// resolveContext lists, stats and hashes the files a layer copies, sorted by
// path. Errors name the local path, as Modal's FileNotFoundError does.
func resolveContext(l *layer) ([]contextFile, error) {
	var files []contextFile
	for _, in := range l.context {
		var err error
		if in.dir {
			files, err = addDir(files, in)
		} else {
			files, err = addFile(files, in)
		}
		if err != nil {
			return nil, &InvalidError{Method: l.method, Message: err.Error()}
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	for i := range files {
		d, err := hashFile(files[i].source)
		if err != nil {
			return nil, &InvalidError{Method: l.method, Message: err.Error()}
		}
		files[i].digest = d
	}
	return files, nil
}

func addFile(files []contextFile, in contextInput) ([]contextFile, error) {
	abs, err := absLocal(in.local)
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
	return append(files, contextFile{path: strings.TrimPrefix(in.remote, "/"), source: real, mode: fi.Mode().Perm() | fi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)}), nil
}

func addDir(files []contextFile, in contextInput) ([]contextFile, error) {
	abs, err := absLocal(in.local)
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
	if in.include != nil {
		if inc, err = patternmatcher.New(in.include); err != nil {
			return nil, fmt.Errorf("COPY sources %q: %w", in.include, err)
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
		st, statErr := os.Stat(p) // follows file symlinks, as Modal's os.walk upload does
		if statErr == nil && st.IsDir() {
			return nil // a directory symlink: os.walk lists it as a directory and does not descend
		}
		if in.ignore != nil {
			ignored, err := in.ignore.Match(rel)
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
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return err
		}
		files = append(files, contextFile{
			path:   strings.TrimPrefix(path.Join(in.remote, rel), "/"),
			source: real,
			mode:   st.Mode().Perm() | st.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky),
		})
		return nil
	})
	return files, err
}

func hashFile(p string) (digest.Digest, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return digest.SHA256.FromReader(f)
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

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
