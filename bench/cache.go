package main

// The cache part: a fresh store rebuilding, through build --cache-from, a
// recipe another store built and exported with --cache-to, against a fresh
// store pulling an image with the same layers from the same registry
// (README.md, "cache"). Both fetch and unpack the same blobs; the target is
// a cached rebuild within 1.1× of the pull.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// cacheRecipe is the benchbase step and what CI images add to it.
const cacheRecipe = `- debian_slim: {python_version: "3.11"}
- apt_install: [git, curl]
- run_commands: ["git --version > /git-version"]
- env: {APP_ENV: "ci"}
- run_commands: ["mkdir -p /app && seq 1 100000 > /app/numbers"]
- run_commands: ["curl --version > /curl-version"]
`

// startRegistry runs Debian's docker-registry on 127.0.0.1 with its
// storage under the bench's directory; it returns HOST:PORT and a stop
// function.
func (b *bench) startRegistry(ctx context.Context) (string, func(), error) {
	bin, err := lookPath("docker-registry")
	if err != nil {
		return "", nil, fmt.Errorf("the cache part needs docker-registry (Debian package docker-registry): %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	host := ln.Addr().String()
	ln.Close()
	dir := filepath.Join(b.dir, "registry")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n  secret: snapbuild-bench\n", filepath.Join(dir, "data"), host)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "serve", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			return host, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("docker-registry did not start on %s: %v", host, err)
		}
	}
}

// cachePart builds cacheRecipe in the bench's store with --cache-to, pushes
// the image, then times b.n fresh stores building it with --cache-from and
// b.n fresh stores pulling the pushed image.
func (b *bench) cachePart(ctx context.Context) error {
	host, stop, err := b.startRegistry(ctx)
	if err != nil {
		return err
	}
	defer stop()
	insecure := "--insecure-registry=" + host
	cacheRef := "docker://" + host + "/bench/cache:main"
	imageRef := "docker://" + host + "/bench/app:1"
	recipe := filepath.Join(b.dir, "cache.yaml")
	if err := os.WriteFile(recipe, []byte(cacheRecipe), 0o644); err != nil {
		return err
	}
	logf("cache: building the recipe with --cache-to %s", cacheRef)
	src, err := b.snapbuildArgs(ctx, 20*time.Minute, "cache.yaml", "build", recipe, "-t", "benchcache", "--root", b.store, "--progress=json", "--cache-to", cacheRef, insecure)
	if err != nil {
		return err
	}
	if _, err := b.command(ctx, 10*time.Minute, b.bin, "push", "benchcache", imageRef, "--root", b.store, insecure, "--compression", "zstd"); err != nil {
		return err
	}
	var fromCache, pulled []time.Duration
	for i := 0; i < b.n; i++ {
		fresh := filepath.Join(b.dir, fmt.Sprintf("cache-fresh-%d", i))
		r, err := b.snapbuildArgs(ctx, 10*time.Minute, "cache.yaml --cache-from", "build", recipe, "-t", "benchcache", "--root", fresh, "--progress=json", "--cache-from", cacheRef, insecure)
		if err != nil {
			return err
		}
		if r.manifest != src.manifest {
			return fmt.Errorf("cache: the fresh store built manifest %s, the exporting store %s", r.manifest, src.manifest)
		}
		fromCache = append(fromCache, r.wall)
		os.RemoveAll(fresh)
		fresh = filepath.Join(b.dir, fmt.Sprintf("pull-fresh-%d", i))
		p, err := b.command(ctx, 10*time.Minute, b.bin, "pull", imageRef, "--root", fresh, insecure)
		if err != nil {
			return err
		}
		pulled = append(pulled, p.wall)
		os.RemoveAll(fresh)
	}
	c, p := medianOf(fromCache), medianOf(pulled)
	ratio := c.Seconds() / p.Seconds()
	fmt.Println()
	fmt.Printf("cache: a fresh store, %d runs each (median)\n", b.n)
	fmt.Printf("%-52s %10s\n", "what", "wall")
	fmt.Printf("%-52s %10s\n", "build --cache-from (every step from the registry)", secs(c))
	fmt.Printf("%-52s %10s\n", "pull of an image with the same layers", secs(p))
	fmt.Printf("%-52s %10.2f×\n", "ratio", ratio)
	b.verdict(ratio <= 1.1, fmt.Sprintf("cache: fresh-store build --cache-from within 1.1× of pulling the same layers (%.2f×)", ratio))
	return nil
}
