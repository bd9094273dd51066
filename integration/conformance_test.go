package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// The Dockerfile conformance suite: each case is a Dockerfile, a build
// context and the outcome the Dockerfile reference and BuildKit (v0.34's
// dockerfile2llb and file ops) give for it: files of the root filesystem
// (content, mode, owner, symlink target, absence) and fields of the image
// config. The image is built with `snapbuild build -f`, exported as a gzip
// oci-archive and unpacked with umoci; some cases also run it with podman.
// TestDockerfileConformanceDocker checks the same expectations against
// Docker's own BuildKit, for the cases it supports.
//
// Cases are named after the rule they check; a failing case names the
// path or config field and both values.

// conformanceBase and conformanceOther are the images the cases build on:
// made of the host's programs (internal/testimage), loaded into the store
// from an OCI layout, never pulled.
const (
	conformanceBase  = "conform-base"
	conformanceOther = "conform-other"
)

// conformanceTools are the base image's programs.
var conformanceTools = []string{"sh", "cat", "echo", "mkdir", "id", "awk", "env"}

// conformanceCase is one Dockerfile and what building it must give.
type conformanceCase struct {
	name       string
	dockerfile string
	files      map[string]string // build context: path → content (0644)
	setup      func(t *testing.T, ctx string)
	buildArgs  map[string]string
	target     string
	// secrets are --secret values: id → the value, given through a file.
	secrets map[string]string
	want    []fileWant
	// config is a JSON object: each of its fields must equal the image
	// config's (config.config) field of that name; null means absent.
	config string
	// run, when set, runs the image with podman and these arguments (after
	// the image name); stdout must be runOut.
	run    []string
	runOut string
	// docker marks a case Docker 20.10's BuildKit (Debian's docker.io)
	// supports with the outcome BuildKit v0.34 gives; the others use
	// newer syntax (heredocs, --link, --parents, --exclude) or newer rules.
	docker bool
}

// fileWant is one expectation about a path of the root filesystem.
type fileWant struct {
	path     string
	absent   bool
	dir      bool
	content  *string // regular file content
	link     string  // symlink target
	mode     os.FileMode
	uid, gid int // -1: not checked
	cap      string
}

func wantFile(path, content string) fileWant {
	return fileWant{path: path, content: &content, uid: -1, gid: -1}
}

func wantFileMode(path, content string, mode os.FileMode, uid, gid int) fileWant {
	return fileWant{path: path, content: &content, mode: mode, uid: uid, gid: gid}
}

func wantDir(path string, mode os.FileMode, uid, gid int) fileWant {
	return fileWant{path: path, dir: true, mode: mode, uid: uid, gid: gid}
}

func wantLink(path, target string) fileWant {
	return fileWant{path: path, link: target, uid: -1, gid: -1}
}

func wantAbsent(path string) fileWant { return fileWant{path: path, absent: true} }

func wantCap(path, capText string) fileWant {
	return fileWant{path: path, cap: capText, uid: -1, gid: -1}
}

// basePath is the PATH of the base images' config.
const basePath = "PATH=" + testimage.PATH

// Context files most cases share.
var (
	ctxTexts = map[string]string{"a.txt": "a\n", "b.txt": "b\n", "c.md": "c\n"}
	ctxTree  = map[string]string{"dir/x.txt": "x\n", "dir/sub/y.txt": "y\n"}
)

