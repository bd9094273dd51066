"""modal.FilePatternMatcher: .dockerignore-style patterns, as Modal has them.

A matcher is called with a path (relative to the directory being added) and
returns True when the path matches, i.e. is left out when the matcher is an
`ignore=`. Rules (moby/patternmatcher's "matches or a parent matches"):

  - patterns are stripped of blanks and of leading and trailing "/", empty
    ones are skipped, and they are cleaned (os.path.normpath);
  - a leading "!" re-includes what earlier patterns matched ("!" alone is an
    error); later patterns override earlier ones;
  - a pattern also matches every path below a directory it matches;
  - "*" is any run of characters but "/", "?" one character but "/", "**"
    any number of directories ("**/x" also matches "x"; "d/**" everything
    below d), "[...]" a character class, and "\\" escapes the next character.

`~matcher` inverts a matcher. FilePatternMatcher.from_file(path) reads its
patterns (one a line) when first used.

For snapbuild, a matcher also knows its recipe form (recipe_form), which the
Go engine reads with the same rules.
"""

import os
import posixpath
import re
from pathlib import Path

def _compile(pattern):
    """The regular expression for one cleaned pattern (without its "!")."""
    out = ["^"]
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if in_class:
            if ch == "]":
                in_class = False
                out.append("]")
            elif ch == "\\" and i + 1 < n:
                i += 1
                out.append(re.escape(pattern[i]))
            elif ch == "\\":
                out.append("\\\\")
            else:
                out.append(ch)
        elif ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1  # "**/" is taken as "**"
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                out.append(re.escape(pattern[i]))
            else:
                out.append("\\\\")
        elif ch == "[":
            in_class = True
            out.append("[")
        else:
            out.append(re.escape(ch))
        i += 1
    out.append(r"\Z")
    return re.compile("".join(out), re.DOTALL)


class _Pattern:
    __slots__ = ("text", "exclusion", "regex")

    def __init__(self, text, exclusion):
        self.text = text
        self.exclusion = exclusion
        self.regex = _compile(text)

    def match(self, path):
        return self.regex.match(path) is not None


def _parse(patterns):
    out = []
    for raw in patterns:
        if not isinstance(raw, str):
            raise TypeError("FilePatternMatcher patterns must be strings, not %s" % type(raw).__name__)
        p = raw.strip().strip("/")
        if not p:
            continue
        p = posixpath.normpath(p)
        exclusion = False
        if p[0] == "!":
            if len(p) == 1:
                raise ValueError('Illegal exclusion pattern: "!"')
            exclusion = True
            p = p[1:]
        out.append(_Pattern(p, exclusion))
    return out


class _AbstractPatternMatcher:
    """A callable that says whether a path is matched (ignored)."""

    def __invert__(self):
        return _InvertedPatternMatcher(self)

    def can_prune_directories(self):
        """Whether a directory that matches may be skipped whole in a walk."""
        return True

    def __call__(self, path):
        raise NotImplementedError

    def recipe_form(self):
        """The ignore= value of a recipe, or None when this matcher has none
        (a callable: the caller evaluates it)."""
        return None


class _CustomPatternMatcher(_AbstractPatternMatcher):
    """A matcher made from a predicate."""

    def __init__(self, predicate):
        self._predicate = predicate

    def can_prune_directories(self):
        return False

    def __call__(self, path):
        return self._predicate(path)


class _InvertedPatternMatcher(_CustomPatternMatcher):
    """~matcher: matches what matcher does not."""

    def __init__(self, inner):
        self.inner = inner
        super().__init__(lambda path: not inner(path))

    def __invert__(self):
        return self.inner

    def recipe_form(self):
        inner = self.inner
        if not isinstance(inner, FilePatternMatcher):
            return None
        if inner._file is not None:
            return {"from_file": inner._file, "invert": True}
        return {"patterns": list(inner._raw), "invert": True}


class FilePatternMatcher(_AbstractPatternMatcher):
    """Matches paths against .dockerignore-style patterns.

    FilePatternMatcher("*.pyc", "!keep.pyc")(Path("a.pyc")) is True.
    """

    def __init__(self, *pattern):
        self._file = None
        self._raw = list(pattern)
        self._patterns = _parse(self._raw)

    @classmethod
    def from_file(cls, file_path):
        """A matcher whose patterns are the lines of file_path, read on first use."""
        m = cls.__new__(cls)
        m._file = os.fspath(file_path)
        m._raw = None
        m._patterns = None
        return m

    @property
    def patterns(self):
        self._load()
        return self._patterns

    def _load(self):
        if self._patterns is None:
            lines = Path(self._file).read_text("utf8").splitlines()
            self._raw = lines
            self._patterns = _parse(lines)

    def can_prune_directories(self):
        return not any(p.exclusion for p in self.patterns)

    def __call__(self, file_path):
        self._load()
        path = posixpath.normpath(os.fspath(file_path).replace(os.sep, "/"))
        if path == ".":
            return False
        parent = posixpath.dirname(path) or "."
        parents = parent.split("/")
        matched = False
        for p in self._patterns:
            # An inclusion only matters while unmatched, an exclusion while matched.
            if p.exclusion != matched:
                continue
            hit = p.match(path)
            if not hit and parent != ".":
                for i in range(len(parents)):
                    if p.match("/".join(parents[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not p.exclusion
        return matched

    def __repr__(self):
        if self._file is not None:
            return "FilePatternMatcher.from_file(%r)" % self._file
        return "FilePatternMatcher(%s)" % ", ".join(repr(p) for p in self._raw)

    def recipe_form(self):
        if self._file is not None:
            return {"from_file": self._file}
        return list(self._raw)


def escape(path):
    """A pattern that matches exactly the relative path given (glob
    characters and a leading "!" escaped)."""
    out = []
    for ch in path:
        if ch in "\\*?[]":
            out.append("\\")
        out.append(ch)
    s = "".join(out)
    if s.startswith("!"):
        s = "\\" + s
    return s


# Modal's default ignore of add_local_python_source: everything but .py files.
NON_PYTHON_FILES = ~FilePatternMatcher("**/*.py")

# Matches every path (Modal's name for it).
_NOTHING = ~FilePatternMatcher()
