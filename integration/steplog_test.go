package integration

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStepLogClipped: a step printing 100 MB shows about 2 MiB of it, as
// BuildKit clips a step's log, with lines saying so and how much was not
// shown; the build log whose path the build prints has every line.
func TestStepLogClipped(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	r := runner{t: t, root: rootDir}
	nonce := "steplog-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	// 1,000,000 lines of 99 x's: 100,000,000 bytes with the newlines.
	recipe := writeRecipe(t, t.TempDir(), "loud.yaml", `
- debian_slim: {}
- run_commands: ["echo `+nonce+`; head -c 99000000 /dev/zero | tr '\\0' x | fold -w 99; echo; echo `+nonce+`-end"]
`)
	start := time.Now()
	res := r.ok("build", recipe, "--progress", "plain")
	t.Logf("build: %v, %d bytes of progress", time.Since(start), len(res.stderr))
	if len(res.stderr) > 3<<20 {
		t.Errorf("the progress is %d bytes, want the step clipped at about 2 MiB", len(res.stderr))
	}
	x := "#2 " + strings.Repeat("x", 99) + "\n"
	if n := strings.Count(res.stderr, x); n < 20900 || n > 20971 {
		t.Errorf("the progress shows %d lines of the step, want 2 MiB of them (20900 to 20971)", n)
	}
	for _, want := range []string{
		"#2 " + nonce + "\n",
		x + "#2 [output clipped, log limit 2MiB reached]\n",
		"#2 [output clipped: 93.", // of 100,000,000 bytes and more, 2 MiB shown
		" lines not shown]\n#2 DONE ",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("the progress lacks %q", want)
		}
	}
	if strings.Contains(res.stderr, "#2 "+nonce+"-end\n") {
		t.Errorf("the progress shows the step's last line")
	}
	var path string
	for _, l := range strings.Split(res.stderr, "\n") {
		if p, ok := strings.CutPrefix(l, "build log: "); ok {
			path = p
		}
	}
	if filepath.Dir(path) != filepath.Join(rootDir, "logs") {
		t.Fatalf("no line 'build log: %s/logs/...' in the progress's end:\n%s", rootDir, tail(res.stderr, 5))
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, first, last := 0, false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		switch sc.Text() {
		case x[:len(x)-1]:
			lines++
		case "#2 " + nonce:
			first = true
		case "#2 " + nonce + "-end":
			last = true
		}
		if strings.Contains(sc.Text(), "clipped") {
			t.Errorf("the build log has %q", sc.Text())
		}
	}
	must(t, sc.Err())
	if lines != 1000000 || !first || !last {
		t.Errorf("the build log has %d lines of x's (want 1000000), the first line: %v, the last: %v", lines, first, last)
	}
}