func mergeFiles(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func conformanceCases() []conformanceCase {
	arch := runtime.GOARCH
	return []conformanceCase{
		// ARG and ENV: scoping and expansion.
		{
			name: "arg-global-not-in-stage",
			dockerfile: `ARG V=global
FROM conform-base
RUN echo "[$V]" > /out
`,
			want:   []fileWant{wantFile("/out", "[]\n")},
			docker: true,
		},
		{
			name: "arg-bare-takes-global-default",
			dockerfile: `ARG V=global
FROM conform-base
ARG V
RUN echo "[$V]" > /out
`,
			want:   []fileWant{wantFile("/out", "[global]\n")},
			docker: true,
		},
		{
			name: "arg-bare-takes-build-arg",
			dockerfile: `ARG V=global
FROM conform-base
ARG V
RUN echo "[$V]" > /out
`,
			buildArgs: map[string]string{"V": "cli"},
			want:      []fileWant{wantFile("/out", "[cli]\n")},
			docker:    true,
		},
		{
			name: "arg-before-from-in-from",
			dockerfile: `ARG BASE=conform-base
FROM ${BASE}
`,
			buildArgs: map[string]string{"BASE": "conform-other"},
			want:      []fileWant{wantFile("/opt/other/data.txt", "from the other image\n"), wantAbsent("/etc/passwd")},
			docker:    true,
		},
		{
			name: "arg-default-and-build-arg",
			dockerfile: `FROM conform-base
ARG A=default-a
ARG B=default-b
RUN echo "$A $B" > /out
`,
			buildArgs: map[string]string{"B": "cli-b"},
			want:      []fileWant{wantFile("/out", "default-a cli-b\n")},
			docker:    true,
		},
		{
			name: "arg-not-in-config-env",
			dockerfile: `FROM conform-base
ARG SECRET=s3
ENV KEPT=$SECRET
RUN echo "$SECRET" > /out
`,
			want:   []fileWant{wantFile("/out", "s3\n")},
			config: `{"Env": ["` + basePath + `", "KEPT=s3"]}`,
			docker: true,
		},
		{
			name: "env-overrides-arg",
			dockerfile: `FROM conform-base
ARG V=from-arg
ENV V=from-env
RUN echo "$V" > /out
`,
			buildArgs: map[string]string{"V": "from-cli"},
			want:      []fileWant{wantFile("/out", "from-env\n")},
			docker:    true,
		},
		{
			// The reference's example: a variable is replaced by its value
			// before the instruction, even when the instruction sets it.
			name: "env-same-instruction-uses-previous-value",
			dockerfile: `FROM conform-base
ENV abc=hello
ENV abc=bye def=$abc
ENV ghi=$abc
`,
			config: `{"Env": ["` + basePath + `", "abc=bye", "def=hello", "ghi=bye"]}`,
			docker: true,
		},
		{
			name: "env-expansion-modifiers-and-quoting",
			dockerfile: `FROM conform-base
ENV SET=yes
ENV A=${UNSET:-fallback} B=${SET:+alt} C=${UNSET:+alt} D="${SET} x" E='$SET' F=\$SET
`,
			config: `{"Env": ["` + basePath + `", "SET=yes", "A=fallback", "B=alt", "C=", "D=yes x", "E=$SET", "F=$SET"]}`,
			docker: true,
		},
		{
			name: "expansion-in-workdir-copy-label",
			dockerfile: `FROM conform-base
ARG DIR=/srv/app
ENV NAME=hello
WORKDIR $DIR
COPY a.txt ${NAME}.txt
LABEL greeting=$NAME dir=${DIR}
`,
			files:  ctxTexts,
			want:   []fileWant{wantFileMode("/srv/app/hello.txt", "a\n", 0o644, 0, 0)},
			config: `{"WorkingDir": "/srv/app", "Labels": {"greeting": "hello", "dir": "/srv/app"}}`,
			docker: true,
		},
		{
			name: "arg-automatic-platform",
			dockerfile: `FROM conform-base
RUN echo "[$TARGETARCH]" > /undeclared
ARG TARGETOS TARGETARCH
RUN echo "$TARGETOS/$TARGETARCH" > /out
`,
			want:   []fileWant{wantFile("/undeclared", "[]\n"), wantFile("/out", "linux/"+arch+"\n")},
			docker: true,
		},
		{
			// Cross-compilation's form: the build stage on the build
			// platform, the image on the target's; both are the host's.
			name: "from-platform-buildplatform",
			dockerfile: `FROM --platform=$BUILDPLATFORM conform-base AS build
ARG BUILDPLATFORM TARGETPLATFORM TARGETOS TARGETARCH
RUN echo "$BUILDPLATFORM $TARGETPLATFORM $TARGETOS $TARGETARCH" > /p
FROM --platform=$TARGETPLATFORM conform-base
COPY --from=build /p /p
`,
			want:   []fileWant{wantFile("/p", "linux/"+arch+" linux/"+arch+" linux "+arch+"\n")},
			docker: true,
		},

		// Heredocs.
		{
			name: "run-heredoc",
			dockerfile: `FROM conform-base
RUN <<EOF
echo one > /h
echo two >> /h
EOF
`,
			want: []fileWant{wantFileMode("/h", "one\ntwo\n", 0o644, 0, 0)},
		},
		{
			name: "run-heredoc-shebang",
			dockerfile: `FROM conform-base
RUN <<EOF
#!/usr/bin/awk -f
BEGIN { print "awk ran" > "/out" }
EOF
`,
			want: []fileWant{wantFile("/out", "awk ran\n")},
		},
		{
			name: "run-heredoc-stdin",
			dockerfile: `FROM conform-base
ARG WHO=world
RUN cat > /conf <<EOF
hello $WHO
EOF
`,
			want: []fileWant{wantFile("/conf", "hello world\n")},
		},
		{
			name: "run-mount-secret-file-and-env",
			dockerfile: `FROM conform-base
RUN --mount=type=secret,id=tok awk '{ print length($0) }' /run/secrets/tok > /from-file
RUN --mount=type=secret,id=tok,env=TOK sh -c 'echo "${#TOK}" > /from-env'
RUN --mount=type=secret,id=absent sh -c 'cat /run/secrets/absent 2>/dev/null; echo missing > /optional'
`,
			// The steps keep only the value's length: the value itself
			// must be nowhere in the store (checked after the build).
			secrets: map[string]string{"tok": "s3cr3t-value"},
			want: []fileWant{wantFile("/from-file", "12\n"), wantFile("/from-env", "12\n"),
				wantFile("/optional", "missing\n"), wantAbsent("/run/secrets/tok")},
		},
		{
			name: "run-mount-cache-persists-outside-the-layer",
			dockerfile: `FROM conform-base
RUN --mount=type=cache,target=/cache sh -c 'echo cached > /cache/f && cat /cache/f > /seen'
RUN --mount=type=cache,target=/cache cat /cache/f > /seen-again
`,
			want: []fileWant{wantFile("/seen", "cached\n"), wantFile("/seen-again", "cached\n"), wantAbsent("/cache/f")},
		},
		{
			name: "copy-heredoc-expands",
			dockerfile: `FROM conform-base
ARG WHO=world
COPY <<EOF /greeting
hello $WHO
EOF
`,
			want: []fileWant{wantFileMode("/greeting", "hello world\n", 0o644, 0, 0)},
		},
		{
			name: "copy-heredoc-quoted-is-literal",
			dockerfile: `FROM conform-base
ARG WHO=world
COPY <<"EOF" /literal
hello $WHO
EOF
`,
			want: []fileWant{wantFile("/literal", "hello $WHO\n")},
		},
		{
			name:       "copy-heredoc-chomp-tabs",
			dockerfile: "FROM conform-base\nCOPY <<-EOF /t.txt\n\tindented\n\t\ttwice\n\tEOF\n",
			want:       []fileWant{wantFile("/t.txt", "indented\ntwice\n")},
		},
		{
			name: "copy-heredoc-two-files",
			dockerfile: `FROM conform-base
COPY <<one.txt <<two.txt /docs/
first
one.txt
second
two.txt
`,
			want: []fileWant{wantFile("/docs/one.txt", "first\n"), wantFile("/docs/two.txt", "second\n")},
		},

		// COPY and ADD.
		{
			name:       "copy-file-to-new-dir",
			dockerfile: "FROM conform-base\nCOPY a.txt /newdir/\n",
			files:      ctxTexts,
			want:       []fileWant{wantDir("/newdir", 0o755, 0, 0), wantFileMode("/newdir/a.txt", "a\n", 0o644, 0, 0)},
			docker:     true,
		},
		{
			name:       "copy-file-into-workdir-dot",
			dockerfile: "FROM conform-base\nWORKDIR /existing\nCOPY a.txt .\n",
			files:      ctxTexts,
			want:       []fileWant{wantFile("/existing/a.txt", "a\n")},
			docker:     true,
		},
		{
			name:       "copy-file-into-existing-dir-without-slash",
			dockerfile: "FROM conform-base\nCOPY a.txt /existing\n",
			files:      ctxTexts,
			want:       []fileWant{wantDir("/existing", 0o755, 0, 0), wantFile("/existing/a.txt", "a\n")},
			docker:     true,
		},
		{
			name:       "copy-file-to-new-name",
			dockerfile: "FROM conform-base\nCOPY a.txt /renamed\n",
			files:      ctxTexts,
			want:       []fileWant{wantFileMode("/renamed", "a\n", 0o644, 0, 0)},
			docker:     true,
		},
		{
			name:       "copy-dir-copies-contents",
			dockerfile: "FROM conform-base\nCOPY dir /d/\n",
			files:      ctxTree,
			setup: func(t *testing.T, ctx string) {
				must(t, os.Symlink("x.txt", filepath.Join(ctx, "dir", "link")))
				must(t, os.Chmod(filepath.Join(ctx, "dir", "sub", "y.txt"), 0o755))
			},
			want:   []fileWant{wantFile("/d/x.txt", "x\n"), wantFileMode("/d/sub/y.txt", "y\n", 0o755, 0, 0), wantLink("/d/link", "x.txt"), wantAbsent("/d/dir")},
			docker: true,
		},
		{
			name:       "copy-top-level-symlink-is-followed",
			dockerfile: "FROM conform-base\nCOPY link.txt /followed\n",
			files:      ctxTexts,
			setup:      func(t *testing.T, ctx string) { must(t, os.Symlink("a.txt", filepath.Join(ctx, "link.txt"))) },
			want:       []fileWant{wantFileMode("/followed", "a\n", 0o644, 0, 0)},
			docker:     true,
		},
		{
			name:       "copy-wildcards",
			dockerfile: "FROM conform-base\nCOPY *.txt /w/\nCOPY ?.m[d] /m/\n",
			files:      ctxTexts,
			want:       []fileWant{wantFile("/w/a.txt", "a\n"), wantFile("/w/b.txt", "b\n"), wantAbsent("/w/c.md"), wantFile("/m/c.md", "c\n")},
			docker:     true,
		},
		{
			// Created destination directories are owned by the --chown user
			// too (fsutil's MkdirAll chowns what it creates).
			name:       "copy-chown-file-and-created-dirs",
			dockerfile: "FROM conform-base\nCOPY --chown=1000:1000 a.txt /owned/deep/\n",
			files:      ctxTexts,
			want:       []fileWant{wantDir("/owned", 0o755, 1000, 1000), wantDir("/owned/deep", 0o755, 1000, 1000), wantFileMode("/owned/deep/a.txt", "a\n", 0o644, 1000, 1000)},
			docker:     true,
		},
		{
			name:       "copy-chown-names-dir-tree",
			dockerfile: "FROM conform-base\nCOPY --chown=app:app dir /tree/\n",
			files:      ctxTree,
			want: []fileWant{wantDir("/tree", 0o755, 1000, 1000), wantDir("/tree/sub", 0o755, 1000, 1000),
				wantFileMode("/tree/x.txt", "x\n", 0o644, 1000, 1000), wantFileMode("/tree/sub/y.txt", "y\n", 0o644, 1000, 1000)},
			docker: true,
		},
		{
			name:       "copy-chmod-file",
			dockerfile: "FROM conform-base\nCOPY --chmod=0755 a.txt /run-a\nCOPY --chmod=0600 --chown=1000 b.txt /b\n",
			files:      ctxTexts,
			want:       []fileWant{wantFileMode("/run-a", "a\n", 0o755, 0, 0), wantFileMode("/b", "b\n", 0o600, 1000, 1000)},
			docker:     true,
		},
		{
			// --chmod applies to every copied file and directory and to the
			// destination directories the copy creates.
			name:       "copy-chmod-dir-tree",
			dockerfile: "FROM conform-base\nCOPY --chmod=0750 dir /private/\n",
			files:      ctxTree,
			want:       []fileWant{wantDir("/private", 0o750, 0, 0), wantDir("/private/sub", 0o750, 0, 0), wantFileMode("/private/x.txt", "x\n", 0o750, 0, 0), wantFileMode("/private/sub/y.txt", "y\n", 0o750, 0, 0)},
		},
		{
			name: "copy-from-stage",
			dockerfile: `FROM conform-base AS builder
RUN mkdir /out && echo built > /out/artifact
FROM conform-base
COPY --from=builder /out/artifact /artifact
COPY --from=0 /out /out-by-index
`,
			want:   []fileWant{wantFileMode("/artifact", "built\n", 0o644, 0, 0), wantFile("/out-by-index/artifact", "built\n")},
			docker: true,
		},
		{
			name:       "copy-from-image",
			dockerfile: "FROM conform-base\nCOPY --from=conform-other /opt/other/data.txt /data.txt\n",
			want:       []fileWant{wantFile("/data.txt", "from the other image\n")},
			docker:     true,
		},
		{
			name:       "copy-link",
			dockerfile: "FROM conform-base\nCOPY --link a.txt /linked/\nCOPY --link --chown=1000:1000 dir /linked/d/\n",
			files:      mergeFiles(ctxTexts, ctxTree),
			want: []fileWant{wantFileMode("/linked/a.txt", "a\n", 0o644, 0, 0), wantFileMode("/linked/d/x.txt", "x\n", 0o644, 1000, 1000),
				wantFile("/linked/d/sub/y.txt", "y\n"), wantFile("/etc/passwd", conformancePasswd)},
		},
		{
			name:       "copy-parents",
			dockerfile: "FROM conform-base\nCOPY --parents dir/sub/y.txt a.txt /p/\n",
			files:      mergeFiles(ctxTexts, ctxTree),
			want:       []fileWant{wantFile("/p/dir/sub/y.txt", "y\n"), wantFile("/p/a.txt", "a\n"), wantAbsent("/p/y.txt"), wantAbsent("/p/dir/x.txt")},
		},
		{
			name:       "copy-exclude",
			dockerfile: "FROM conform-base\nCOPY --exclude=*.md --exclude=dir/sub . /e/\n",
			files:      mergeFiles(ctxTexts, ctxTree),
			want:       []fileWant{wantFile("/e/a.txt", "a\n"), wantAbsent("/e/c.md"), wantFile("/e/dir/x.txt", "x\n"), wantAbsent("/e/dir/sub")},
		},
		{
			// "Whether a file is identified as a recognized compression
			// format or not is done solely based on the contents of the
			// file, not the name of the file."
			name:       "add-tar-gz-detected-by-content",
			dockerfile: "FROM conform-base\nADD archive.data /x/\n",
			setup:      func(t *testing.T, ctx string) { writeArchive(t, filepath.Join(ctx, "archive.data"), "gzip") },
			want:       archiveWant("/x"),
			docker:     true,
		},
		{
			name:       "add-tar-xz",
			dockerfile: "FROM conform-base\nADD bundle.tar.xz /x/\n",
			setup:      func(t *testing.T, ctx string) { writeArchive(t, filepath.Join(ctx, "bundle.tar.xz"), "xz") },
			want:       append(archiveWant("/x"), wantAbsent("/x/bundle.tar.xz")),
			docker:     true,
		},
		{
			name:       "add-plain-tar",
			dockerfile: "FROM conform-base\nADD bundle.tar /x\n",
			setup:      func(t *testing.T, ctx string) { writeArchive(t, filepath.Join(ctx, "bundle.tar"), "") },
			want:       archiveWant("/x"),
			docker:     true,
		},
		{
			name:       "add-tar-gz-name-but-not-archive",
			dockerfile: "FROM conform-base\nADD notes.tar.gz /n/\n",
			files:      map[string]string{"notes.tar.gz": "just text\n"},
			want:       []fileWant{wantFileMode("/n/notes.tar.gz", "just text\n", 0o644, 0, 0)},
			docker:     true,
		},
		{
			name:       "copy-does-not-extract",
			dockerfile: "FROM conform-base\nCOPY bundle.tar.gz /c/\n",
			setup:      func(t *testing.T, ctx string) { writeArchive(t, filepath.Join(ctx, "bundle.tar.gz"), "gzip") },
			want:       []fileWant{{path: "/c/bundle.tar.gz", mode: 0o644, uid: 0, gid: 0}, wantAbsent("/c/bundle")},
			docker:     true,
		},

		{
			// dockerfile2llb allows a wildcard to match nothing.
			name:       "copy-wildcard-matching-nothing",
			dockerfile: "FROM conform-base\nCOPY a.txt nothing-*.txt /w/\n",
			files:      ctxTexts,
			want:       []fileWant{wantFile("/w/a.txt", "a\n")},
			docker:     true,
		},
		{
			name:       "from-scratch",
			dockerfile: "FROM scratch\nCOPY a.txt /\n",
			files:      ctxTexts,
			want:       []fileWant{wantFileMode("/a.txt", "a\n", 0o644, 0, 0), wantAbsent("/etc")},
			config:     `{"Env": ["` + basePath + `"], "Cmd": null, "Entrypoint": null}`,
			docker:     true,
		},
		{
			// Unlike Docker's classic builder, BuildKit keeps what RUN
			// writes under a VOLUME.
			name:       "volume-keeps-later-run-changes",
			dockerfile: "FROM conform-base\nVOLUME /data\nRUN mkdir -p /data && echo kept > /data/f\n",
			want:       []fileWant{wantFile("/data/f", "kept\n")},
			config:     `{"Volumes": {"/data": {}}}`,
			docker:     true,
		},

		// WORKDIR and USER.
		{
			name:       "workdir-relative-chain",
			dockerfile: "FROM conform-base\nWORKDIR /a\nWORKDIR b\nWORKDIR c\nRUN echo here > file\n",
			want:       []fileWant{wantDir("/a/b/c", 0o755, 0, 0), wantFile("/a/b/c/file", "here\n")},
			config:     `{"WorkingDir": "/a/b/c"}`,
			docker:     true,
		},
		{
			// BuildKit creates a WORKDIR as the current USER.
			name:       "workdir-created-as-user",
			dockerfile: "FROM conform-base\nUSER 1000:1000\nWORKDIR /wd/sub\n",
			want:       []fileWant{wantDir("/wd", 0o755, 1000, 1000), wantDir("/wd/sub", 0o755, 1000, 1000)},
			config:     `{"User": "1000:1000", "WorkingDir": "/wd/sub"}`,
		},
		{
			name:       "user-name-runs-as-its-uid",
			dockerfile: "FROM conform-base\nUSER app\nRUN id -u > /tmp/uid\n",
			want:       []fileWant{wantFileMode("/tmp/uid", "1000\n", 0o644, 1000, 1000)},
			config:     `{"User": "app"}`,
			run:        []string{"id", "-u"},
			runOut:     "1000\n",
			docker:     true,
		},

		// ENTRYPOINT and CMD.
		{
			// "If CMD is defined from the base image, setting ENTRYPOINT
			// will reset CMD to an empty value."
			name:       "entrypoint-resets-inherited-cmd",
			dockerfile: "FROM conform-base\nENTRYPOINT [\"/bin/echo\", \"hi\"]\n",
			config:     `{"Entrypoint": ["/bin/echo", "hi"], "Cmd": null}`,
			run:        []string{},
			runOut:     "hi\n",
			docker:     true,
		},
		{
			name:       "entrypoint-keeps-cmd-of-same-stage",
			dockerfile: "FROM conform-base\nCMD [\"from-cmd\"]\nENTRYPOINT [\"/bin/echo\"]\n",
			config:     `{"Entrypoint": ["/bin/echo"], "Cmd": ["from-cmd"]}`,
			run:        []string{},
			runOut:     "from-cmd\n",
		},
		{
			name:       "cmd-and-entrypoint-shell-form",
			dockerfile: "FROM conform-base\nCMD echo hi there\nENTRYPOINT exec echo ep\n",
			config:     `{"Cmd": ["/bin/sh", "-c", "echo hi there"], "Entrypoint": ["/bin/sh", "-c", "exec echo ep"]}`,
			docker:     true,
		},
		{
			name: "shell-instruction",
			dockerfile: `FROM conform-base
SHELL ["/usr/bin/env", "X=from-shell", "/bin/sh", "-c"]
RUN echo "$X" > /out
CMD echo cmd
`,
			want:   []fileWant{wantFile("/out", "from-shell\n")},
			config: `{"Shell": ["/usr/bin/env", "X=from-shell", "/bin/sh", "-c"], "Cmd": ["/usr/bin/env", "X=from-shell", "/bin/sh", "-c", "echo cmd"]}`,
			run:    []string{},
			runOut: "cmd\n",
			docker: true,
		},

		// Stages.
		{
			name: "target-builds-named-stage",
			dockerfile: `FROM conform-base AS first
RUN echo first > /first
FROM conform-base AS second
RUN echo second > /second
`,
			target: "first",
			want:   []fileWant{wantFile("/first", "first\n"), wantAbsent("/second")},
			docker: true,
		},
		{
			name: "unused-stage-not-built",
			dockerfile: `FROM conform-base AS broken
RUN exit 3
FROM conform-base
RUN echo ok > /ok
`,
			want:   []fileWant{wantFile("/ok", "ok\n")},
			docker: true,
		},
		{
			name: "target-skips-later-failing-stage",
			dockerfile: `FROM conform-base AS good
RUN echo good > /good
FROM good AS broken
RUN exit 3
`,
			target: "good",
			want:   []fileWant{wantFile("/good", "good\n")},
			docker: true,
		},
		{
			name: "stage-inherits-stage",
			dockerfile: `FROM conform-base AS Parent
ENV FROM_PARENT=1
RUN echo parent > /parent
FROM parent
RUN echo "child $FROM_PARENT" > /child
`,
			want:   []fileWant{wantFile("/parent", "parent\n"), wantFile("/child", "child 1\n")},
			config: `{"Env": ["` + basePath + `", "FROM_PARENT=1"]}`,
			docker: true,
		},

		// Metadata instructions.
		{
			name: "labels",
			dockerfile: `FROM conform-base
LABEL a=b "with space"="v w"
LABEL multi.line="one \
two"
LABEL a=override
`,
			// The rest of the config is the base's.
			config: `{"Labels": {"a": "override", "with space": "v w", "multi.line": "one two"}, "Cmd": ["sh"], "Env": ["` + basePath + `"]}`,
			docker: true,
		},
		{
			name: "expose-volume-stopsignal",
			dockerfile: `FROM conform-base
EXPOSE 80 53/udp 8080/tcp
VOLUME ["/data", "/cache"]
VOLUME /logs
STOPSIGNAL SIGINT
`,
			config: `{"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8080/tcp": {}}, "Volumes": {"/data": {}, "/cache": {}, "/logs": {}}, "StopSignal": "SIGINT"}`,
			docker: true,
		},
		{
			name:       "healthcheck-exec-form",
			dockerfile: "FROM conform-base\nHEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=2 CMD [\"cat\", \"/etc/passwd\"]\n",
			config:     `{"Healthcheck": {"Test": ["CMD", "cat", "/etc/passwd"], "Interval": 5000000000, "Timeout": 3000000000, "StartPeriod": 1000000000, "Retries": 2}}`,
			docker:     true,
		},
		{
			name:       "healthcheck-shell-form-inherited",
			dockerfile: "FROM conform-base AS checked\nHEALTHCHECK CMD cat /x || exit 1\nFROM checked\nHEALTHCHECK NONE\nFROM checked AS final\n",
			config:     `{"Healthcheck": {"Test": ["CMD-SHELL", "cat /x || exit 1"]}}`,
			docker:     true,
		},
		{
			name:       "healthcheck-none",
			dockerfile: "FROM conform-base AS checked\nHEALTHCHECK CMD cat /x\nFROM checked\nHEALTHCHECK NONE\n",
			config:     `{"Healthcheck": {"Test": ["NONE"]}}`,
			docker:     true,
		},
		{
			name:       "onbuild-recorded",
			dockerfile: "FROM conform-base\nONBUILD RUN echo child > /onbuild\n",
			want:       []fileWant{wantAbsent("/onbuild")},
			config:     `{"OnBuild": ["RUN echo child > /onbuild"]}`,
			docker:     true,
		},
		{
			// Triggers run in the stage built FROM the image that has them,
			// and are not inherited further.
			name:       "onbuild-fires-in-child-stage",
			dockerfile: "FROM conform-base AS parent\nONBUILD RUN echo fired > /onbuild\nFROM parent\n",
			want:       []fileWant{wantFile("/onbuild", "fired\n")},
			config:     `{"OnBuild": null}`,
			docker:     true,
		},

		// .dockerignore.
		{
			// Docker cleans each pattern (filepath.Clean), so "!./keep.txt"
			// re-includes keep.txt.
			name:       "dockerignore-reinclude-dot-slash",
			dockerfile: "FROM conform-base\nCOPY . /ctx/\n",
			files:      mergeFiles(ctxTexts, map[string]string{"keep.txt": "kept\n", ".dockerignore": "*.txt\n!./keep.txt\n"}),
			want:       []fileWant{wantFile("/ctx/keep.txt", "kept\n"), wantAbsent("/ctx/a.txt"), wantFile("/ctx/c.md", "c\n")},
			docker:     true,
		},
		{
			name:       "dockerignore-double-star-and-dir",
			dockerfile: "FROM conform-base\nCOPY . /ctx/\n",
			files: mergeFiles(ctxTree, map[string]string{"top.log": "l\n", "dir/deep/er/z.log": "z\n", "dir/deep/er/z.txt": "z\n",
				".dockerignore": "**/*.log\ndir/sub\n"}),
			want: []fileWant{wantAbsent("/ctx/top.log"), wantAbsent("/ctx/dir/deep/er/z.log"), wantFile("/ctx/dir/deep/er/z.txt", "z\n"),
				wantFile("/ctx/dir/x.txt", "x\n"), wantAbsent("/ctx/dir/sub")},
			docker: true,
		},
		{
			name:       "dockerignore-reinclude-inside-excluded-dir",
			dockerfile: "FROM conform-base\nCOPY . /ctx/\n",
			files:      mergeFiles(ctxTree, map[string]string{".dockerignore": "dir\n!dir/x.txt\n"}),
			want:       []fileWant{wantFile("/ctx/dir/x.txt", "x\n"), wantAbsent("/ctx/dir/sub")},
			docker:     true,
		},
		{
			name:       "dockerignore-excludes-dockerfile-from-copy",
			dockerfile: "FROM conform-base\nCOPY . /ctx/\n",
			files:      mergeFiles(ctxTexts, map[string]string{".dockerignore": "Dockerfile\n.dockerignore\n"}),
			want:       []fileWant{wantFile("/ctx/a.txt", "a\n"), wantAbsent("/ctx/Dockerfile"), wantAbsent("/ctx/.dockerignore")},
			docker:     true,
		},
		{
			// podman and buildah: a context's .containerignore is read
			// instead of its .dockerignore (Docker reads only the latter).
			name:       "containerignore-wins-over-dockerignore",
			dockerfile: "FROM conform-base\nCOPY . /ctx/\n",
			files:      mergeFiles(ctxTexts, map[string]string{".containerignore": "a.txt\n", ".dockerignore": "b.txt\n"}),
			want:       []fileWant{wantAbsent("/ctx/a.txt"), wantFile("/ctx/b.txt", "b\n"), wantFile("/ctx/c.md", "c\n")},
		},
		{
			// BuildKit: the Dockerfile's own <name>.dockerignore, beside it,
			// wins over the context's ignore files.
			name:       "dockerfile-dockerignore-wins",
			dockerfile: "FROM conform-base\nCOPY . /ctx/\n",
			files: mergeFiles(ctxTexts, map[string]string{"Dockerfile.dockerignore": "c.md\n", ".dockerignore": "b.txt\n",
				".containerignore": "a.txt\n"}),
			want: []fileWant{wantFile("/ctx/a.txt", "a\n"), wantFile("/ctx/b.txt", "b\n"), wantAbsent("/ctx/c.md")},
		},

		// File capabilities (the security.capability xattr).
		{
			name: "capabilities-survive-copy-add-and-copy-from",
			dockerfile: `FROM conform-base AS stage
COPY tool /usr/local/bin/tool
FROM conform-base
COPY tool /copied
ADD tool /added
COPY --from=stage /usr/local/bin/tool /from-stage
`,
			setup: func(t *testing.T, ctx string) {
				p := filepath.Join(ctx, "tool")
				must(t, os.WriteFile(p, []byte("#!/bin/sh\necho tool\n"), 0o755))
				if out, err := exec.Command("setcap", "cap_net_bind_service=+ep", p).CombinedOutput(); err != nil {
					t.Fatalf("setcap: %v\n%s", err, out)
				}
			},
			want: []fileWant{wantCap("/copied", "cap_net_bind_service=ep"), wantCap("/added", "cap_net_bind_service=ep"),
				wantCap("/from-stage", "cap_net_bind_service=ep")},
			// Docker 20.10 drops the capability (its image has none, as
			// umoci unpacks it); BuildKit v0.34 copies xattrs (fsutil's
			// copier), and the issue asks every copy path to keep them.
		},
	}
}

// conformancePasswd and conformanceGroup are the base image's users: root
// and app (1000:1000).
const (
	conformancePasswd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
	conformanceGroup  = "root:x:0:\napp:x:1000:\n"
)

// archiveWant is what extracting writeArchive's archive into dir gives.
func archiveWant(dir string) []fileWant {
	return []fileWant{
		wantFileMode(dir+"/bundle/run.sh", "echo hi\n", 0o755, 0, 0),
		wantLink(dir+"/bundle/link", "run.sh"),
		wantFileMode(dir+"/bundle/owned", "owned\n", 0o600, 1000, 1000),
	}
}

// writeArchive writes a tar at path, compressed with gzip, xz or nothing
// (""): bundle/run.sh (0755), bundle/link → run.sh, bundle/owned (0600,
// 1000:1000).
func writeArchive(t *testing.T, path, compression string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "bundle/", Typeflag: tar.TypeDir, Mode: 0o755}))
	for _, f := range []struct {
		name, data string
		mode       int64
		uid        int
	}{{"bundle/run.sh", "echo hi\n", 0o755, 0}, {"bundle/owned", "owned\n", 0o600, 1000}} {
		must(t, tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: f.mode, Size: int64(len(f.data)), Uid: f.uid, Gid: f.uid}))
		_, err := tw.Write([]byte(f.data))
		must(t, err)
	}
	must(t, tw.WriteHeader(&tar.Header{Name: "bundle/link", Typeflag: tar.TypeSymlink, Linkname: "run.sh"}))
	must(t, tw.Close())
	data := buf.Bytes()
	switch compression {
	case "gzip":
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, err := zw.Write(data)
		must(t, err)
		must(t, zw.Close())
		data = gz.Bytes()
	case "xz":
		cmd := exec.Command("xz", "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("xz: %v", err)
		}
		data = out
	}
	must(t, os.WriteFile(path, data, 0o644))
}

