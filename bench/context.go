package main

// The context part: a Dockerfile build whose context holds many small
// files, rebuilt with nothing changed, by snapbuild and by buildah
// (README.md, "context"). A cached rebuild should cost the stats of the
// context, not reading or copying it.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const (
	contextDirs  = 300 // directories under src/
	contextFiles = 100 // files in each, 30 000 in all
)

// contextDockerfile copies the whole context and one of its directories;
// .dockerignore leaves some of it out, as real contexts do.
const contextDockerfile = "FROM scratch\nCOPY . /app\nCOPY src/d001 /one\n"

const contextIgnore = "**/*.pyc\nsrc/d29*\nContainerfile\n"

// makeBigContext writes the context's files into dir: contextDirs ×
// contextFiles files of about 300 bytes.
func makeBigContext(dir string) error {
	for d := 0; d < contextDirs; d++ {
		sub := filepath.Join(dir, "src", fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		for f := 0; f < contextFiles; f++ {
			data := []byte(fmt.Sprintf("file %d of directory %d\n%0300d\n", f, d, f))
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d.txt", f)), data, 0o644); err != nil {
				return err
			}
		}
	}
	return os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(contextIgnore), 0o644)
}

// contextPart builds the context once with each tool, then times b.n
// rebuilds in which nothing changed.
func (b *bench) contextPart(ctx context.Context) error {
	name := "bigctx"
	dir := filepath.Join(b.dir, "ctx-"+name)
	if err := makeBigContext(dir); err != nil {
		return err
	}
	if err := writeContext(dir, contextDockerfile); err != nil {
		return err
	}
	file := filepath.Join(dir, "Containerfile")
	build := func() (run, error) {
		return b.snapbuildArgs(ctx, 10*time.Minute, "the context Dockerfile", "build", "-f", file, "-t", "benchctx", "--root", b.store, "--progress=json", dir)
	}
	logf("context: %d files, cold build with snapbuild", contextDirs*contextFiles)
	cold, err := build()
	if err != nil {
		return err
	}
	var snap, bud []run
	for i := 0; i < b.n; i++ {
		r, err := build()
		if err != nil {
			return err
		}
		if r.manifest != cold.manifest {
			return fmt.Errorf("context: a cached rebuild made manifest %s, the cold build %s", r.manifest, cold.manifest)
		}
		if b.verbose {
			logf("context: snapbuild cached rebuild %d: %s", i+1, secs(r.wall))
		}
		snap = append(snap, r)
	}
	if b.skipped == "" {
		logf("context: cold build with buildah")
		if err := b.budWarm(ctx, name, contextDockerfile, "benchctx"); err != nil {
			return err
		}
		for i := 0; i < b.n; i++ {
			r, err := b.bud(ctx, name, contextDockerfile, "benchctx", false)
			if err != nil {
				return err
			}
			bud = append(bud, r)
		}
	}

	fmt.Printf("\ncontext: a Dockerfile that copies a context of %d files (COPY . and COPY of one directory,\n"+
		".dockerignore leaving some out), rebuilt with nothing changed, median of %d\n\n", contextDirs*contextFiles, b.n)
	row := "%-32s %14s %14s\n"
	fmt.Printf(row, "", "snapbuild", "buildah")
	budCol := func(f func([]run) string) string {
		if len(bud) == 0 {
			return "skipped"
		}
		return f(bud)
	}
	wall := func(rs []run) string { return secs(median(rs)) }
	fmt.Printf(row, "cold build", secs(cold.wall), "")
	fmt.Printf(row, "cached rebuild", wall(snap), budCol(wall))
	fmt.Printf(row, "cached rebuild, peak RSS", mib(peak(snap, func(r run) int64 { return r.selfRSS })), budCol(func(rs []run) string {
		return mib(peak(rs, func(r run) int64 { return r.treeRSS }))
	}))
	if len(bud) > 0 {
		r := median(snap).Seconds() / median(bud).Seconds()
		fmt.Printf(row, "snapbuild/buildah", fmt.Sprintf("%.2fx", r), "")
		b.verdict(r < 1, fmt.Sprintf("context: cached rebuild of %d files, snapbuild/buildah %.2fx < 1.00x", contextDirs*contextFiles, r))
	}
	return nil
}
