package worker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/tonistiigi/fsutil"
)

// localRef is what a local:// source op reads: the directory registered
// with AddLocal, read in place, narrowed by the op's include and exclude
// patterns (local.includepattern, local.excludepatterns), as BuildKit's
// local source narrows what it syncs. Nothing is copied when the source is
// made: a copy from it applies the patterns while it reads (see under),
// and only a reader that needs the selection as a directory of its own
// (a bind mount, a cache seed, a merge or diff input, or a copy whose
// patterns cannot be carried over, see under) gets a filtered copy, made
// once per localRef. A symbolic link the patterns select that a copy
// follows (COPY link) leads to its target in the directory even where the
// patterns leave the target out, as a link in snapbuild's build context
// always has (BuildKit's synced context would hold a dangling link).
type localRef struct {
	dir    string
	filter *fsutil.FilterOpt
	inc    *patternmatcher.PatternMatcher // nil: everything
	exc    *patternmatcher.PatternMatcher // nil: nothing

	once   sync.Once
	copied string // the filtered copy, once made
	err    error
}

// newLocalRef compiles the patterns of a local source.
func newLocalRef(dir string, filter *fsutil.FilterOpt) (*localRef, error) {
	l := &localRef{dir: dir, filter: filter}
	var err error
	if len(filter.IncludePatterns) > 0 {
		if l.inc, err = patternmatcher.New(filter.IncludePatterns); err != nil {
			return nil, fmt.Errorf("include patterns %q: %w", filter.IncludePatterns, err)
		}
	}
	if len(filter.ExcludePatterns) > 0 {
		if l.exc, err = patternmatcher.New(filter.ExcludePatterns); err != nil {
			return nil, fmt.Errorf("exclude patterns %q: %w", filter.ExcludePatterns, err)
		}
	}
	return l, nil
}

// filtered reports whether the op's patterns leave anything out.
func (l *localRef) filtered() bool {
	return l.inc != nil || l.exc != nil
}

// selection returns a directory holding what the source selects: the
// registered directory itself when no pattern applies, else a copy of the
// selected entries (copyLocal: owners, modes, xattrs and mtimes kept) made
// under the worker's tmp/ on first use and kept until the Worker is closed.
func (l *localRef) selection(ctx context.Context, w *Worker) (string, error) {
	if !l.filtered() {
		return l.dir, nil
	}
	l.once.Do(func() {
		d, err := w.tempDir("local-")
		if err != nil {
			l.err = err
			return
		}
		if err := copyLocal(ctx, l.dir, d, l.filter); err != nil {
			l.err = fmt.Errorf("reading local source %s: %w", l.dir, err)
			return
		}
		l.copied = d
	})
	return l.copied, l.err
}

// copyFilter is what a copy from a local source in place applies besides
// the copy's own patterns: the source's patterns rewritten relative to the
// copied path, which fsutil's copy matches its patterns against.
type copyFilter struct {
	include []string // nil: no restriction
	exclude []string
	// missing is set when the source's patterns leave the copied path
	// itself out: the copy finds nothing, as in BuildKit, where the
	// excluded path is absent from the synced context.
	missing bool
}

// under returns the filter a copy of the path p (slash-separated, relative
// to the source's root; "" or "/" for the root) applies to carry the
// source's patterns, or ok=false when they cannot be rewritten relative to
// p exactly: a "**" other than a leading "**/" before a single component,
// or an include pattern that is an exclusion ("!"). The caller then copies
// from the selection instead.
//
// Whether p itself is selected is decided as fsutil's filtered walk
// decides it (patternmatcher's MatchesUsingParentResults, component by
// component). The patterns for what lies below p are rewritten component
// by component: one whose leading components match p's is cut to the
// rest; one that matches p or a parent of p (and so, .dockerignore's rule,
// everything below) becomes "*", whose parent matches cover every depth;
// one that diverges from p is dropped, as it matches nothing the copy
// reads.
func (l *localRef) under(p string) (f copyFilter, ok bool) {
	pc := components(p)
	if len(pc) == 0 {
		// The root: the copy matches paths as the source does.
		f.include, f.exclude = l.filter.IncludePatterns, l.filter.ExcludePatterns
		return f, true
	}
	if l.inc != nil {
		in, err := matchPath(l.inc, pc)
		if err != nil {
			return f, false
		}
		if !in {
			var inc []string
			for _, pat := range l.inc.Patterns() {
				rest, whole, ok := rewrite(pat.String(), pc)
				if !ok || whole || pat.Exclusion() {
					return f, false
				}
				if rest != "" {
					inc = append(inc, rest)
				}
			}
			if len(inc) == 0 {
				f.missing = true
				return f, true
			}
			f.include = inc
		}
	}
	if l.exc != nil {
		out, err := matchPath(l.exc, pc)
		if err != nil {
			return f, false
		}
		if out {
			// Below an excluded directory only an exclusion brings
			// entries back.
			fi, err := os.Stat(filepath.Join(l.dir, filepath.FromSlash(strings.Join(pc, "/"))))
			if !l.exc.Exclusions() || err != nil || !fi.IsDir() {
				f.missing = true
				return f, true
			}
		}
		for _, pat := range l.exc.Patterns() {
			rest, whole, ok := rewrite(pat.String(), pc)
			if !ok {
				return f, false
			}
			if whole {
				rest = "*"
			}
			switch {
			case rest == "":
			case pat.Exclusion():
				f.exclude = append(f.exclude, "!"+rest)
			default:
				f.exclude = append(f.exclude, rest)
			}
		}
	}
	return f, true
}

// matchPath reports whether m matches the path whose components are pc,
// as fsutil's filtered walk decides it on its way down to it.
func matchPath(m *patternmatcher.PatternMatcher, pc []string) (bool, error) {
	var info patternmatcher.MatchInfo
	var matched bool
	for i := range pc {
		var err error
		if matched, info, err = m.MatchesUsingParentResults(strings.Join(pc[:i+1], "/"), info); err != nil {
			return false, err
		}
	}
	return matched, nil
}

// rewrite rewrites the cleaned pattern pat relative to the path whose
// components are pc: rest is what the paths below pc must match (""
// when pat matches none of them), whole is true when pat matches pc or a
// parent of it. ok is false for a "**" rewrite does not handle.
func rewrite(pat string, pc []string) (rest string, whole, ok bool) {
	qc := strings.Split(pat, "/")
	if qc[0] == "**" && len(qc) == 2 && !strings.Contains(qc[1], "**") {
		// "**/NAME" matches any path one of whose components is NAME, at
		// any depth: below pc as it stands, and pc itself when one of its
		// components matches.
		for _, c := range pc {
			if m, _ := filepath.Match(qc[1], c); m {
				return "", true, true
			}
		}
		return pat, false, true
	}
	if strings.Contains(pat, "**") {
		return "", false, false
	}
	n := min(len(qc), len(pc))
	for i := 0; i < n; i++ {
		if m, err := filepath.Match(qc[i], pc[i]); err != nil || !m {
			return "", false, err == nil
		}
	}
	if len(qc) <= len(pc) {
		return "", true, true
	}
	return strings.Join(qc[len(pc):], "/"), false, true
}