// writeConformanceBases writes the two base images as OCI layouts under dir
// and returns their paths: conform-base (the conformanceTools, users root
// and app, /existing, CMD ["sh"]) and conform-other (one data file).
func writeConformanceBases(t *testing.T, dir string) (base, other string) {
	t.Helper()
	base, other = filepath.Join(dir, "base"), filepath.Join(dir, "other")
	must(t, testimage.WriteLayout(base, testimage.Spec{
		Tag:   conformanceBase,
		Tools: conformanceTools,
		Dirs:  []string{"/etc", "/tmp", "/root", "/home/app", "/existing"},
		Files: map[string]string{"/etc/passwd": conformancePasswd, "/etc/group": conformanceGroup},
		Cmd:   []string{"sh"},
	}))
	must(t, testimage.WriteLayout(other, testimage.Spec{
		Tag:   conformanceOther,
		Files: map[string]string{"/opt/other/data.txt": "from the other image\n"},
	}))
	return base, other
}

// writeContext writes c's build context and Dockerfile under dir and
// returns the context directory.
func writeContext(t *testing.T, dir string, c conformanceCase) string {
	t.Helper()
	ctx := filepath.Join(dir, "context")
	must(t, os.MkdirAll(ctx, 0o755))
	for p, content := range c.files {
		full := filepath.Join(ctx, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, []byte(content), 0o644))
		must(t, os.Chmod(full, 0o644))
	}
	if c.setup != nil {
		c.setup(t, ctx)
	}
	must(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(c.dockerfile), 0o644))
	return ctx
}

