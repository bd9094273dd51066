package snapbuild

import "github.com/snapbuild/snapbuild/internal/modal"

// A Matcher decides which files of a local directory an ignore= argument
// leaves out. Match is given a file's path relative to the directory,
// "/"-separated ("sub/a.py"), and reports true for a file to leave out.
//
// Source: Modal's ignore arguments take a list of patterns, a
// FilePatternMatcher (possibly inverted with ~ or read with from_file), or any
// callable Path -> bool; FilePatternMatcher and MatcherFunc are those here.
type Matcher = modal.Matcher

// MatcherFunc is a Go function used as a Matcher: Modal's callable ignore.
// It cannot be stored, so a copy=false add_local_dir with a MatcherFunc
// attaches, when the image is run or exported, the files the function
// selected when the image was tagged (Builder.TagResult).
type MatcherFunc = modal.MatcherFunc

// FilePatternMatcher is modal.FilePatternMatcher: .dockerignore-style
// patterns (Go's filepath.Match syntax plus "**", "!" re-includes), cleaned
// as Modal cleans them. Make one with NewFilePatternMatcher or
// FilePatternMatcherFromFile; Invert gives Modal's ~matcher.
type FilePatternMatcher = modal.FilePatternMatcher

// NewFilePatternMatcher is FilePatternMatcher(*patterns). With no patterns
// it matches nothing (so, as ignore=, leaves nothing out).
func NewFilePatternMatcher(patterns ...string) *FilePatternMatcher {
	return modal.NewFilePatternMatcher(patterns...)
}

// FilePatternMatcherFromFile is FilePatternMatcher.from_file(path): the
// patterns are the file's lines, read on first use ("~" expanded); a
// missing file is an error then.
func FilePatternMatcherFromFile(path string) *FilePatternMatcher {
	return modal.FilePatternMatcherFromFile(path)
}
