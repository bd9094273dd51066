package snapbuild

import (
	"reflect"
	"strings"
	"testing"
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
			got, err := dockerfileContextPatterns(strings.Split(tc.dockerfile, "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("dockerfileContextPatterns = %q, want %q", got, tc.want)
			}
		})
	}
	// Modal's own rule for dockerfile_commands stays: a variable is refused.
	if _, err := copyPatterns([]string{"ARG SRC=app", "COPY ${SRC}/ /app/"}); err == nil {
		t.Error("copyPatterns accepted a variable in a COPY source")
	}
}