// TestDockerfileConformance builds every conformance case with
// `snapbuild build -f` and checks the exported image with umoci (files) and
// the OCI config, and some with podman.
func TestDockerfileConformance(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd", "umoci", "skopeo", "podman", "runc", "setcap", "getcap", "xz", "tar")
	dir := t.TempDir()
	base, other := writeConformanceBases(t, dir)
	r := runner{t: t, root: filepath.Join(dir, "store")}
	r.ok("load", base)
	r.ok("load", other)
	for _, c := range conformanceCases() {
		t.Run(c.name, func(t *testing.T) {
			r := r
			r.t = t
			work := t.TempDir()
			ctx := writeContext(t, work, c)
			name := "conform-" + c.name
			args := []string{"build", "-f", filepath.Join(ctx, "Dockerfile"), "-t", name, "--progress", "plain"}
			for k, v := range c.buildArgs {
				args = append(args, "--build-arg", k+"="+v)
			}
			if c.target != "" {
				args = append(args, "--target", c.target)
			}
			for id, v := range c.secrets {
				f := filepath.Join(work, "secret-"+id)
				if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--secret", "id="+id+",src="+f)
			}
			res := r.run("", append(args, ctx)...)
			if res.code != 0 {
				t.Fatalf("snapbuild build: exit %d\n%s", res.code, tail(res.stderr+res.stdout, 25))
			}
			for _, v := range c.secrets {
				if strings.Contains(res.stdout+res.stderr, v) {
					t.Errorf("the secret value is in the build's output")
				}
				if p := fileHolding(t, r.root, v); p != "" {
					t.Errorf("the secret value is in the store: %s", p)
				}
			}
			archive := filepath.Join(work, "image.tar")
			r.ok("export", "--compression", "gzip", name, "oci-archive:"+archive+":"+name)
			rootfs, cfg := unpackOCIArchive(t, archive, filepath.Join(work, "unpacked"))
			checkConformance(t, c, rootfs, cfg)
			if c.run != nil {
				if got := podmanRunImage(t, "oci-archive:"+archive, c.name, c.run); got != c.runOut {
					t.Errorf("podman run %q = %q, want %q", c.run, got, c.runOut)
				}
			}
		})
	}
}

