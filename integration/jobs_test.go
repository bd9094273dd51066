package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// jobsDockerfile has two stages that do not need each other, each a RUN
// that prints its start and end time around a sleep, and a final stage that
// copies a file from each. TOKEN makes each build run both stages.
const jobsDockerfile = `FROM jobs-base AS left
ARG TOKEN
RUN echo "stage left start $(date +%s.%N)" && sleep 2 && echo "$TOKEN" >/token && echo left >/left && echo "stage left end $(date +%s.%N)"

FROM jobs-base AS right
ARG TOKEN
RUN echo "stage right start $(date +%s.%N)" && sleep 2 && echo "$TOKEN" >/token && echo right >/right && echo "stage right end $(date +%s.%N)"

FROM jobs-base
COPY --from=left /left /
COPY --from=right /right /
`

// jobsStageLine matches what a stage prints, not the RUN's text that the
// progress shows (with $(date ...) unexpanded).
var jobsStageLine = regexp.MustCompile(`stage (left|right) (start|end) ([0-9]+\.[0-9]+)`)

// overlap reads the start and end times that a "left" and a "right" step
// printed (line's groups: which, start or end, the time) from a build's
// progress, and returns the seconds both ran at once (negative when one
// ended before the other began) and a description of the two spans.
func overlap(t *testing.T, line *regexp.Regexp, progress, what string) (float64, string) {
	t.Helper()
	spans := map[string][2]float64{}
	for _, m := range line.FindAllStringSubmatch(progress, -1) {
		v, err := strconv.ParseFloat(m[3], 64)
		must(t, err)
		sp := spans[m[1]]
		if m[2] == "start" {
			sp[0] = v
		} else {
			sp[1] = v
		}
		spans[m[1]] = sp
	}
	l, r := spans["left"], spans["right"]
	if l[0] == 0 || l[1] == 0 || r[0] == 0 || r[1] == 0 {
		t.Fatalf("%s: the start and end times are not all in the progress (%v):\n%s", what, spans, tail(progress, 30))
	}
	return min(l[1], r[1]) - max(l[0], r[0]), fmt.Sprintf("left ran %.2f..%.2f, right %.2f..%.2f", l[0], l[1], r[0], r[1])
}

// TestBuildJobs checks build's --jobs on a real build graph: with --jobs 1
// the two independent stages run one after the other, with --jobs 2 at
// once (as buildah bud --jobs runs stages), and both give the same image.
func TestBuildJobs(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd", "sh", "echo", "sleep", "date")
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	must(t, testimage.WriteLayout(base, testimage.Spec{Tag: "jobs-base", Tools: []string{"sh", "echo", "sleep", "date"}, Dirs: []string{"/tmp"}}))
	r := runner{t: t, root: filepath.Join(dir, "store")}
	r.ok("load", base)
	ctx := filepath.Join(dir, "context")
	must(t, os.MkdirAll(ctx, 0o755))
	must(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(jobsDockerfile), 0o644))

	manifests := map[string]string{}
	for _, jobs := range []string{"1", "2"} {
		res := r.ok("build", "--jobs", jobs, "--build-arg", "TOKEN=jobs-"+jobs, "-t", "jobs", "--progress", "json", ctx)
		s := lastSummary(t, res.stdout)
		manifests[jobs] = s.Manifest
		if s.Stats.ContainersStarted != 2 {
			t.Errorf("--jobs %s: %d containers started, want 2 (both stages' RUN)", jobs, s.Stats.ContainersStarted)
		}
		both, desc := overlap(t, jobsStageLine, res.stderr, "--jobs "+jobs)
		switch {
		case jobs == "1" && both > 0:
			t.Errorf("--jobs 1: the stages ran at once for %.2fs (%s), want one after the other", both, desc)
		case jobs == "2" && both <= 0:
			t.Errorf("--jobs 2: the stages ran one after the other (%s), want them at once", desc)
		}
	}
	if manifests["1"] != manifests["2"] {
		t.Errorf("--jobs 1 made manifest %s, --jobs 2 %s: want the same image", manifests["1"], manifests["2"])
	}
}

// imagesRecipe is two images of one recipe on a stored base: a step they
// share (the same cache key), then a step of each that prints its start and
// end time around a sleep. TOKEN makes each build run every step.
const imagesRecipe = `left:
  - from_id: jobs-base
  - run_commands: ["echo shared-TOKEN >/shared"]
  - run_commands: ["echo \"image left start $(date +%s.%N)\" && sleep 2 && echo left-TOKEN >/left && echo \"image left end $(date +%s.%N)\""]
right:
  - from_id: jobs-base
  - run_commands: ["echo shared-TOKEN >/shared"]
  - run_commands: ["echo \"image right start $(date +%s.%N)\" && sleep 2 && echo right-TOKEN >/right && echo \"image right end $(date +%s.%N)\""]
`

var imagesLine = regexp.MustCompile(`image (left|right) (start|end) ([0-9]+\.[0-9]+)`)

// TestBuildImagesAtOnce: the images of one recipe build at once (as docker
// buildx bake builds its targets), bounded by --jobs: with --jobs 2 their own
// steps overlap, with --jobs 1 they do not. The step both images share runs
// once (three containers in all, not four), and each image's progress is
// labelled with its name.
func TestBuildImagesAtOnce(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd", "sh", "echo", "sleep", "date", "cat")
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	must(t, testimage.WriteLayout(base, testimage.Spec{Tag: "jobs-base", Tools: []string{"sh", "echo", "sleep", "date", "cat"}, Dirs: []string{"/tmp"}}))
	r := runner{t: t, root: filepath.Join(dir, "store")}
	r.ok("load", base)

	for _, jobs := range []string{"1", "2"} {
		recipe := writeRecipe(t, dir, "images.yaml", strings.ReplaceAll(imagesRecipe, "TOKEN", "jobs-"+jobs))
		res := r.ok("build", "--jobs", jobs, "--progress", "json", recipe)
		containers := 0
		sc := bufio.NewScanner(strings.NewReader(res.stdout))
		for sc.Scan() {
			var s buildSummary
			if json.Unmarshal(sc.Bytes(), &s) == nil && s.Kind == "image" {
				containers += s.Stats.ContainersStarted
			}
		}
		if containers != 3 {
			t.Errorf("--jobs %s: %d containers started in all, want 3 (the shared step once, and each image's own)", jobs, containers)
		}
		for _, name := range []string{"left", "right"} {
			if !strings.Contains(res.stderr, `"image":"`+name+`"`) {
				t.Errorf("--jobs %s: no progress event labelled %q:\n%s", jobs, name, tail(res.stderr, 20))
			}
		}
		both, desc := overlap(t, imagesLine, res.stderr, "--jobs "+jobs)
		switch {
		case jobs == "1" && both > 0:
			t.Errorf("--jobs 1: the images' steps ran at once for %.2fs (%s), want one after the other", both, desc)
		case jobs == "2" && both <= 0:
			t.Errorf("--jobs 2: the images' steps ran one after the other (%s), want them at once", desc)
		}
		for _, name := range []string{"left", "right"} {
			out := r.ok("run", name, "--", "sh", "-c", "echo $(cat /shared) $(cat /"+name+")").stdout
			if want := "shared-jobs-" + jobs + " " + name + "-jobs-" + jobs; strings.TrimSpace(out) != want {
				t.Errorf("--jobs %s: %s holds %q, want %q", jobs, name, strings.TrimSpace(out), want)
			}
		}
	}
}
