package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild/internal/testimage"
)

// parallelDockerfile has two independent stages whose RUN steps print a
// numbered line a second for six seconds, so that they run at once and
// their output interleaves; the last stage needs both. word makes the
// steps' text, and so their cache keys, differ between builds.
func parallelDockerfile(word string) string {
	run := func(stage string) string {
		return fmt.Sprintf("RUN for i in 1 2 3 4 5 6; do echo %s-%s-$i; sleep 1; done", word, stage)
	}
	return "FROM progress-base AS a\n" + run("a") + "\n" +
		"FROM progress-base AS b\n" + run("b") + "\n" +
		"FROM progress-base\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n"
}

// TestProgressParallelStages: two stages that run at once, shown by plain
// and by tty progress. Plain: every output line carries the number of its
// step, so each step's lines, picked by that number, are its own, whole
// and in order, though the two steps' lines interleave. Tty: a status
// line per running step, both at once, and none left on the screen.
func TestProgressParallelStages(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ldd")
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	must(t, testimage.WriteLayout(base, testimage.Spec{
		Tag:   "progress-base",
		Tools: []string{"sh", "echo", "sleep"},
		Dirs:  []string{"/etc", "/tmp"},
		Files: map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"},
	}))
	// Two ops at once whatever the CPUs: the default parallelism is
	// GOMAXPROCS.
	r := runner{t: t, root: filepath.Join(dir, "store"), env: []string{"GOMAXPROCS=2"}}
	r.ok("load", base)

	build := func(word, progress string) string {
		ctx := filepath.Join(dir, word)
		must(t, os.MkdirAll(ctx, 0o755))
		must(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(parallelDockerfile(word)), 0o644))
		return r.ok("build", "-f", filepath.Join(ctx, "Dockerfile"), "-t", word, "--progress", progress, ctx).stderr
	}

	plain := build("plain", "plain")
	lines := strings.Split(plain, "\n")
	// The step of each stage: its number and where it starts and ends.
	type step struct {
		n          string
		start, end int
		out        []string
	}
	steps := map[string]*step{}
	header := regexp.MustCompile(`^#(\d+) \[\d+/\d+\] RUN for i in .* echo plain-([ab])-\$i`)
	for i, l := range lines {
		if m := header.FindStringSubmatch(l); m != nil {
			steps[m[2]] = &step{n: m[1], start: i, end: -1}
		}
	}
	if len(steps) != 2 {
		t.Fatalf("the RUN steps of stages a and b are not both shown:\n%s", plain)
	}
	for stage, s := range steps {
		prefix := "#" + s.n + " "
		for i, l := range lines {
			if !strings.HasPrefix(l, prefix) {
				if strings.Contains(l, "plain-"+stage+"-") && !strings.Contains(l, "RUN ") {
					t.Errorf("line %q of stage %s does not carry its step's number #%s", l, stage, s.n)
				}
				continue
			}
			rest := strings.TrimPrefix(l, prefix)
			switch {
			case strings.HasPrefix(rest, "plain-"):
				s.out = append(s.out, rest)
			case strings.HasPrefix(rest, "DONE "):
				s.end = i
			}
		}
		var want []string
		for i := 1; i <= 6; i++ {
			want = append(want, "plain-"+stage+"-"+strconv.Itoa(i))
		}
		if strings.Join(s.out, "\n") != strings.Join(want, "\n") {
			t.Errorf("the lines of #%s (stage %s) are %q, want %q", s.n, stage, s.out, want)
		}
		if s.end < 0 {
			t.Errorf("#%s (stage %s) has no DONE line", s.n, stage)
		}
	}
	a, b := steps["a"], steps["b"]
	if a.n == b.n {
		t.Fatalf("both stages' steps are #%s", a.n)
	}
	// They ran at once: each began before the other ended, and their
	// output lines interleave.
	if a.start > b.end || b.start > a.end {
		t.Errorf("the steps of a (lines %d-%d) and b (lines %d-%d) did not overlap:\n%s", a.start, a.end, b.start, b.end, plain)
	}
	if !regexp.MustCompile(`(?m)^#`+a.n+` plain-a-\d\n(#\d+ .*\n)*#`+b.n+` plain-b-\d\n(#\d+ .*\n)*#`+a.n+` plain-a-\d$`).MatchString(plain) &&
		!regexp.MustCompile(`(?m)^#`+b.n+` plain-b-\d\n(#\d+ .*\n)*#`+a.n+` plain-a-\d\n(#\d+ .*\n)*#`+b.n+` plain-b-\d$`).MatchString(plain) {
		t.Errorf("the output lines of the two steps do not interleave:\n%s", plain)
	}

	tty := build("tty", "tty")
	// Two status lines at once, one per running step, redrawn in place:
	// erase the second, go up, erase the first, draw both.
	two := regexp.MustCompile(`\r\x1b\[K\x1b\[1A\x1b\[K\x1b\[2m#\d+ \[\d+/\d+\] \d+\.\ds RUN for i in [^\n]*? echo tty-([ab])-[^\n]*\x1b\[0m\n\x1b\[2m#\d+ \[\d+/\d+\] \d+\.\ds RUN for i in [^\n]*? echo tty-([ab])-`)
	ms := two.FindAllStringSubmatch(tty, -1)
	both := 0
	for _, m := range ms {
		if m[1] != m[2] {
			both++
		}
	}
	if both < 3 {
		t.Errorf("%d redraws show both running steps, want several:\n%q", both, tail(tty, 20))
	}
	// What the terminal shows at the end: the printed lines, each step's
	// output under its number, and no status line left.
	shown := terminalScreen(t, tty)
	for _, l := range shown {
		if regexp.MustCompile(`^#\d+ \[\d+/\d+\] \d+(\.\d|m\d\d)s `).MatchString(l) || strings.HasPrefix(l, "+") {
			t.Errorf("a status line stayed on the screen: %q\n%s", l, strings.Join(shown, "\n"))
		}
	}
	for _, stage := range []string{"a", "b"} {
		for i := 1; i <= 6; i++ {
			want := regexp.MustCompile(`^#\d+ tty-` + stage + `-` + strconv.Itoa(i) + `$`)
			found := false
			for _, l := range shown {
				found = found || want.MatchString(l)
			}
			if !found {
				t.Errorf("the screen lacks line %s-%d:\n%s", stage, i, strings.Join(shown, "\n"))
			}
		}
	}
}