// unpackOCIArchive extracts an oci-archive into dir, unpacks its one image
// with umoci and returns the root filesystem and the image config's
// "config" object.
func unpackOCIArchive(t *testing.T, archive, dir string) (rootfs string, config map[string]json.RawMessage) {
	t.Helper()
	layoutDir := filepath.Join(dir, "layoutDir")
	must(t, os.MkdirAll(layoutDir, 0o755))
	if out, err := exec.Command("tar", "-xf", archive, "-C", layoutDir).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf %s: %v\n%s", archive, err, out)
	}
	return unpackLayout(t, layoutDir, dir)
}

// unpackLayout unpacks the one image of the OCI layoutDir with umoci into
// dir/bundle and returns its root filesystem and config.
func unpackLayout(t *testing.T, layoutDir, dir string) (rootfs string, config map[string]json.RawMessage) {
	t.Helper()
	var index struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	readJSON(t, filepath.Join(layoutDir, "index.json"), &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("%s: %d manifests in index.json, want 1", layoutDir, len(index.Manifests))
	}
	m := index.Manifests[0]
	tag := m.Annotations["org.opencontainers.image.ref.name"]
	if tag == "" {
		t.Fatalf("%s: the manifest has no org.opencontainers.image.ref.name", layoutDir)
	}
	bundle := filepath.Join(dir, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", layoutDir+":"+tag, bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	var manifest struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
	}
	readJSON(t, blobPath(layoutDir, m.Digest), &manifest)
	var image struct {
		Config map[string]json.RawMessage `json:"config"`
	}
	readJSON(t, blobPath(layoutDir, manifest.Config.Digest), &image)
	return filepath.Join(bundle, "rootfs"), image.Config
}

