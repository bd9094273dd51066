package modal

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
)

// A Matcher decides which files of a local directory an ignore= argument
// leaves out. Match is given a file's path relative to the directory,
// "/"-separated ("sub/a.py"), and reports true for a file to leave out.
//
// Source: Modal's ignore arguments take a list of patterns, a
// FilePatternMatcher (possibly inverted with ~ or read with from_file), or any
// callable Path -> bool; FilePatternMatcher and MatcherFunc are those here.
type Matcher interface {
	Match(relPath string) (bool, error)
}

// MatcherFunc is a Go function used as a Matcher: Modal's callable ignore.
// It cannot be stored, so a copy=false add_local_dir with a MatcherFunc
// attaches, when the image is run or exported, the files the function
// selected when the image was tagged (Builder.TagResult).
type MatcherFunc func(relPath string) bool

// Match calls f.
func (f MatcherFunc) Match(relPath string) (bool, error) { return f(relPath), nil }

// FilePatternMatcher is modal.FilePatternMatcher: .dockerignore
// patterns, evaluated in order with the last match winning, a pattern also
// matching every path below a directory it matches, "!" re-including, "**"
// spanning directories (moby/patternmatcher's MatchesOrParentMatches, of
// which Modal's class is a port). Patterns are cleaned as Modal cleans them:
// surrounding whitespace and "/" stripped, empty ones dropped; comment lines
// are not special. A FilePatternMatcher is safe for concurrent use and its
// patterns are compiled (or its file read) once, on first use.
type FilePatternMatcher struct {
	spec MatcherSpec

	once sync.Once
	pm   *patternmatcher.PatternMatcher
	keep map[string]bool
	err  error
}

// MatcherSpec is a FilePatternMatcher's stored form (runtime mounts keep it
// in mounts.json so that `snapbuild run` can apply it again).
type MatcherSpec struct {
	Patterns []string `json:"patterns,omitempty"`
	// File holds the patterns, one per line; read on first use.
	File string `json:"file,omitempty"`
	// Optional: a missing File means no patterns (Modal's AUTO_DOCKERIGNORE).
	Optional bool `json:"optional,omitempty"`
	Inverted bool `json:"inverted,omitempty"`
	// Keep, when set, is the list of paths a MatcherFunc selected at tag
	// time: everything else is left out.
	Keep []string `json:"keep,omitempty"`
}

// NewFilePatternMatcher is FilePatternMatcher(*patterns). With no
// patterns it matches nothing (so, as ignore=, leaves nothing out).
func NewFilePatternMatcher(patterns ...string) *FilePatternMatcher {
	return &FilePatternMatcher{spec: MatcherSpec{Patterns: append([]string{}, patterns...)}}
}

// FilePatternMatcherFromFile is FilePatternMatcher.from_file(path): the
// patterns are the lines of the file at path ("~" expanded, relative to the
// working directory), read on first use; a missing file is then an error.
func FilePatternMatcherFromFile(path string) *FilePatternMatcher {
	return &FilePatternMatcher{spec: MatcherSpec{File: path}}
}

// DockerignoreMatcher reads path's patterns when it exists and matches
// nothing otherwise.
func DockerignoreMatcher(path string) *FilePatternMatcher {
	return &FilePatternMatcher{spec: MatcherSpec{File: path, Optional: true}}
}

// Invert is Modal's ~matcher: a matcher that matches exactly the paths m does
// not (as ignore=, it keeps only what m would match).
func (m *FilePatternMatcher) Invert() *FilePatternMatcher {
	s := m.spec
	s.Patterns = append([]string{}, s.Patterns...)
	s.Inverted = !s.Inverted
	return &FilePatternMatcher{spec: s}
}

// Patterns returns the patterns given to NewFilePatternMatcher, or the
// file's patterns once read. The error is that of reading or compiling them.
func (m *FilePatternMatcher) Patterns() ([]string, error) {
	if err := m.compile(); err != nil {
		return nil, err
	}
	if m.pm == nil {
		return nil, nil
	}
	var out []string
	for _, p := range m.pm.Patterns() {
		if p.Exclusion() {
			out = append(out, "!"+p.String())
		} else {
			out = append(out, p.String())
		}
	}
	return out, nil
}

