package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"

	"github.com/snapbuild/snapbuild/internal/build"
)

// localTree makes the directory the in-place tests read: files at several
// depths, names a pattern can match at any depth, a symlink.
func localTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, rel := range []string{
		"main.go", "README.md", "secret.env", "a.pyc",
		"src/app.go", "src/app.pyc", "src/lib/util.go", "src/lib/util.pyc", "src/lib/data/x.bin",
		"src/skip/s.go", "src/keep.md",
		"docs/a.md", "docs/b.txt", "docs/sub/c.md",
		"build/out.bin", "node_modules/m/index.js", "src/node_modules/n.js",
	} {
		write(t, dir, rel, "content of "+rel, 0o644)
	}
	write(t, dir, "run.sh", "#!/bin/sh", 0o755)
	if err := os.Symlink("main.go", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// treeAt lists the entries under root as "path type mode[ content]".
func treeAt(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := fmt.Sprintf("%s %s", rel, fi.Mode())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e += " " + string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			e += " -> " + l
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCopyFromLocalInPlace checks that a copy from a local source read in
// place, its patterns carried over to the copy (localRef.under), gives
// exactly what the same copy gives from the source's selection (the
// filtered copy BuildKit's sync would make), for .dockerignore patterns of
// the usual forms, include patterns (the COPY sources a Modal build
// reads), exclusions, and copies of the root, of subdirectories, of files
// and of wildcards; and that it makes no copy of the source while it
// does so, except where it says it cannot (errNotInPlace).
func TestCopyFromLocalInPlace(t *testing.T) {
	ctx := context.Background()
	dir := localTree(t)
	filters := []struct {
		name             string
		include, exclude []string
		inPlace          bool // every copy below is done in place
	}{
		{"none", nil, nil, true},
		{"dockerignore", nil, []string{"secret.env", "build", "node_modules", "**/*.pyc", "src/skip", "docs/*.txt"}, true},
		{"dir name at any depth", nil, []string{"**/node_modules", "**/lib"}, true},
		{"wildcard components", nil, []string{"*/lib/*.go", "s*/skip"}, true},
		{"exclusion below", nil, []string{"docs", "!docs/sub", "*.md", "!README.md"}, true},
		{"include sources", []string{"src", "main.go", "docs/*.md"}, nil, true},
		{"include and exclude", []string{"src", "docs"}, []string{"**/*.pyc", "src/lib/data"}, true},
		{"include everything", []string{"**"}, []string{"src/lib"}, true},
		{"exclusion of a file in an excluded directory", nil, []string{"docs", "!docs/sub/c.md", "src/lib/*", "!src/lib/util.go"}, true},
		{"exclusion of matches", nil, []string{"*.md", "**/*.go", "!docs/*.md", "!src/lib/util.go"}, true},
		{"include below the copy", []string{"src/lib", "*.go"}, []string{"src/lib/data"}, true},
		{"deep double star", nil, []string{"src/**/x.bin"}, false},
		{"exclusion over an excluded parent", nil, []string{"src", "!src/lib"}, true},
	}
	copies := []*pb.FileActionCopy{
		copyOp("/", "/ctx/"),
		copyOp("/src", "/app/"),
		copyOp("/src/lib", "/lib/"),
		copyOp("/docs/a.md", "/a.md"),
		copyOp("/docs/*.md", "/md/"),
		copyOp("/s*", "/wild/"),
	}
	withExclude := copyOp("/src", "/ex/")
	withExclude.ExcludePatterns = []string{"*.md"}
	copies = append(copies, withExclude)
	for _, c := range copies {
		c.AllowWildcard = true
		c.AllowEmptyWildcard = true
		c.DirCopyContents = true
	}
	for _, f := range filters {
		t.Run(f.name, func(t *testing.T) {
			w := newWorker(t)
			lr, err := newLocalRef(dir, &fsutil.FilterOpt{IncludePatterns: f.include, ExcludePatterns: f.exclude})
			if err != nil {
				t.Fatal(err)
			}
			sel := t.TempDir()
			if err := copyLocal(ctx, dir, sel, lr.filter); err != nil {
				t.Fatal(err)
			}
			for _, c := range copies {
				want, got := t.TempDir(), t.TempDir()
				wantErr := copyAction(ctx, sel, nil, want, c, nil)
				err := copyAction(ctx, dir, lr, got, c, nil)
				if errors.Is(err, errNotInPlace) {
					if f.inPlace {
						t.Errorf("copy %s: not done in place", c.Src)
					}
					if tree := treeAt(t, got); len(tree) != 0 {
						t.Errorf("copy %s: wrote %q before giving up on the patterns", c.Src, tree)
					}
					continue
				}
				if (err == nil) != (wantErr == nil) {
					t.Errorf("copy %s: error %v, from the selection %v", c.Src, err, wantErr)
					continue
				}
				if g, w := treeAt(t, got), treeAt(t, want); !slices.Equal(g, w) {
					t.Errorf("copy %s in place:\n%s\nfrom the selection:\n%s", c.Src, strings.Join(g, "\n"), strings.Join(w, "\n"))
				}
			}
			// A link the source selects is followed to its target (COPY
			// link), even where the patterns leave the target out: the
			// builder's rule for links in a build context (the selection
			// would hold a dangling link there).
			link := t.TempDir()
			if err := copyAction(ctx, dir, lr, link, copyOp("/link", "/l"), nil); err != nil && !strings.Contains(err.Error(), "not found") && !errors.Is(err, errNotInPlace) {
				t.Errorf("copy /link: %v", err)
			} else if err == nil {
				if got := readFile(t, filepath.Join(link, "l")); got != "content of main.go" {
					t.Errorf("copy /link = %q, want main.go's content", got)
				}
			}
			// Nothing was copied to read the source.
			if tmp := treeAt(t, filepath.Join(w.dir, "tmp")); len(tmp) != 0 {
				t.Errorf("the worker's tmp/ holds %q", tmp)
			}
		})
	}
}

// TestLocalSourceInPlace checks the worker's path: a local source is its
// registered directory (no copy), a file op copies what the op's patterns
// select from it, an edit shows in the next key and copy, and a read-only
// view (as a bind mount gets) holds the selection only.
func TestLocalSourceInPlace(t *testing.T) {
	ctx := context.Background()
	w := newWorker(t)
	dir := localTree(t)
	if err := w.AddLocal("context", dir); err != nil {
		t.Fatal(err)
	}
	op := localOp("context", map[string]string{pb.AttrExcludePatterns: `["secret.env","build","node_modules","**/*.pyc"]`})
	k1, err := w.ContentKey(ctx, op)
	must(t, err)
	ref, err := w.Source(ctx, op)
	must(t, err)
	r := ref.(*Ref)
	if r.Dir != dir {
		t.Fatalf("local source Dir = %q, want the registered directory %q", r.Dir, dir)
	}
	tmp := filepath.Join(w.dir, "tmp")
	if got := treeAt(t, tmp); len(got) != 0 {
		t.Errorf("making the source wrote %q", got)
	}

	copySrc := func() []string {
		t.Helper()
		fop := &pb.FileOp{Actions: []*pb.FileAction{fileAction(-1, 0, 0, copyOp("/src", "/app/"))}}
		outs, err := w.File(ctx, fop, []build.Ref{r})
		must(t, err)
		return layerEntries(t, w, outs[0].(*Ref), 0)
	}
	got := copySrc()
	for _, e := range got {
		if strings.Contains(e, ".pyc") {
			t.Errorf("the copy holds %q, which the patterns exclude", e)
		}
	}
	// "node_modules" names the context's own, not src/node_modules
	// (.dockerignore patterns are anchored at the root).
	for _, want := range []string{"app/lib/util.go ", "app/node_modules/n.js "} {
		if !slices.ContainsFunc(got, func(e string) bool { return strings.HasPrefix(e, want) }) {
			t.Errorf("the copy = %q, want %sin it", got, want)
		}
	}
	if l := treeAt(t, tmp); len(l) != 0 {
		t.Errorf("the copy wrote %q to the worker's tmp/", l)
	}

	// An edit changes the key, and the copy reads the file as it is now.
	write(t, dir, "src/lib/util.go", "edited", 0o644)
	k2, err := w.ContentKey(ctx, op)
	must(t, err)
	if k2 == k1 {
		t.Error("the content key did not change with an edited file")
	}
	if got := copySrc(); !slices.ContainsFunc(got, func(e string) bool {
		return strings.HasPrefix(e, "app/lib/util.go ") && strings.HasSuffix(e, " edited")
	}) {
		t.Errorf("the copy after the edit = %q, want the edited util.go", got)
	}

	// A view (bind mounts, cache seeds, merges) is the selection only.
	view, release, err := w.view(ctx, r)
	must(t, err)
	defer release()
	for _, e := range treeAt(t, view) {
		if strings.Contains(e, ".pyc") || strings.HasPrefix(e, "secret.env") || strings.HasPrefix(e, "build") {
			t.Errorf("the view holds %q", e)
		}
	}
}

// TestContentKeyReadsChangedFilesOnly checks the content hashes kept
// across Workers (fileHashes): a second Worker on the same store computes
// the same key by stat alone, an edit that keeps the size and the mtime
// (touch -r) is still seen, through the ctime, and re-reads that file only.
func TestContentKeyReadsChangedFilesOnly(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := localTree(t)
	// Files changed within the last second are not remembered (a write in
	// the same clock tick could go unseen): age the tree.
	old := time.Now().Add(-time.Hour)
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	time.Sleep(1100 * time.Millisecond) // ctimes are now more than a second old
	op := localOp("context", map[string]string{pb.AttrExcludePatterns: `["build"]`})
	keyOf := func() (digest.Digest, int) {
		t.Helper()
		w := newWorkerAt(t, root)
		must(t, w.AddLocal("context", dir))
		k, err := w.ContentKey(ctx, op)
		must(t, err)
		reads := w.hashesFor(dir).reads
		must(t, w.Close())
		return k, reads
	}
	k1, reads := keyOf()
	if reads == 0 {
		t.Fatal("the first key read no file")
	}
	if k, reads := keyOf(); k != k1 || reads != 0 {
		t.Errorf("second worker: key %s (first %s), %d files read; want the same key and none read", k, k1, reads)
	}
	// Same size, mtime set back: only the ctime tells.
	p := filepath.Join(dir, "src/app.go")
	fi, err := os.Stat(p)
	must(t, err)
	must(t, os.WriteFile(p, []byte(strings.Repeat("x", int(fi.Size()))), 0o644))
	must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
	if k, reads := keyOf(); k == k1 || reads != 1 {
		t.Errorf("after an edit keeping size and mtime: key %s (before %s), %d files read; want a new key and 1 read", k, k1, reads)
	}
}