// checkConformance checks c's file and config expectations against an
// unpacked root filesystem and an image config.
func checkConformance(t *testing.T, c conformanceCase, rootfs string, config map[string]json.RawMessage) {
	t.Helper()
	for _, w := range c.want {
		checkFile(t, rootfs, w)
	}
	if c.config == "" {
		return
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal([]byte(c.config), &want); err != nil {
		t.Fatalf("the case's config %s: %v", c.config, err)
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var w, g any
		must(t, json.Unmarshal(want[k], &w))
		if raw, ok := config[k]; ok {
			must(t, json.Unmarshal(raw, &g))
		}
		if !reflect.DeepEqual(w, g) {
			got := "absent"
			if raw, ok := config[k]; ok {
				got = string(raw)
			}
			t.Errorf("config %s = %s, want %s", k, got, want[k])
		}
	}
}

func checkFile(t *testing.T, rootfs string, w fileWant) {
	t.Helper()
	p := filepath.Join(rootfs, w.path)
	fi, err := os.Lstat(p)
	if w.absent {
		if err == nil {
			t.Errorf("%s exists (%v), want it absent", w.path, fi.Mode())
		}
		return
	}
	if err != nil {
		t.Errorf("%s: %v", w.path, err)
		return
	}
	switch {
	case w.link != "":
		target, err := os.Readlink(p)
		if err != nil || target != w.link {
			t.Errorf("%s: symlink to %q (%v), want a symlink to %q", w.path, target, err, w.link)
		}
	case w.dir:
		if !fi.IsDir() {
			t.Errorf("%s is %v, want a directory", w.path, fi.Mode())
		}
	case w.content != nil || w.mode != 0:
		if !fi.Mode().IsRegular() {
			t.Errorf("%s is %v, want a regular file", w.path, fi.Mode())
			return
		}
		if w.content != nil {
			if data, err := os.ReadFile(p); err != nil || string(data) != *w.content {
				t.Errorf("%s holds %q (%v), want %q", w.path, data, err, *w.content)
			}
		}
	}
	if w.mode != 0 && fi.Mode().Perm() != w.mode {
		t.Errorf("%s has mode %#o, want %#o", w.path, fi.Mode().Perm(), w.mode)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if w.uid >= 0 && (int(st.Uid) != w.uid || int(st.Gid) != w.gid) {
		t.Errorf("%s is owned by %d:%d, want %d:%d", w.path, st.Uid, st.Gid, w.uid, w.gid)
	}
	if w.cap != "" {
		out, err := exec.Command("getcap", p).CombinedOutput()
		if got := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), p)); err != nil || got != w.cap {
			t.Errorf("getcap %s = %q (%v), want %q", w.path, got, err, w.cap)
		}
	}
}