// String describes m as Modal writes it in Python.
func (m *FilePatternMatcher) String() string {
	var s string
	if m.spec.File != "" {
		s = fmt.Sprintf("FilePatternMatcher.from_file(%s)", PyRepr(m.spec.File))
	} else {
		q := make([]string, len(m.spec.Patterns))
		for i, p := range m.spec.Patterns {
			q[i] = PyRepr(p)
		}
		s = "FilePatternMatcher(" + strings.Join(q, ", ") + ")"
	}
	if m.spec.Inverted {
		s = "~" + s
	}
	return s
}

// Match reports whether relPath (relative to the directory being walked,
// "/"-separated) or one of its parent directories is matched; "." never
// is. Errors: the file of FilePatternMatcherFromFile is missing or
// unreadable, or a pattern is malformed (a bare "!", a bad "[" class).
func (m *FilePatternMatcher) Match(relPath string) (bool, error) {
	if err := m.compile(); err != nil {
		return false, err
	}
	if m.keep != nil {
		return !m.keep[relPath], nil
	}
	matched := false
	if m.pm != nil && relPath != "." && relPath != "" {
		var err error
		if matched, err = m.pm.MatchesOrParentMatches(filepath.FromSlash(relPath)); err != nil {
			return false, fmt.Errorf("%s: %w", m, err)
		}
	}
	return matched != m.spec.Inverted, nil
}

var lineBreak = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`\r\n|[\n\r\v\f\x{1c}\x{1d}\x{1e}\x{85}\x{2028}\x{2029}]`)
})

func (m *FilePatternMatcher) compile() error {
	m.once.Do(func() {
		if m.spec.Keep != nil {
			m.keep = make(map[string]bool, len(m.spec.Keep))
			for _, k := range m.spec.Keep {
				m.keep[k] = true
			}
			return
		}
		patterns := m.spec.Patterns
		if m.spec.File != "" {
			file, err := ExpandHome(m.spec.File)
			if err != nil {
				m.err = fmt.Errorf("ignore patterns: %w", err)
				return
			}
			b, err := os.ReadFile(file)
			switch {
			case errors.Is(err, os.ErrNotExist) && m.spec.Optional:
				return
			case err != nil:
				m.err = fmt.Errorf("ignore patterns: %w", err)
				return
			}
			patterns = lineBreak().Split(string(b), -1) // Python's str.splitlines
		}
		cleaned, err := cleanPatterns(patterns)
		if err != nil {
			m.err = err
			return
		}
		if len(cleaned) == 0 {
			return
		}
		if m.pm, err = patternmatcher.New(cleaned); err != nil {
			m.err = fmt.Errorf("%s: %w", m, err)
		}
	})
	return m.err
}

// cleanPatterns prepares patterns as Modal's FilePatternMatcher does:
// surrounding whitespace and leading/trailing "/" stripped (after a "!" too),
// the path cleaned as Docker's .dockerignore reader cleans it ("./a/../b"
// is "b", so "!./keep" re-includes "keep"), empty ones dropped, a bare "!"
// refused with Modal's message.
func cleanPatterns(patterns []string) ([]string, error) {
	var out []string
	for _, p := range patterns {
		p = strings.Trim(strings.TrimSpace(p), "/")
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = strings.Trim(strings.TrimPrefix(p, "!"), "/")
			if p == "" {
				return nil, errors.New(`Illegal exclusion pattern: "!"`)
			}
		}
		if p != "" {
			p = strings.TrimPrefix(path.Clean(p), "/")
		}
		if p == "" || p == "." && !neg {
			continue
		}
		if neg {
			p = "!" + p
		}
		out = append(out, p)
	}
	return out, nil
}

// SpecOf returns the stored form of m.
func SpecOf(m *FilePatternMatcher) MatcherSpec { return m.spec }

// Matcher returns the FilePatternMatcher whose stored form is s.
func (s MatcherSpec) Matcher() *FilePatternMatcher { return &FilePatternMatcher{spec: s} }