// terminalScreen is what a terminal shows after out was written to it:
// the text of each line, following the cursor through "\r", "\n", erase
// to the end of the line (ESC [K) and cursor up (ESC [nA), colours
// dropped. Lines are not wrapped.
func terminalScreen(t *testing.T, out string) []string {
	t.Helper()
	lines := [][]rune{nil}
	row, col := 0, 0
	r := []rune(out)
	for i := 0; i < len(r); i++ {
		switch c := r[i]; c {
		case '\r':
			col = 0
		case '\n':
			row, col = row+1, 0
			if row == len(lines) {
				lines = append(lines, nil)
			}
		case '\x1b':
			j := i + 2
			for j < len(r) && (r[j] >= '0' && r[j] <= '9' || r[j] == ';') {
				j++
			}
			if i+1 >= len(r) || r[i+1] != '[' || j == len(r) {
				t.Fatalf("malformed escape at %d: %q", i, string(r[i:min(len(r), i+10)]))
			}
			switch r[j] {
			case 'm':
			case 'K':
				if col < len(lines[row]) {
					lines[row] = lines[row][:col]
				}
			case 'A':
				n := 1
				if p := string(r[i+2 : j]); p != "" {
					n, _ = strconv.Atoi(p)
				}
				if row < n {
					t.Fatalf("cursor up %d from row %d", n, row)
				}
				row -= n
			default:
				t.Fatalf("unexpected escape %q", string(r[i:j+1]))
			}
			i = j
		default:
			for len(lines[row]) < col {
				lines[row] = append(lines[row], ' ')
			}
			if col < len(lines[row]) {
				lines[row][col] = c
			} else {
				lines[row] = append(lines[row], c)
			}
			col++
		}
	}
	var text []string
	for _, l := range lines {
		text = append(text, string(l))
	}
	if n := len(text); n > 0 && text[n-1] == "" {
		text = text[:n-1]
	}
	return text
}