// podmanRunImage copies src (a containers/image reference) into podman's
// storage and runs it with args after the image name, returning stdout.
func podmanRunImage(t *testing.T, src, name string, args []string) string {
	t.Helper()
	ref := "localhost/snapbuild-it/conform-" + name + ":latest"
	if out, err := exec.Command("skopeo", "copy", "--quiet", src, "containers-storage:"+ref).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy %s: %v\n%s", src, err, out)
	}
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", ref).Run() })
	cmd := exec.Command("podman", append([]string{"--runtime", "runc", "run", "--rm",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none", ref}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("podman run %s %q: %v\n%s", ref, args, err, stderr.String())
	}
	return string(out)
}

// TestDockerfileConformanceDocker builds the conformance cases that
// Docker 20.10's BuildKit supports (docker: true) with Debian's docker.io,
// on a private dockerd, and checks its images against the same
// expectations: the suite's expectations are Docker's behaviour, not
// snapbuild's. scripts/deps.sh installs docker.io.
func TestDockerfileConformanceDocker(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd", "umoci", "skopeo", "dockerd", "getcap", "setcap", "xz", "tar")
	// The docker client of the docker.io package: newer clients build
	// through buildx only.
	client := "/usr/bin/docker"
	require(t, fileExists(client), "%s (Debian's docker.io) not found: install it (see scripts/deps.sh)", client)
	dir := t.TempDir()
	docker := startDockerd(t, client)
	base, other := writeConformanceBases(t, dir)
	for _, img := range []struct{ layout, name string }{{base, conformanceBase}, {other, conformanceOther}} {
		archive := filepath.Join(dir, img.name+".tar")
		writeDockerArchive(t, img.layout, img.name+":latest", archive)
		docker("load", "-i", archive)
	}
	for _, c := range conformanceCases() {
		if !c.docker {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			ctx := writeContext(t, work, c)
			name := "conform-" + c.name
			args := []string{"build", "--network", "none", "-q", "-f", filepath.Join(ctx, "Dockerfile"), "-t", name}
			for k, v := range c.buildArgs {
				args = append(args, "--build-arg", k+"="+v)
			}
			if c.target != "" {
				args = append(args, "--target", c.target)
			}
			docker(append(args, ctx)...)
			archive := filepath.Join(work, "image.tar")
			docker("save", "-o", archive, name)
			layoutDir := filepath.Join(work, "layout")
			if out, err := exec.Command("skopeo", "copy", "--quiet", "docker-archive:"+archive, "oci:"+layoutDir+":"+name).CombinedOutput(); err != nil {
				t.Fatalf("skopeo copy: %v\n%s", err, out)
			}
			// The files from the OCI copy, the config from docker save's
			// own: the conversion to OCI drops Docker's fields
			// (Healthcheck, Shell, OnBuild).
			rootfs, _ := unpackLayout(t, layoutDir, work)
			checkConformance(t, c, rootfs, dockerArchiveConfig(t, archive))
		})
	}
}

