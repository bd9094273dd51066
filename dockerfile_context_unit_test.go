package snapbuild

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// TestDockerfileContextPatterns checks which part of the build context a
// Dockerfile built as docker build builds it gets: the files its COPY and
// ADD sources name, or the whole context where those cannot say what the
// build reads (a variable in a source, a RUN bind mount of the context).
func TestDockerfileContextPatterns(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dockerfile string
		want       []string
	}{
		{"copy sources", "FROM base\nCOPY app/ /app/\nCOPY requirements.txt ./\nADD vendor.tar.xz /opt/", []string{"app", "requirements.txt", "vendor.tar.xz"}},
		{"copy of the whole context", "FROM base\nCOPY . /src", []string{"**"}},
		{"no context", "FROM base\nRUN make", nil},
		{"copy from a stage", "FROM base\nCOPY --from=build /out /out", nil},
		{"copy from a stage a variable names", "FROM base\nARG STAGE=build\nCOPY --from=$STAGE /out /out", nil},
		{"a variable in a copy source", "FROM base\nARG SRC=app\nCOPY ${SRC}/ /app/", []string{"**"}},
		{"a variable in an add source", "FROM base\nARG V=1\nADD pkg-$V.tar.gz /opt/", []string{"**"}},
		{"a bind mount of the context", "FROM base\nCOPY app/ /app/\nRUN --mount=type=bind,target=/src make -C /src", []string{"**"}},
		{"a bind mount of part of the context", "FROM base\nRUN --mount=type=bind,source=go.mod,target=/go.mod cat /go.mod", []string{"**"}},
		{"a bind mount of a stage", "FROM base\nRUN --mount=type=bind,from=build,target=/src ls /src", nil},
		{"a cache mount", "FROM base\nRUN --mount=type=cache,target=/root/.cache make", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := modal.DockerfileContextPatterns(strings.Split(tc.dockerfile, "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("dockerfileContextPatterns = %q, want %q", got, tc.want)
			}
		})
	}
	// Modal's own rule for dockerfile_commands stays: a variable is refused.
	if _, err := modal.CopyPatterns([]string{"ARG SRC=app", "COPY ${SRC}/ /app/"}); err == nil {
		t.Error("copyPatterns accepted a variable in a COPY source")
	}
}

// TestAutoDockerignore checks which ignore file applies to a Dockerfile's
// context when none is given: the Dockerfile's own <name>.dockerignore,
// then, beside the Dockerfile and then in the context, .containerignore
// before .dockerignore; a file outside the context is not read.
func TestAutoDockerignore(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dockerfile string   // relative to the test's directory; the context is ctx/
		files      []string // ignore files present, relative to the test's directory
		want       string   // the one that applies; "" for none
	}{
		{"none", "ctx/Dockerfile", nil, ""},
		{"context dockerignore", "ctx/Dockerfile", []string{"ctx/.dockerignore"}, "ctx/.dockerignore"},
		{"context containerignore", "ctx/Dockerfile", []string{"ctx/.containerignore"}, "ctx/.containerignore"},
		{"containerignore wins over dockerignore", "ctx/Dockerfile", []string{"ctx/.dockerignore", "ctx/.containerignore"}, "ctx/.containerignore"},
		{"Dockerfile.dockerignore wins", "ctx/Dockerfile",
			[]string{"ctx/.dockerignore", "ctx/.containerignore", "ctx/Dockerfile.dockerignore"}, "ctx/Dockerfile.dockerignore"},
		{"Containerfile.dockerignore wins", "ctx/Containerfile",
			[]string{"ctx/.containerignore", "ctx/Containerfile.dockerignore", "ctx/Dockerfile.dockerignore"}, "ctx/Containerfile.dockerignore"},
		{"named Dockerfile in a subdirectory", "ctx/sub/app.Dockerfile",
			[]string{"ctx/sub/app.Dockerfile.dockerignore", "ctx/sub/.dockerignore", "ctx/.containerignore"}, "ctx/sub/app.Dockerfile.dockerignore"},
		{"beside the Dockerfile before the context", "ctx/sub/Dockerfile",
			[]string{"ctx/sub/.dockerignore", "ctx/.containerignore"}, "ctx/sub/.dockerignore"},
		{"containerignore beside the Dockerfile", "ctx/sub/Dockerfile",
			[]string{"ctx/sub/.dockerignore", "ctx/sub/.containerignore"}, "ctx/sub/.containerignore"},
		{"the context's when the Dockerfile's directory has none", "ctx/sub/Dockerfile",
			[]string{"ctx/.dockerignore", "ctx/.containerignore"}, "ctx/.containerignore"},
		{"not outside the context", "other/Dockerfile",
			[]string{"other/Dockerfile.dockerignore", "other/.containerignore", "ctx/.dockerignore"}, "ctx/.dockerignore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range append([]string{tc.dockerfile}, tc.files...) {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				// Each ignore file holds its own path as its one pattern.
				if err := os.WriteFile(p, []byte(f+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := autoDockerignore(filepath.Join(dir, tc.dockerfile), filepath.Join(dir, "ctx"))
			fm, ok := m.(*FilePatternMatcher)
			if !ok {
				t.Fatalf("autoDockerignore = %T, want a *FilePatternMatcher", m)
			}
			got, err := fm.Patterns()
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			if !slices.Equal(got, want) {
				t.Errorf("the patterns are %q, want those of %q", got, tc.want)
			}
		})
	}
}
