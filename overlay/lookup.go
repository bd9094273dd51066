package overlay

import (
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// A lower stack lists, top-most first, the lower directories that make up one
// directory of the merged lower view: the directories at the same relative
// path in each lower, cut short where overlayfs would stop merging (a
// whiteout, a non-directory, or an opaque directory, which is kept itself but
// hides the rest). The stack of the root is the list of lowers.
//
// Diff keeps one stack per directory on its walk, so every lookup in the
// lowers is a handful of lstat calls on names the upper dir holds.

// lowerEntry is the entry that a path resolves to in the merged lowers.
type lowerEntry struct {
	path string // absolute path in the lower that provides it
	st   unix.Stat_t
}

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// lstatLower stats dir/name; found is false when there is no such entry.
func lstatLower(dir, name string, st *unix.Stat_t) (path string, found bool, err error) {
	path = dir + "/" + name
	switch err := unix.Lstat(path, st); err {
	case nil:
		return path, true, nil
	case unix.ENOENT, unix.ENOTDIR:
		return path, false, nil
	default:
		return path, false, fmt.Errorf("lstat %s: %w", path, err)
	}
}

// lookupLower returns the merged-lower entry called name in the directory
// whose stack is given, or nil when there is none (or it is whited out).
func lookupLower(stack []string, name string) (*lowerEntry, error) {
	var st unix.Stat_t
	for _, dir := range stack {
		path, found, err := lstatLower(dir, name, &st)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		if isWhiteout(&st) {
			return nil, nil
		}
		return &lowerEntry{path: path, st: st}, nil
	}
	return nil, nil
}

// descendLower is lookupLower that also returns the stack of name as a
// directory (nil when it is not a directory in the merged lowers).
func descendLower(stack []string, name, opaqueName string) (*lowerEntry, []string, error) {
	var (
		first *lowerEntry
		sub   []string
		st    unix.Stat_t
	)
	for _, dir := range stack {
		path, found, err := lstatLower(dir, name, &st)
		if err != nil {
			return nil, nil, err
		}
		if !found {
			continue
		}
		if isWhiteout(&st) {
			break // deleted here: nothing below shows through
		}
		if first == nil {
			first = &lowerEntry{path: path, st: st}
		}
		if !isDir(&st) {
			break // a non-directory hides everything below it
		}
		sub = append(sub, path)
		opaque, err := isOpaque(path, opaqueName)
		if err != nil {
			return nil, nil, err
		}
		if opaque {
			break
		}
	}
	return first, sub, nil
}

// lookupPath resolves rel (slash-separated, relative to the lowers' roots) in
// the merged view of lowers without mounting them; nil means it does not
// exist there.
func lookupPath(lowers []string, rel, opaqueName string) (*lowerEntry, error) {
	comps := strings.Split(rel, "/")
	stack := lowers
	for _, c := range comps[:len(comps)-1] {
		_, sub, err := descendLower(stack, c, opaqueName)
		if err != nil || len(sub) == 0 {
			return nil, err
		}
		stack = sub
	}
	return lookupLower(stack, comps[len(comps)-1])
}

// cleanLowers returns the lowers as cleaned absolute paths after checking
// that each is a directory.
func cleanLowers(lowers []string) ([]string, error) {
	out := make([]string, len(lowers))
	for i, l := range lowers {
		var st unix.Stat_t
		if err := unix.Stat(l, &st); err != nil {
			return nil, fmt.Errorf("lower %d (%s): %w", i, l, err)
		}
		if !isDir(&st) {
			return nil, fmt.Errorf("lower %d (%s): not a directory", i, l)
		}
		abs, err := filepath.Abs(l)
		if err != nil {
			return nil, fmt.Errorf("lower %d (%s): %w", i, l, err)
		}
		out[i] = strings.TrimSuffix(abs, "/")
	}
	return out, nil
}