// writeDockerArchive writes the one image of an OCI layout as a
// docker-archive (docker save's format) named ref.
func writeDockerArchive(t *testing.T, layoutDir, ref, archive string) {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(layoutDir)
	must(t, err)
	im, err := idx.IndexManifest()
	must(t, err)
	if len(im.Manifests) != 1 {
		t.Fatalf("%s: %d manifests, want 1", layoutDir, len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	must(t, err)
	tag, err := name.NewTag(ref)
	must(t, err)
	must(t, tarball.WriteToFile(archive, tag, img))
}

// dockerArchiveConfig returns the "config" object of the image config in
// a docker-archive (docker save) holding one image.
func dockerArchiveConfig(t *testing.T, archive string) map[string]json.RawMessage {
	t.Helper()
	f, err := os.Open(archive)
	must(t, err)
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		if strings.HasSuffix(h.Name, ".json") {
			data, err := io.ReadAll(tr)
			must(t, err)
			files[h.Name] = data
		}
	}
	var manifest []struct{ Config string }
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("%s: manifest.json: %v (%d images, want 1)", archive, err, len(manifest))
	}
	var image struct {
		Config map[string]json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(files[manifest[0].Config], &image); err != nil {
		t.Fatalf("%s: %s: %v", archive, manifest[0].Config, err)
	}
	return image.Config
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// startDockerd starts a dockerd of its own (data root, exec root and
// socket in a temporary directory; no iptables, no bridge) for the test
// and returns a function that runs the docker client against it (with
// BuildKit) and fails the test when the client fails. The daemon stops
// when the test ends.
func startDockerd(t *testing.T, client string) func(args ...string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "snapbuild-it-docker-")
	must(t, err)
	sock := filepath.Join(dir, "docker.sock")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	must(t, err)
	cmd := exec.Command("dockerd", "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"), "-H", "unix://"+sock, "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--containerd-namespace", "snapbuild-it", "--containerd-plugins-namespace", "snapbuild-it-plugins")
	cmd.Stdout, cmd.Stderr = logf, logf
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing dockerd's directory: %v", err)
		}
	})
	env := append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_BUILDKIT=1")
	run := func(args ...string) string {
		t.Helper()
		c := exec.Command(client, args...)
		c.Env = env
		var stderr bytes.Buffer
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.String(), 25))
		}
		return string(out)
	}
	for i := 0; ; i++ {
		c := exec.Command(client, "version")
		c.Env = env
		if c.Run() == nil {
			break
		}
		if i == 60 {
			log, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			t.Fatalf("dockerd did not answer within 30s:\n%s", tail(string(log), 20))
		}
		time.Sleep(500 * time.Millisecond)
	}
	return run
}

// fileHolding returns the first file under root whose content holds s, or
// "".
func fileHolding(t *testing.T, root, s string) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed while walking
		}
		if found != "" || !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil && bytes.Contains(data, []byte(s)) {
			found = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
