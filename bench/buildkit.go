package main

// The BuildKit column (README.md, "BuildKit"): Debian's docker.io, whose
// dockerd embeds BuildKit, started by the bench on a private socket and data
// root, with no bridge and no iptables rules, so that it touches nothing of
// the host's.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Debian's docker.io installs these; a docker CLI elsewhere on PATH (a
// newer one needs the buildx plugin for BuildKit) is not used.
const (
	dockerdPath = "/usr/sbin/dockerd"
	dockerPath  = "/usr/bin/docker"
)

// kit is the dockerd the bench started.
type kit struct {
	dir     string    // data root, exec root, socket, pid file and log
	cmd     *exec.Cmd // dockerd
	env     []string  // DOCKER_HOST and DOCKER_BUILDKIT=1 for the client
	version string    // dockerd's version
	loaded  map[string]string
}

// startKit starts dockerd, or says why it cannot (then the BuildKit
// column is skipped with that reason).
func (b *bench) startKit(ctx context.Context) (why string) {
	for _, p := range []string{dockerdPath, dockerPath} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Sprintf("%s not found (install the Debian package docker.io)", p)
		}
	}
	if os.Geteuid() != 0 {
		return "dockerd needs root here"
	}
	k := &kit{dir: filepath.Join(b.dir, "docker")}
	sock := filepath.Join(k.dir, "docker.sock")
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return err.Error()
	}
	logFile, err := os.Create(filepath.Join(k.dir, "dockerd.log"))
	if err != nil {
		return err.Error()
	}
	defer logFile.Close()
	// A containerd namespace of its own, so that a dockerd already running
	// on the host (and its containerd) never sees the bench's containers.
	k.cmd = exec.Command(dockerdPath,
		"--data-root", filepath.Join(k.dir, "data"), "--exec-root", filepath.Join(k.dir, "exec"),
		"--pidfile", filepath.Join(k.dir, "dockerd.pid"), "--host", "unix://"+sock,
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--containerd-namespace", "snapbuild-bench", "--containerd-plugins-namespace", "snapbuild-bench-plugins")
	k.cmd.Stdout, k.cmd.Stderr = logFile, logFile
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := k.cmd.Start(); err != nil {
		return fmt.Sprintf("dockerd did not start: %v", err)
	}
	b.kit = k
	k.env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_BUILDKIT=1")
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := k.docker(ctx, time.Minute, "version", "--format", "{{.Server.Version}}")
		if err == nil {
			k.version = strings.TrimSpace(out)
			logf("buildkit: dockerd %s started on %s", k.version, sock)
			return ""
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(logFile.Name())
			b.stopKit()
			return fmt.Sprintf("dockerd did not answer within 60s: %s", firstLine(tail(string(log), 1)))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stopKit stops dockerd (it stops the containerd it started) and waits.
func (b *bench) stopKit() {
	k := b.kit
	if k == nil || k.cmd == nil || k.cmd.Process == nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { k.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		k.cmd.Process.Kill()
		<-done
	}
	b.kit = nil
}

// docker runs the docker client against the bench's dockerd.
func (k *kit) docker(ctx context.Context, limit time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerPath, args...)
	cmd.Env = k.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 20))
	}
	return string(out), nil
}

// toKit loads snapbuild's image tag into dockerd, untimed: snapbuild
// exports a docker-archive, `docker load` reads it, and the image is
// tagged the same.
func (b *bench) toKit(ctx context.Context, tag string) error {
	k := b.kit
	if k == nil || k.loaded[tag] != "" {
		return nil
	}
	file := filepath.Join(b.dir, "docker-"+tag+".tar")
	defer os.Remove(file)
	if _, err := b.command(ctx, 10*time.Minute, b.bin, "export", tag, "--root", b.store, "docker-archive:"+file+":"+tag+":latest"); err != nil {
		return err
	}
	out, err := k.docker(ctx, 10*time.Minute, "load", "-i", file)
	if err != nil {
		return err
	}
	if _, err := k.docker(ctx, time.Minute, "image", "inspect", "--format", "{{.Id}}", tag+":latest"); err != nil {
		return fmt.Errorf("docker load gave %q, not the image %s: %w", strings.TrimSpace(out), tag, err)
	}
	if k.loaded == nil {
		k.loaded = map[string]string{}
	}
	k.loaded[tag] = tag
	logf("%s: loaded into dockerd", tag)
	return nil
}

// kitBuild builds a Containerfile with `docker build` (BuildKit, the host
// network as the other tools use) as tag, timed like every other command.
func (b *bench) kitBuild(ctx context.Context, ctxName, containerfile, tag string, noCache bool) (run, error) {
	dir := filepath.Join(b.dir, "ctx-"+ctxName)
	if err := writeContext(dir, containerfile); err != nil {
		return run{}, err
	}
	args := []string{"build", "--progress", "plain", "--network", "host", "-t", tag}
	if noCache {
		args = append(args, "--no-cache")
	}
	args = append(args, "-f", filepath.Join(dir, "Containerfile"), dir)
	return b.commandEnv(ctx, 10*time.Minute, b.kit.env, dockerPath, args...)
}

// checkKit says why some BuildKit run did not use its cache for exactly
// hits RUN steps: its plain progress prints "#N CACHED" per cached step,
// and once more for the FROM of a local image, cold or not.
func checkKit(rs []run, hits int) string {
	hits++ // FROM benchbase
	for _, r := range rs {
		n := 0
		for _, l := range strings.Split(r.stdout+r.stderr, "\n") {
			if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[0], "#") && f[1] == "CACHED" {
				n++
			}
		}
		if n != hits {
			return fmt.Sprintf("want %d cached steps, got %d", hits, n)
		}
	}
	return ""
}

// kitCleanup removes what dockerd left: its images, then the daemon.
func (b *bench) kitCleanup() {
	if b.kit == nil {
		return
	}
	ctx := context.Background()
	if out, err := b.kit.docker(ctx, time.Minute, "images", "-q"); err == nil {
		ids := slices.Compact(slices.Sorted(slices.Values(strings.Fields(out))))
		if len(ids) > 0 {
			b.kit.docker(ctx, 2*time.Minute, append([]string{"rmi", "-f"}, ids...)...)
		}
	}
	b.stopKit()
}
