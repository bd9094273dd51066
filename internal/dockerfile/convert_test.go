package dockerfile

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/proto"
)

// convertCase converts a Dockerfile and checks the graph the target needs,
// the image config and what was resolved. Expectations are Docker's
// documented behaviour as BuildKit's converter implements it.
type convertCase struct {
	name       string
	dockerfile string
	opts       func(*Options)
	check      func(t *testing.T, g *graph, res *Result, fr *fakeResolver)
}

func TestConvert(t *testing.T) {
	for _, tc := range convertCases {
		t.Run(tc.name, func(t *testing.T) {
			fr := newFakeResolver(t)
			opts := Options{MetaResolver: fr}
			if tc.opts != nil {
				tc.opts(&opts)
			}
			res, err := Convert(context.Background(), []byte(tc.dockerfile), opts)
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			g := loadGraph(t, res.Definition)
			tc.check(t, g, res, fr)
			if t.Failed() {
				t.Logf("graph:\n%s", g)
			}
		})
	}
}

var convertCases = []convertCase{
	{
		name: "unused stage is absent and its base never resolved",
		dockerfile: `FROM alpine:3.20 AS build
RUN echo building > /out
FROM localhost:5000/app/base:1 AS unused
RUN echo unused
FROM debian:bookworm
COPY --from=build /out /out
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			for _, e := range g.execs() {
				if strings.Contains(strings.Join(e.Meta.Args, " "), "unused") {
					t.Errorf("the unused stage's RUN is in the graph: %v", e.Meta.Args)
				}
			}
			g.execRunning(t, "echo building")
			if refs := fr.refs(); slices.Contains(refs, "localhost:5000/app/base:1") {
				t.Errorf("resolved the unused stage's base; resolved %q", refs)
			}
			want := map[string]digest.Digest{
				"docker.io/library/alpine:3.20":     fr.digest("docker.io/library/alpine:3.20"),
				"docker.io/library/debian:bookworm": fr.digest("docker.io/library/debian:bookworm"),
			}
			if !mapsEqual(res.BaseImages, want) {
				t.Errorf("BaseImages = %v, want %v", res.BaseImages, want)
			}
		},
	},
	{
		name: "target selects a stage, case-insensitively",
		dockerfile: `FROM alpine:3.20 AS Build
ENV STAGE=build
RUN make
FROM debian:bookworm
RUN echo final
`,
		opts: func(o *Options) { o.Target = "build" },
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			g.execRunning(t, "make")
			if n := len(g.execs()); n != 1 {
				t.Errorf("%d exec ops, want only the target's RUN make", n)
			}
			if !slices.Contains(res.Image.Config.Env, "STAGE=build") || !slices.Equal(res.Image.Config.Cmd, []string{"/bin/sh"}) {
				t.Errorf("config is not the build stage's: env %q cmd %q", res.Image.Config.Env, res.Image.Config.Cmd)
			}
			if slices.Contains(fr.refs(), "docker.io/library/debian:bookworm") {
				t.Errorf("resolved the final stage's base, which --target build does not need")
			}
		},
	},
	{
		name: "FROM resolves through the MetaResolver and the source op is pinned by digest",
		dockerfile: `FROM debian:bookworm
RUN true
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			ref := "docker.io/library/debian:bookworm"
			dgst := fr.digest(ref)
			g.sourceOp(t, "docker-image://"+ref+"@"+dgst.String())
			if got := fr.calls; len(got) != 1 || got[0].ref != ref || got[0].platform.OS != "linux" || got[0].platform.Architecture != host.Architecture {
				t.Errorf("resolver calls = %+v, want one for %s on %s", got, ref, formatPlatform(host))
			}
			if res.BaseImages[ref] != dgst {
				t.Errorf("BaseImages[%s] = %s, want %s", ref, res.BaseImages[ref], dgst)
			}
			if res.Platform.OS != "linux" || res.Platform.Architecture != host.Architecture {
				t.Errorf("Platform = %+v, want the host's linux platform", res.Platform)
			}
			// The base's layers and history carry over; the RUN adds history.
			if len(res.Image.RootFS.DiffIDs) != 1 || len(res.Image.History) != 2 {
				t.Errorf("rootfs %v, history %d entries; want the base's one layer and 2 entries", res.Image.RootFS.DiffIDs, len(res.Image.History))
			}
		},
	},
	{
		name: "FROM pinned by digest passes the pinned reference",
		dockerfile: `FROM alpine@sha256:4fa5dce980c32bc51b3be37784cffda9fd01f55ec3ee689533e02b26fb851b56
RUN true
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			ref := "docker.io/library/alpine@" + fr.digest("docker.io/library/alpine:3.20").String()
			if _, ok := fr.images[ref]; !ok || !slices.Equal(fr.refs(), []string{ref}) {
				t.Fatalf("resolved %q, want [%s] (is the testdata digest in the Dockerfile stale?)", fr.refs(), ref)
			}
			g.sourceOp(t, "docker-image://"+ref)
		},
	},
	{
		name: "FROM scratch resolves nothing",
		dockerfile: `FROM scratch
COPY app /app
ENTRYPOINT ["/app"]
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			if len(fr.calls) != 0 || len(res.BaseImages) != 0 {
				t.Errorf("resolved %q for scratch", fr.refs())
			}
			if got := g.sources(); !slices.Equal(got, []string{"local://context"}) {
				t.Errorf("sources = %q, want only the build context", got)
			}
			if c := g.copiesTo("/app"); len(c) != 1 {
				t.Errorf("%d copies to /app, want 1", len(c))
			}
		},
	},
	{
		name: "a base whose config has no diff_ids is scratch",
		dockerfile: `FROM localhost:5000/empty:1
COPY app /app
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			for _, s := range g.sources() {
				if strings.HasPrefix(s, "docker-image://") {
					t.Errorf("source op %s for an image with no layers", s)
				}
			}
			if !slices.Equal(fr.refs(), []string{"localhost:5000/empty:1"}) {
				t.Errorf("resolved %q, want the empty image once", fr.refs())
			}
		},
	},
	{
		name: "COPY heredoc is a mkfile in a scratch file op and a copy",
		dockerfile: `FROM debian:bookworm
COPY <<EOF /etc/greeting
hello
EOF
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			var mk *pb.FileActionMkFile
			for _, a := range g.fileActions() {
				if m := a.GetMkfile(); m != nil {
					mk = m
					if a.Input != -1 {
						t.Errorf("mkfile input = %d, want -1 (scratch)", a.Input)
					}
				}
			}
			if mk == nil || string(mk.Data) != "hello\n" || mk.Mode != 0o644 {
				t.Fatalf("mkfile = %v, want \"hello\\n\" mode 0644", mk)
			}
			c := g.copiesTo("/etc/greeting")
			if len(c) != 1 || c[0].Src != mk.Path {
				t.Errorf("copies to /etc/greeting = %v, want one from %s", c, mk.Path)
			}
		},
	},
	{
		name: "RUN heredoc with a shebang runs the file",
		dockerfile: `FROM debian:bookworm
RUN <<EOF
#!/usr/bin/env python3
print("hi")
EOF
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			e := g.execRunning(t, "/dev/pipes/EOF")
			if want := []string{"/bin/sh", "-c", "/dev/pipes/EOF"}; !slices.Equal(e.Meta.Args, want) {
				t.Errorf("args = %q, want %q", e.Meta.Args, want)
			}
			var mount *pb.Mount
			for _, m := range e.Mounts {
				if m.Dest == "/dev/pipes/" {
					mount = m
				}
			}
			if mount == nil || !mount.Readonly {
				t.Fatalf("no read-only mount at /dev/pipes/: %v", e.Mounts)
			}
			var script *pb.FileActionMkFile
			for _, a := range g.fileActions() {
				if m := a.GetMkfile(); m != nil && m.Path == "/EOF" {
					script = m
				}
			}
			if script == nil || !strings.HasPrefix(string(script.Data), "#!/usr/bin/env python3\n") || script.Mode != 0o755 {
				t.Errorf("script = %v, want the heredoc as an executable file", script)
			}
		},
	},
	{
		name: "RUN heredoc without a shebang runs in the shell",
		dockerfile: `FROM debian:bookworm
RUN <<EOF
echo one
echo two
EOF
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			e := g.execRunning(t, "echo two")
			if want := []string{"/bin/sh", "-c", "echo one\necho two\n"}; !slices.Equal(e.Meta.Args, want) {
				t.Errorf("args = %q, want %q", e.Meta.Args, want)
			}
			if len(e.Mounts) != 1 {
				t.Errorf("mounts = %v, want only the rootfs", e.Mounts)
			}
		},
	},
	{
		name: "a global ARG does not leak into a stage",
		dockerfile: `ARG VERSION=1.0
FROM debian:bookworm
RUN echo "v=$VERSION"
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			e := g.execRunning(t, "echo")
			if v, ok := env(e, "VERSION"); ok {
				t.Errorf("VERSION=%q in the RUN's environment; a global ARG is not in scope in a stage", v)
			}
			if last := e.Meta.Args[len(e.Meta.Args)-1]; last != `echo "v=$VERSION"` {
				t.Errorf("RUN = %q; the converter must leave $VERSION to the shell", last)
			}
		},
	},
	{
		name: "ARG re-declared in a stage takes the global default",
		dockerfile: `ARG VERSION=1.0
FROM debian:bookworm
ARG VERSION
RUN echo "v=$VERSION"
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			if v, _ := env(g.execRunning(t, "echo"), "VERSION"); v != "1.0" {
				t.Errorf("VERSION = %q, want the global default 1.0", v)
			}
			for _, kv := range res.Image.Config.Env {
				if strings.HasPrefix(kv, "VERSION=") {
					t.Errorf("ARG value %q is in the image config; ARGs are build-time only", kv)
				}
			}
		},
	},
	{
		name: "build args override ARG defaults, in FROM and in stages",
		dockerfile: `ARG BASE=alpine:3.20
ARG VERSION=1.0
FROM ${BASE}
ARG VERSION
ARG MODE=debug
RUN echo "$VERSION $MODE"
`,
		opts: func(o *Options) {
			o.BuildArgs = map[string]string{"BASE": "debian:bookworm", "VERSION": "2.0", "MODE": "release", "UNDECLARED": "x"}
		},
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			if !slices.Equal(fr.refs(), []string{"docker.io/library/debian:bookworm"}) {
				t.Errorf("resolved %q, want the BASE build arg's image", fr.refs())
			}
			e := g.execRunning(t, "echo")
			for k, want := range map[string]string{"VERSION": "2.0", "MODE": "release"} {
				if v, _ := env(e, k); v != want {
					t.Errorf("%s = %q, want %q", k, v, want)
				}
			}
			if v, ok := env(e, "UNDECLARED"); ok {
				t.Errorf("UNDECLARED=%q reached the RUN without an ARG", v)
			}
		},
	},
	{
		name: "ENTRYPOINT after CMD in the same stage keeps CMD",
		dockerfile: `FROM debian:bookworm
CMD ["--help"]
ENTRYPOINT ["/usr/bin/app"]
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			c := res.Image.Config
			if !slices.Equal(c.Entrypoint, []string{"/usr/bin/app"}) || !slices.Equal(c.Cmd, []string{"--help"}) {
				t.Errorf("entrypoint %q cmd %q, want [/usr/bin/app] [--help]", c.Entrypoint, c.Cmd)
			}
		},
	},
	{
		name: "ENTRYPOINT clears a CMD inherited from the base or a parent stage",
		dockerfile: `FROM debian:bookworm AS base
CMD ["serve"]
FROM base
ENTRYPOINT ["/usr/bin/app"]
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			c := res.Image.Config
			if !slices.Equal(c.Entrypoint, []string{"/usr/bin/app"}) || c.Cmd != nil {
				t.Errorf("entrypoint %q cmd %q, want [/usr/bin/app] and no cmd", c.Entrypoint, c.Cmd)
			}
		},
	},
	{
		name: "ADD asks the solver to unpack archives by content, COPY does not",
		dockerfile: `FROM debian:bookworm
ADD rootfs.tar.xz /opt/
ADD notes.txt /opt/notes/
COPY rootfs.tar.xz /srv/
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			for dest, want := range map[string]bool{"/opt/": true, "/opt/notes/": true, "/srv/": false} {
				c := g.copiesTo(dest)
				if len(c) != 1 {
					t.Errorf("%d copies to %s, want 1", len(c), dest)
					continue
				}
				if c[0].AttemptUnpackDockerCompatibility != want {
					t.Errorf("copy to %s: attemptUnpackDockerCompatibility = %v, want %v", dest, c[0].AttemptUnpackDockerCompatibility, want)
				}
			}
		},
	},
	{
		name: "COPY to . copies into the WORKDIR as a directory",
		dockerfile: `FROM debian:bookworm
WORKDIR /srv
COPY app.py .
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			c := g.copiesTo("/srv/")
			if len(c) != 1 || c[0].Src != "/app.py" || !c[0].CreateDestPath {
				t.Errorf("copies to /srv/ = %v, want /app.py into the directory /srv/", c)
			}
		},
	},
	{
		name: "COPY --parents and --exclude become include and exclude patterns",
		dockerfile: `FROM debian:bookworm
COPY --parents src/*/main.go /build/
COPY --exclude=*.md --exclude=tests docs /usr/share/doc/app/
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			c := g.copiesTo("/build/")
			if len(c) != 1 || c[0].Src != "/" || !slices.Equal(c[0].IncludePatterns, []string{"src/*/main.go"}) {
				t.Errorf("copies to /build/ = %v, want the context root with include pattern src/*/main.go", c)
			}
			c = g.copiesTo("/usr/share/doc/app/")
			if len(c) != 1 || c[0].Src != "/docs" || !slices.Equal(c[0].ExcludePatterns, []string{"*.md", "tests"}) {
				t.Errorf("copies to /usr/share/doc/app/ = %v, want /docs excluding *.md and tests", c)
			}
		},
	},
	{
		name: "ADD of a URL is an http source with its checksum, not unpacked",
		dockerfile: `FROM debian:bookworm
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://localhost:8443/a.tar.gz /opt/
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			src := g.sourceOp(t, "https://localhost:8443/a.tar.gz")
			if src.Attrs[pb.AttrHTTPChecksum] != "sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d" {
				t.Errorf("http source attrs = %v, want the checksum", src.Attrs)
			}
			c := g.copiesTo("/opt/")
			if len(c) != 1 || c[0].AttemptUnpackDockerCompatibility {
				t.Errorf("copies to /opt/ = %v, want one that does not unpack (Docker unpacks local archives only)", c)
			}
		},
	},
	{
		name: "COPY --chown and --chmod carry owner and mode by name",
		dockerfile: `FROM debian:bookworm
COPY --chown=app:staff --chmod=0750 conf/ /etc/app/
COPY --chown=1000 bin /usr/local/bin/
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			c := g.copiesTo("/etc/app/")
			if len(c) != 1 {
				t.Fatalf("%d copies to /etc/app/, want 1", len(c))
			}
			if u, gr := c[0].Owner.GetUser().GetByName().GetName(), c[0].Owner.GetGroup().GetByName().GetName(); u != "app" || gr != "staff" {
				t.Errorf("owner = %v, want app:staff by name", c[0].Owner)
			}
			if c[0].Mode != 0o750 {
				t.Errorf("mode = %o, want 750", c[0].Mode)
			}
			c = g.copiesTo("/usr/local/bin/")
			if len(c) != 1 || c[0].Owner.GetUser().GetByID() != 1000 || c[0].Mode != -1 {
				t.Errorf("copies to /usr/local/bin/ = %v, want owner uid 1000 and mode unset", c)
			}
		},
	},
	{
		name: "WORKDIR under USER is created owned by the user",
		dockerfile: `FROM debian:bookworm
USER app
WORKDIR /home/app/work
RUN pwd
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			var mk *pb.FileActionMkDir
			for _, a := range g.fileActions() {
				if m := a.GetMkdir(); m != nil {
					mk = m
				}
			}
			if mk == nil || mk.Path != "/home/app/work" || !mk.MakeParents || mk.Owner.GetUser().GetByName().GetName() != "app" {
				t.Fatalf("mkdir = %v, want /home/app/work with parents, owned by app", mk)
			}
			e := g.execRunning(t, "pwd")
			if e.Meta.Cwd != "/home/app/work" || e.Meta.User != "app" {
				t.Errorf("RUN cwd %q user %q, want /home/app/work as app", e.Meta.Cwd, e.Meta.User)
			}
			if res.Image.Config.WorkingDir != "/home/app/work" || res.Image.Config.User != "app" {
				t.Errorf("config workdir %q user %q", res.Image.Config.WorkingDir, res.Image.Config.User)
			}
		},
	},
	{
		name: "metadata instructions land in the config",
		dockerfile: `FROM debian:bookworm
LABEL org.opencontainers.image.title="demo app" version=1
EXPOSE 8080/tcp 53/udp
ENV APP_ENV=prod
STOPSIGNAL SIGTERM
VOLUME ["/data"]
SHELL ["/bin/bash", "-eo", "pipefail", "-c"]
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD curl -f http://localhost:8080/ || exit 1
USER 1000:1000
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			c := res.Image.Config
			if c.Labels["org.opencontainers.image.title"] != "demo app" || c.Labels["version"] != "1" {
				t.Errorf("labels = %v", c.Labels)
			}
			if _, ok := c.ExposedPorts["8080/tcp"]; !ok || len(c.ExposedPorts) != 2 {
				t.Errorf("exposed ports = %v, want 8080/tcp and 53/udp", c.ExposedPorts)
			}
			if _, ok := c.ExposedPorts["53/udp"]; !ok {
				t.Errorf("exposed ports = %v, want 53/udp", c.ExposedPorts)
			}
			if !slices.Contains(c.Env, "APP_ENV=prod") {
				t.Errorf("env = %q", c.Env)
			}
			if c.StopSignal != "SIGTERM" {
				t.Errorf("stop signal = %q", c.StopSignal)
			}
			if _, ok := c.Volumes["/data"]; !ok || len(c.Volumes) != 1 {
				t.Errorf("volumes = %v", c.Volumes)
			}
			if !slices.Equal(c.Shell, []string{"/bin/bash", "-eo", "pipefail", "-c"}) {
				t.Errorf("shell = %q", c.Shell)
			}
			h := c.Healthcheck
			if h == nil || !slices.Equal(h.Test, []string{"CMD-SHELL", "curl -f http://localhost:8080/ || exit 1"}) ||
				h.Interval != 30*time.Second || h.Timeout != 5*time.Second || h.Retries != 3 {
				t.Errorf("healthcheck = %+v", h)
			}
			if c.User != "1000:1000" {
				t.Errorf("user = %q", c.User)
			}
			if n := len(g.execs()); n != 0 {
				t.Errorf("%d exec ops for metadata-only instructions", n)
			}
		},
	},
	{
		name: "SHELL changes how later RUNs are run",
		dockerfile: `FROM debian:bookworm
SHELL ["/bin/bash", "-eo", "pipefail", "-c"]
RUN false | true
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			if want := []string{"/bin/bash", "-eo", "pipefail", "-c", "false | true"}; !slices.Equal(g.execRunning(t, "false").Meta.Args, want) {
				t.Errorf("args = %q, want %q", g.execRunning(t, "false").Meta.Args, want)
			}
		},
	},
	{
		name: "the base image's config is inherited and applies to RUN",
		dockerfile: `FROM localhost:5000/app/base:1
RUN id
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			e := g.execRunning(t, "id")
			if e.Meta.User != "app" || e.Meta.Cwd != "/srv/app" {
				t.Errorf("RUN user %q cwd %q, want the base's app and /srv/app", e.Meta.User, e.Meta.Cwd)
			}
			if v, _ := env(e, "APP_HOME"); v != "/srv/app" {
				t.Errorf("APP_HOME = %q in the RUN, want the base's /srv/app", v)
			}
			c := res.Image.Config
			if !slices.Equal(c.Entrypoint, []string{"/usr/bin/tini", "--"}) || !slices.Equal(c.Cmd, []string{"serve"}) ||
				c.StopSignal != "SIGQUIT" || c.Labels["org.opencontainers.image.vendor"] != "base-vendor" {
				t.Errorf("config = %+v, want the base's entrypoint, cmd, stop signal and labels", c)
			}
		},
	},
	{
		name: "COPY --from an image resolves it; --from a stage does not",
		dockerfile: `FROM alpine:3.20 AS tools
RUN echo tool > /tool
FROM debian:bookworm
COPY --from=localhost:5000/app/base:1 /usr/bin/tini /usr/bin/tini
COPY --from=tools /tool /usr/local/bin/tool
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			ref := "localhost:5000/app/base:1"
			g.sourceOp(t, "docker-image://"+ref+"@"+fr.digest(ref).String())
			if len(res.BaseImages) != 3 {
				t.Errorf("BaseImages = %v, want debian, alpine and the --from image", res.BaseImages)
			}
			if len(g.copiesTo("/usr/bin/tini")) != 1 || len(g.copiesTo("/usr/local/bin/tool")) != 1 {
				t.Errorf("missing a copy")
			}
			g.execRunning(t, "echo tool")
		},
	},
	{
		name: "COPY --link copies onto scratch and merges",
		dockerfile: `FROM debian:bookworm
RUN echo base
COPY --link app /app
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			if g.count("merge") != 1 {
				t.Fatalf("%d merge ops, want 1", g.count("merge"))
			}
			for _, a := range g.fileActions() {
				if c := a.GetCopy(); c != nil && c.Dest == "/app" && a.Input != -1 {
					t.Errorf("linked copy's input = %d, want -1 (scratch)", a.Input)
				}
			}
		},
	},
	{
		name: "the build context is one local source with its name and excludes",
		dockerfile: `FROM debian:bookworm
COPY . /src
COPY README.md /doc/
`,
		opts: func(o *Options) {
			o.ContextName = "app"
			o.Excludes = []string{"*.log", "!keep.log", "node_modules"}
		},
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			var locals []string
			for _, s := range g.sources() {
				if strings.HasPrefix(s, "local://") {
					locals = append(locals, s)
				}
			}
			if !slices.Equal(locals, []string{"local://app"}) {
				t.Fatalf("local sources = %q, want [local://app]", locals)
			}
			src := g.sourceOp(t, "local://app")
			if want := `["*.log","!keep.log","node_modules"]`; src.Attrs[pb.AttrExcludePatterns] != want {
				t.Errorf("exclude patterns = %q, want %q", src.Attrs[pb.AttrExcludePatterns], want)
			}
		},
	},
	{
		name: "two independent stages are separate branches of the graph",
		dockerfile: `FROM alpine:3.20 AS a
RUN echo a > /a
FROM debian:bookworm AS b
RUN echo b > /b
FROM debian:bookworm
COPY --from=a /a /a
COPY --from=b /b /b
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			a, b := g.execRunning(t, "echo a"), g.execRunning(t, "echo b")
			// Neither RUN depends on the other: their inputs are the base images.
			inputs := func(e *pb.ExecOp) []string {
				for _, d := range g.order {
					if g.ops[d].GetExec() == e {
						var ids []string
						for _, in := range g.ops[d].Inputs {
							ids = append(ids, opKind(g.ops[digest.Digest(in.Digest)]))
						}
						return ids
					}
				}
				return nil
			}
			if ia, ib := inputs(a), inputs(b); !slices.Equal(ia, []string{"source"}) || !slices.Equal(ib, []string{"source"}) {
				t.Errorf("RUN inputs = %q and %q, want each on its own base image", ia, ib)
			}
		},
	},
	{
		name: "the source map names each instruction's line",
		dockerfile: `FROM debian:bookworm

RUN echo first
RUN echo \
    second
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			src := res.Definition.Source
			if src == nil || len(src.Infos) != 1 || src.Infos[0].Filename != "Dockerfile" {
				t.Fatalf("source = %v, want one Dockerfile", src)
			}
			for _, tc := range []struct {
				run        string
				start, end int32
			}{{"echo first", 3, 3}, {"second", 4, 5}} {
				e := g.execRunning(t, tc.run)
				var d digest.Digest
				for _, od := range g.order {
					if g.ops[od].GetExec() == e {
						d = od
					}
				}
				locs := src.Locations[d.String()]
				if locs == nil || len(locs.Locations) == 0 || len(locs.Locations[0].Ranges) == 0 {
					t.Errorf("RUN %s: no source location", tc.run)
					continue
				}
				r := locs.Locations[0].Ranges
				if r[0].Start.Line != tc.start || r[len(r)-1].End.Line != tc.end {
					t.Errorf("RUN %s: lines %d-%d, want %d-%d", tc.run, r[0].Start.Line, r[len(r)-1].End.Line, tc.start, tc.end)
				}
			}
		},
	},
	{
		name: "SOURCE_DATE_EPOCH sets the epoch and history times",
		dockerfile: `FROM debian:bookworm
RUN true
`,
		opts: func(o *Options) { o.BuildArgs = map[string]string{"SOURCE_DATE_EPOCH": "1700000000"} },
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			want := time.Unix(1700000000, 0).UTC()
			if res.Epoch == nil || !res.Epoch.Equal(want) {
				t.Fatalf("Epoch = %v, want %v", res.Epoch, want)
			}
			last := res.Image.History[len(res.Image.History)-1]
			if last.Created == nil || !last.Created.Equal(want) {
				t.Errorf("RUN history created = %v, want %v", last.Created, want)
			}
		},
	},
	{
		name: "a shell-form CMD is reported as a warning with its line",
		dockerfile: `FROM debian:bookworm
CMD echo hi
`,
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			if len(res.Warnings) != 1 || res.Warnings[0].Rule != "JSONArgsRecommended" || res.Warnings[0].Line != 2 {
				t.Errorf("warnings = %v, want JSONArgsRecommended at line 2", res.Warnings)
			}
			if !slices.Equal(res.Image.Config.Cmd, []string{"/bin/sh", "-c", "echo hi"}) {
				t.Errorf("cmd = %q", res.Image.Config.Cmd)
			}
		},
	},
	{
		name: "an explicit platform is resolved and written to the config",
		dockerfile: `FROM debian:bookworm
ARG TARGETARCH
RUN echo $TARGETARCH
`,
		opts: func(o *Options) { o.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64"} },
		check: func(t *testing.T, g *graph, res *Result, fr *fakeResolver) {
			if len(fr.calls) != 1 || fr.calls[0].platform.Architecture != "arm64" {
				t.Errorf("resolver calls = %+v, want one for arm64", fr.calls)
			}
			if res.Image.Architecture != "arm64" || res.Image.OS != "linux" {
				t.Errorf("config platform = %s/%s, want linux/arm64", res.Image.OS, res.Image.Architecture)
			}
			if v, _ := env(g.execRunning(t, "TARGETARCH"), "TARGETARCH"); v != "arm64" {
				t.Errorf("TARGETARCH = %q, want arm64", v)
			}
		},
	},
}

func TestConvertIsDeterministic(t *testing.T) {
	df := []byte(`FROM alpine:3.20 AS a
RUN echo a > /a
FROM debian:bookworm
COPY --from=a /a /a
COPY . /src
RUN ls /src
`)
	var first *pb.Definition
	for i := range 3 {
		res, err := Convert(context.Background(), df, Options{MetaResolver: newFakeResolver(t), Excludes: []string{"*.tmp"}})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res.Definition
			continue
		}
		// Op digests are digests of these bytes: they are the cache keys'
		// inputs, so they must not vary between conversions.
		if !slices.EqualFunc(res.Definition.Def, first.Def, bytes.Equal) {
			t.Fatalf("conversion %d has other op bytes than the first", i)
		}
		if !proto.Equal(res.Definition, first) {
			t.Fatalf("conversion %d has other metadata or source map than the first", i)
		}
	}
}

func TestConvertDoesNotChangeOptions(t *testing.T) {
	args := map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}
	opts := Options{MetaResolver: newFakeResolver(t), BuildArgs: args}
	if _, err := Convert(context.Background(), []byte("FROM debian:bookworm\n"), opts); err != nil {
		t.Fatal(err)
	}
	if len(args) != 1 || args["SOURCE_DATE_EPOCH"] != "1700000000" {
		t.Errorf("BuildArgs changed to %v", args)
	}
	if opts.Platform != nil || opts.ContextName != "" {
		t.Errorf("options changed: %+v", opts)
	}
}

func TestConvertErrors(t *testing.T) {
	badDigest := MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
		return "sha256:abc", []byte(`{}`), nil
	})
	otherDigest := MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
		return digest.FromString("another manifest"), []byte(`{"rootfs":{"type":"layers"}}`), nil
	})
	notJSON := MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
		return digest.FromString("m"), []byte(`not json`), nil
	})
	for _, tc := range []struct {
		name       string
		dockerfile string
		opts       func(*Options)
		line       int      // the *Error's StartLine; 0: not an *Error
		want       []string // substrings of the message
		is         error
	}{
		{
			name:       "unknown instruction",
			dockerfile: "FROM debian:bookworm\nRUN true\nCOPPY a b\n",
			line:       3,
			want:       []string{"Dockerfile:3: ", "unknown instruction: COPPY", "did you mean COPY?"},
		},
		{
			name:       "base image the resolver does not know",
			dockerfile: "FROM debian:bookworm AS a\nRUN true\nFROM localhost:5000/missing:1\nCOPY --from=a / /\n",
			line:       3,
			want:       []string{"Dockerfile:3: ", "localhost:5000/missing:1", "not in the store: pull it first"},
			is:         errNotInStore,
		},
		{
			name:       "target that is not a stage",
			dockerfile: "FROM debian:bookworm AS build\nRUN true\nFROM alpine:3.20 AS test\n",
			opts:       func(o *Options) { o.Target = "relase" },
			want:       []string{`target stage "relase" not found`, "(build, test)"},
		},
		{
			name:       "target in a Dockerfile without named stages",
			dockerfile: "FROM debian:bookworm\n",
			opts:       func(o *Options) { o.Target = "build" },
			want:       []string{`target stage "build" not found`, "names no stage", "AS build"},
		},
		{
			name:       "COPY --from with a variable",
			dockerfile: "FROM debian:bookworm\nARG SRC=a\nCOPY --from=$SRC /x /x\n",
			// BuildKit gives no line for this one, but says what to do.
			want: []string{"Dockerfile: ", "variable expansion is not supported for --from", "define a new stage"},
		},
		{
			name:       "unterminated heredoc spans lines",
			dockerfile: "FROM debian:bookworm\nRUN <<EOF\necho hi\n",
			line:       2,
			want:       []string{"Dockerfile:2-3: ", "unterminated heredoc"},
		},
		{
			name:       "failed check when the Dockerfile makes checks errors",
			dockerfile: "# check=error=true\nFROM debian:bookworm\nCMD echo hi\n",
			line:       3,
			want:       []string{"Dockerfile:3: ", "JSONArgsRecommended: JSON arguments recommended for CMD", "(line 3)", "check=skip=<rule>"},
		},
		{
			name:       "nil resolver",
			dockerfile: "FROM debian:bookworm\n",
			opts:       func(o *Options) { o.MetaResolver = nil },
			want:       []string{"Options.MetaResolver is nil", "store or a registry"},
		},
		{
			name:       "empty Dockerfile",
			dockerfile: "\n  \n",
			want:       []string{"Dockerfile is empty", "FROM"},
		},
		{
			name:       "non-linux platform",
			dockerfile: "FROM debian:bookworm\n",
			opts:       func(o *Options) { o.Platform = &ocispec.Platform{OS: "windows", Architecture: "amd64"} },
			want:       []string{"Options.Platform", `"windows"`, "linux"},
		},
		{
			name:       "platform without architecture",
			dockerfile: "FROM debian:bookworm\n",
			opts:       func(o *Options) { o.Platform = &ocispec.Platform{OS: "linux"} },
			want:       []string{"Options.Platform", "architecture is empty"},
		},
		{
			name:       "build arg name with '='",
			dockerfile: "FROM debian:bookworm\n",
			opts:       func(o *Options) { o.BuildArgs = map[string]string{"A=1": ""} },
			want:       []string{`build arg "A=1"`, "key KEY and value VALUE"},
		},
		{
			name:       "bad exclude pattern",
			dockerfile: "FROM debian:bookworm\n",
			opts:       func(o *Options) { o.Excludes = []string{"[a-"} },
			want:       []string{"Options.Excludes", ".dockerignore"},
		},
		{
			name:       "resolver returns a malformed digest",
			dockerfile: "FROM debian:bookworm\n",
			opts:       func(o *Options) { o.MetaResolver = badDigest },
			line:       1,
			want:       []string{"Dockerfile:1: ", `digest "sha256:abc"`, "manifest digest"},
		},
		{
			name:       "resolver returns another digest for a pinned reference",
			dockerfile: "FROM debian@sha256:4fa5dce980c32bc51b3be37784cffda9fd01f55ec3ee689533e02b26fb851b56\n",
			opts:       func(o *Options) { o.MetaResolver = otherDigest },
			line:       1,
			want:       []string{"pinned to sha256:4fa5dce9", "must return the pinned image"},
		},
		{
			name:       "resolver returns a config that is not JSON",
			dockerfile: "FROM debian:bookworm\n",
			opts:       func(o *Options) { o.MetaResolver = notJSON },
			line:       1,
			want:       []string{"not JSON", "config blob"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{MetaResolver: newFakeResolver(t)}
			if tc.opts != nil {
				tc.opts(&opts)
			}
			res, err := Convert(context.Background(), []byte(tc.dockerfile), opts)
			if err == nil {
				t.Fatalf("Convert succeeded (%d ops), want an error", len(res.Definition.Def))
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			var de *Error
			if errors.As(err, &de) != (tc.line != 0) || (de != nil && de.StartLine != tc.line) {
				t.Errorf("error %q (%T): want an *Error at line %d", msg, err, tc.line)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", msg, tc.is)
			}
		})
	}
}

func TestConvertCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	block := MetaResolverFunc(func(ctx context.Context, ref string, p ocispec.Platform) (digest.Digest, []byte, error) {
		cancel()
		<-ctx.Done()
		return "", nil, ctx.Err()
	})
	_, err := Convert(ctx, []byte("FROM debian:bookworm\n"), Options{MetaResolver: block})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Convert = %v, want context.Canceled", err)
	}
}

func mapsEqual(a, b map[string]digest.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// BenchmarkConvert measures converting a four-stage Dockerfile with
// heredocs, COPY --from and metadata, with an in-memory resolver.
func BenchmarkConvert(b *testing.B) {
	df := []byte(`# syntax=docker/dockerfile:1
ARG VERSION=1.0
FROM alpine:3.20 AS deps
RUN apk add --no-cache build-base
FROM deps AS build
ARG VERSION
WORKDIR /src
COPY . .
RUN make VERSION=$VERSION
FROM debian:bookworm AS docs
RUN <<EOF
#!/bin/sh
echo docs > /docs
EOF
FROM debian:bookworm
LABEL org.opencontainers.image.title=demo
ENV APP_HOME=/srv/app
COPY --from=build /src/out /usr/local/bin/app
COPY --from=docs /docs /usr/share/doc/app
COPY <<EOF /etc/app.conf
listen 8080
EOF
USER 1000
EXPOSE 8080
HEALTHCHECK CMD ["/usr/local/bin/app", "check"]
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["serve"]
`)
	fr := newFakeResolver(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Convert(ctx, df, Options{MetaResolver: fr}); err != nil {
			b.Fatal(err)
		}
	}
}
