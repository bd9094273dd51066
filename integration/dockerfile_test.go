package integration

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerfileCommands runs dockerfile_commands with a build context:
// ARG and build args, ENV expansion, COPY with .dockerignore (and a "!"
// re-include), --chown and --chmod, ADD of a local tar (extracted), a
// heredoc RUN, USER, relative WORKDIR, and EXPOSE/VOLUME/STOPSIGNAL in the
// config.
func TestDockerfileCommands(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "skopeo")
	requireMirror(t)
	dir := t.TempDir()
	ctx := filepath.Join(dir, "ctx")
	for p, c := range map[string]string{
		"app/main.py":       "print('main')\n",
		"app/secret.key":    "nope\n",
		"app/keep.key":      "kept\n",
		"app/build/out.o":   "junk\n",
		"unrelated/big.bin": "not copied\n",
	} {
		os.MkdirAll(filepath.Join(ctx, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(ctx, p), []byte(c), 0o644)
	}
	os.WriteFile(filepath.Join(ctx, ".dockerignore"), []byte("**/*.key\n!app/keep.key\napp/build\n"), 0o644)
	// A tar for ADD.
	f, _ := os.Create(filepath.Join(ctx, "bundle.tar.gz"))
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "bundle/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bundle/run.sh", Typeflag: tar.TypeReg, Mode: 0o755, Size: 8})
	tw.Write([]byte("echo hi\n"))
	tw.WriteHeader(&tar.Header{Name: "bundle/link", Typeflag: tar.TypeSymlink, Linkname: "run.sh"})
	tw.Close()
	zw.Close()
	f.Close()

	recipe := writeRecipe(t, dir, "df.yaml", `
- debian_slim: {}
- dockerfile_commands:
    commands:
      - ARG GREETING=hello
      - ARG TARGET
      - ENV APP_HOME=/srv/app MSG="${GREETING} ${TARGET}"
      - RUN useradd -m -u 1234 app
      - WORKDIR $APP_HOME
      - COPY --chown=app:app app/ ./
      - COPY --chmod=0600 app/main.py /etc/main.copy
      - ADD bundle.tar.gz /opt/
      - |-
        RUN <<EOF
        echo "$GREETING $TARGET" > /greeting
        echo second >> /greeting
        EOF
      - RUN python3 - <<PY
      - "import os; open('/py-heredoc', 'w').write(os.environ['MSG'])"
      - PY
      - WORKDIR sub
      - USER app
      - RUN id -u > /tmp/whoami
      - EXPOSE 8000 53/udp
      - VOLUME /data
      - STOPSIGNAL SIGINT
      - HEALTHCHECK --interval=30s CMD test -f /greeting
    context_dir: ctx
    build_args: {TARGET: world}
`)
	r := runner{t: t, root: rootDir}
	r.build(recipe)
	out := r.ok("run", "df", "sh", "-c", `cd /srv/app && find . -type f | sort && stat -c '%U %a' main.py /etc/main.copy && cat /greeting /py-heredoc && echo && cat /tmp/whoami && ls -l /opt/bundle | awk 'NR>1{print $1, $NF}' && echo "arg=[$GREETING]"`)
	want := "./keep.key\n./main.py\napp 644\nroot 600\nhello world\nsecond\nhello world\n1234\nlrwxrwxrwx run.sh\n-rwxr-xr-x run.sh\narg=[]\n"
	if out.stdout != want {
		t.Errorf("image content:\n%s\nwant:\n%s", out.stdout, want)
	}
	var info struct {
		Config struct {
			Config struct {
				User         string
				WorkingDir   string
				ExposedPorts map[string]struct{}
				Volumes      map[string]struct{}
				StopSignal   string
				Env          []string
			} `json:"config"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(r.ok("inspect", "df").stdout), &info); err != nil {
		t.Fatal(err)
	}
	c := info.Config.Config
	if c.User != "app" || c.WorkingDir != "/srv/app/sub" || len(c.ExposedPorts) != 2 || c.Volumes == nil || c.StopSignal != "SIGINT" {
		t.Errorf("config = %+v", c)
	}
	// HEALTHCHECK is in the config as Docker's extension: skopeo shows it.
	layout := filepath.Join(t.TempDir(), "layout")
	r.ok("export", "df", "oci:"+layout+":df")
	rawCfg, err := exec.Command("skopeo", "inspect", "--config", "--raw", "oci:"+layout+":df").Output()
	if err != nil || !strings.Contains(string(rawCfg), `"Healthcheck":{"Test":["CMD-SHELL","test -f /greeting"],"Interval":30000000000}`) {
		t.Errorf("healthcheck in the config: %v\n%s", err, rawCfg)
	}
	if s := strings.Join(c.Env, " "); !strings.Contains(s, "MSG=hello world") || strings.Contains(s, "GREETING") {
		t.Errorf("env = %q (ARG values must not persist)", c.Env)
	}
	// Changing a file COPY does not select keeps the cache.
	os.WriteFile(filepath.Join(ctx, "unrelated", "big.bin"), []byte("changed\n"), 0o644)
	if s := r.build(recipe); s.Stats.ContainersStarted != 0 {
		t.Errorf("a file outside the COPY sources rebuilt %d steps", s.Stats.ContainersStarted)
	}
	// A mistyped instruction is refused when the recipe is read, naming
	// the instruction meant, as BuildKit says it.
	bad := writeRecipe(t, dir, "bad.yaml", "- debian_slim: {}\n- dockerfile_commands: [\"RUN true\", \"COPPY a b\"]\n")
	res := r.run("", "build", bad)
	if res.code == 0 || !strings.Contains(res.stderr, `dockerfile_commands: COPPY a b: unknown instruction: COPPY (did you mean COPY?)`) {
		t.Errorf("COPPY: exit %d\n%s", res.code, tail(res.stderr, 4))
	}
	// ONBUILD is recorded in the config (Docker's extension), as Docker does.
	onbuild := writeRecipe(t, dir, "onbuild.yaml", "- debian_slim: {}\n- dockerfile_commands: [\"ONBUILD RUN echo child\"]\n")
	r.build(onbuild, "-t", "onbuild")
	r.ok("export", "onbuild", "oci:"+layout+":onbuild")
	rawCfg, err = exec.Command("skopeo", "inspect", "--config", "--raw", "oci:"+layout+":onbuild").Output()
	if err != nil || !strings.Contains(string(rawCfg), `"OnBuild":["RUN echo child"]`) {
		t.Errorf("ONBUILD in the config: %v\n%s", err, rawCfg)
	}
}

// TestFromDockerfile builds a multi-stage Dockerfile: global ARG in FROM,
// python:3.11-slim bootstrapped offline, a scratch stage, COPY --from
// stages, heredoc RUN, the <Dockerfile>.dockerignore lookup (it wins over
// the context's .dockerignore), USER and CMD.
func TestFromDockerfile(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	dir := t.TempDir()
	for p, c := range map[string]string{
		"app/main.py":                        "import pathlib\nprint('main ran', pathlib.Path('/assets/BUILT').read_text().strip())\n",
		"app/skip.tmp":                       "ignored\n",
		".dockerignore":                      "app/main.py\n",
		"docker/app.Dockerfile.dockerignore": "**/*.tmp\n",
		"docker/app.Dockerfile": `ARG BASE=python:3.11-slim-bookworm
FROM ${BASE} AS builder
WORKDIR /src
COPY app/ ./
RUN <<EOF
python -m compileall -q .
echo built > /src/BUILT
EOF

FROM scratch AS assets
COPY --from=builder /src/BUILT /BUILT

FROM python:3.11-slim
COPY --from=builder /src /app
COPY --from=assets /BUILT /assets/BUILT
USER nobody
CMD ["python", "/app/main.py"]
`,
	} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644)
	}
	recipe := writeRecipe(t, dir, "fromdf.yaml", `
- from_dockerfile: {path: docker/app.Dockerfile, context_dir: .}
- run_commands: ["true"]
`)
	r := runner{t: t, root: rootDir}
	r.build(recipe)
	out := r.run("", "run", "fromdf")
	if out.code != 0 || out.stdout != "main ran built\n" {
		t.Errorf("CMD: exit %d, %q\n%s", out.code, out.stdout, out.stderr)
	}
	if out := r.ok("run", "fromdf", "sh", "-c", "id -un; ls /app | sort | tr '\\n' ' '"); out.stdout != "nobody\nBUILT __pycache__ main.py " {
		t.Errorf("user and /app: %q", out.stdout)
	}
	missing := writeRecipe(t, dir, "missing.yaml", "- from_dockerfile: {path: other.Dockerfile}\n")
	os.WriteFile(filepath.Join(dir, "other.Dockerfile"), []byte("FROM registry.example/nope:1\nRUN true\n"), 0o644)
	res := r.run("", "build", missing)
	if res.code == 0 || !strings.Contains(res.stderr, `image "registry.example/nope:1" is not in the store and could not be pulled`) {
		t.Errorf("a FROM image that is not in the store: exit %d\n%s", res.code, tail(res.stderr, 4))
	}
}
