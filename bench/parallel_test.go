package main

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestStageSpans reads the stages' times from the two tools' output, as
// they print it, where the RUN's own text (echoed with $(date ...)
// unexpanded) must not count.
func TestStageSpans(t *testing.T) {
	run := func(stage string) string {
		return `RUN echo "bench-stage ` + stage + ` start $(date +%s.%N)" && seq 1 3 | gzip -9 >/x && echo "bench-stage ` + stage + ` end $(date +%s.%N)"`
	}
	snapbuild := strings.Join([]string{
		`{"kind":"start","step":3,"instruction":` + jsonString(run("left")) + `}`,
		`{"kind":"output","step":6,"instruction":` + jsonString(run("right")) + `,"line":"bench-stage right start 1796451114.453734635"}`,
		`{"kind":"output","step":6,"line":"bench-stage right end 1796451117.692668347"}`,
		`{"kind":"output","step":3,"line":"bench-stage left start 1796451119.193751168"}`,
		`{"kind":"output","step":3,"line":"bench-stage left end 1796451122.152486165"}`,
	}, "\n")
	buildah := strings.Join([]string{
		"[1/3] STEP 3/3: " + run("left"),
		"[2/3] STEP 3/3: " + run("right"),
		"bench-stage right start 1796451167.070064387",
		"bench-stage left start 1796451167.157241865",
		"bench-stage left end 1796451174.343119817",
		"bench-stage right end 1796451174.414594410",
	}, "\n")
	for _, tc := range []struct {
		name        string
		out         string
		ok          bool
		left, right span
		overlap     float64
	}{
		{"snapbuild --jobs 1", snapbuild, true, span{1796451119.193751168, 1796451122.152486165}, span{1796451114.453734635, 1796451117.692668347}, 0},
		{"buildah --jobs 2", buildah, true, span{1796451167.157241865, 1796451174.343119817}, span{1796451167.070064387, 1796451174.414594410}, 1},
		{"cached: the RUN's text only", run("left") + "\n" + run("right"), false, span{}, span{}, 0},
		{"one stage only", "bench-stage left start 1.5\nbench-stage left end 2.5\n", false, span{}, span{}, 0},
	} {
		left, right, ok := stageSpans(tc.out)
		if ok != tc.ok {
			t.Errorf("%s: stageSpans ok = %v, want %v", tc.name, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
		if !near(left.start, tc.left.start) || !near(left.end, tc.left.end) || !near(right.start, tc.right.start) || !near(right.end, tc.right.end) {
			t.Errorf("%s: stageSpans = %+v, %+v; want %+v, %+v", tc.name, left, right, tc.left, tc.right)
		}
		if o := overlap(left, right); !near(o, tc.overlap) {
			t.Errorf("%s: overlap = %v, want %v", tc.name, o, tc.overlap)
		}
	}
}

// TestOverlap: the share of the shorter span during which the other ran.
func TestOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b span
		want float64
	}{
		{span{0, 2}, span{2, 4}, 0},   // one after the other
		{span{0, 2}, span{3, 4}, 0},   // a gap between
		{span{0, 4}, span{1, 2}, 1},   // b within a
		{span{0, 2}, span{1, 5}, 0.5}, // half of a
		{span{1, 5}, span{0, 2}, 0.5}, // either order
		{span{0, 0}, span{0, 1}, 0},   // an empty span
	} {
		if got := overlap(tc.a, tc.b); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("overlap(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestParallelDockerfile: the stages compress disjoint ranges of
// stageNumbers numbers each, and the final stage copies both.
func TestParallelDockerfile(t *testing.T) {
	df := parallelDockerfile()
	for _, want := range []string{
		"FROM benchbase AS left\nARG TOKEN\n",
		fmt.Sprintf("seq 1 %d | gzip -9 >/left.gz", stageNumbers),
		"FROM benchbase AS right\nARG TOKEN\n",
		fmt.Sprintf("seq %d %d | gzip -9 >/right.gz", stageNumbers+1, 2*stageNumbers),
		`echo "bench-stage right start $(date +%s.%N)"`,
		`echo "bench-stage right end $(date +%s.%N)"`,
		"\nCOPY --from=left /left.gz /out/\nCOPY --from=right /right.gz /out/\n",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("parallelDockerfile lacks %q:\n%s", want, df)
		}
	}
	if stageLine.MatchString(df) {
		t.Errorf("stageLine matches the Dockerfile's own text:\n%s", df)
	}
}

func jsonString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "<", `\u003c`, ">", `\u003e`, "&", `\u0026`)
	return `"` + r.Replace(s) + `"`
}
