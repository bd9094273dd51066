package integration

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestProgressFirstBuild: the first build of the hello recipe, in a fresh
// store, as plain progress shows it: steps count the recipe's entries, each
// with the Dockerfile lines it lowers to; the Debian bootstrap reports its
// phases and is labelled as what it is, its FROM line kept as the image's
// history; a rebuild prints CACHED as often as the summary says.
func TestProgressFirstBuild(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	r := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	res := r.ok("build", helloRecipe(t), "--progress", "plain")

	// Entries and their lines, in order.
	wantInOrder := []string{
		`#1 [1/5] debian_slim(python_version="3.11"): Debian bookworm base with Python 3.11 (bootstrapped)`,
		"#1 FROM python:3.11-slim-bookworm",
		"#1 debian: updating package lists",
		"#1 debian: downloading ",
		"#1 debian: unpacking the essential packages",
		"#1 debian: configuring the essential packages",
		"#1 debian: downloading ",
		"#1 debian: configuring ",
		"#1 debian: customizing",
		`#1 CMD ["sleep", "172800"]`,
		"#1 DONE ",
		`#2 [2/5] apt_install(["git"])`,
		"#2 RUN apt-get update",
		"#2 RUN apt-get install -y git",
		"#2 DONE ",
		`#3 [3/5] run_commands(["git --version > /git-version"])`,
		"#3 RUN git --version > /git-version",
		"#3 DONE ",
		`#4 [4/5] env({"GREETING": "hello"})`,
		"#4 ENV GREETING=hello",
		"#4 DONE ",
		`#5 [5/5] workdir("/work")`,
		"#5 WORKDIR /work",
		"#5 DONE ",
	}
	rest := "\n" + res.stderr
	for _, w := range wantInOrder {
		i := strings.Index(rest, "\n"+w)
		if i < 0 {
			t.Fatalf("plain progress lacks a line %q after the lines before it:\n%s", w, tail(res.stderr, 60))
		}
		rest = rest[i+1+len(w):]
	}
	// Plain progress keeps mmdebstrap's own lines.
	if !strings.Contains(res.stderr, "\n#1 I: running apt-get update") {
		t.Errorf("plain progress lacks mmdebstrap's I: lines")
	}
	if !regexp.MustCompile(`#1 debian: downloading \d+ essential packages \(`).MatchString(res.stderr) {
		t.Errorf("no package count in the download phase:\n%s", grepLines(res.stderr, "debian:"))
	}
	if !strings.HasSuffix(res.stdout, "(5 steps, 0 cached, 3 containers)\n") {
		t.Errorf("summary %q: want 5 steps, 0 cached, 3 containers", res.stdout)
	}
	// Modal's FROM line is the base's history.
	if h := inspect(t, r, "hello").Config.History; len(h) == 0 || h[0].CreatedBy != "FROM python:3.11-slim-bookworm" {
		t.Errorf("history = %+v, want FROM python:3.11-slim-bookworm first", h)
	}

	// A rebuild: every entry but env (config only) is cached, and the
	// summary counts what was printed.
	again := r.ok("build", helloRecipe(t), "--progress", "plain")
	if n := strings.Count(again.stderr, " CACHED\n"); n != 4 || !strings.HasSuffix(again.stdout, "(5 steps, 4 cached, 0 containers)\n") {
		t.Errorf("rebuild: %d CACHED lines, summary %q; want 4 and (5 steps, 4 cached, 0 containers)\n%s", n, again.stdout, again.stderr)
	}

	// A step silent for longer than 30 s says it is still running.
	quiet := writeRecipe(t, t.TempDir(), "quiet.yaml", "- from_id: hello\n- run_commands: [\"sleep 33\"]\n")
	res = r.ok("build", quiet, "--progress", "plain")
	if !strings.Contains(res.stderr, "\n#2 RUN sleep 33\n#2 still running, 30s\n#2 DONE ") {
		t.Errorf("a silent step gave no heartbeat:\n%s", res.stderr)
	}

	// JSON: one entry-start per entry, and the summary's counts.
	js := r.ok("build", helloRecipe(t), "--progress", "json")
	var starts []string
	sc := bufio.NewScanner(strings.NewReader(js.stderr))
	for sc.Scan() {
		var e struct{ Kind, Method, Label string }
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Kind == "entry-start" {
			starts = append(starts, e.Method)
		}
	}
	if strings.Join(starts, ",") != "debian_slim,apt_install,run_commands,env,workdir" {
		t.Errorf("entry-start events for %q", starts)
	}
	if s := lastSummary(t, js.stdout); s.Stats.Steps != 7 || s.Stats.Cached != 5 {
		t.Errorf("JSON stats %+v: want 7 instructions, 5 cached", s.Stats)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestProgressTTY: the terminal view of a first build (--progress tty, as
// auto picks on a terminal): the bootstrap's phases without mmdebstrap's
// own lines, and a status line with the running step's elapsed time,
// erased before each printed line.
func TestProgressTTY(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap")
	requireMirror(t)
	r := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	res := r.ok("build", helloRecipe(t), "--progress", "tty")
	plain := screen(res.stderr)
	for _, want := range []string{
		"\n#1 debian: downloading ",
		"\n#1 debian: configuring ",
		"\n#1 DONE ",
		`#2 [2/5] apt_install(["git"])`,
		"\n#5 DONE ",
	} {
		if !strings.Contains(plain, want) {
			t.Errorf("tty progress lacks %q:\n%s", want, tail(plain, 40))
		}
	}
	for _, unwanted := range []string{"I: running apt-get update", "dpkg: warning", "still running"} {
		if strings.Contains(plain, unwanted) {
			t.Errorf("tty progress shows %q", unwanted)
		}
	}
	// No status line is left on the screen: each was erased.
	if left := regexp.MustCompile(`(?m)^#\d \[\d/5\] (\d+\.\ds|\d+m\d\ds) .*$`).FindString(plain); left != "" {
		t.Errorf("a status line stayed on the screen: %q", left)
	}
	// The status line: dim, redrawn in place with the elapsed time.
	// Before its first phase the bootstrap's status line shows Modal's FROM
	// line, then the phase it is in.
	status := regexp.MustCompile(`\r\x1b\[K\x1b\[2m#1 \[1/5\] (\d+\.\ds|\d+m\d\ds) (FROM python:3.11-slim-bookworm|debian: [a-z])`)
	if n := len(status.FindAllString(res.stderr, -1)); n < 5 {
		t.Errorf("%d redraws of the bootstrap's status line, want many", n)
	}
	if !regexp.MustCompile(`\r\x1b\[K\x1b\[2m#1 \[1/5\] (\d+\.\ds|\d+m\d\ds) debian: configuring`).MatchString(res.stderr) {
		t.Errorf("the bootstrap's status line never showed its configuring phase")
	}
	// Every line printed while a status line is shown starts on an erased
	// line, and the output ends with a complete line.
	if !strings.Contains(res.stderr, "\r\x1b[K#1 debian: configuring ") || !strings.HasSuffix(res.stderr, "\n") {
		t.Errorf("lines are not printed over an erased status line")
	}
}

// screen is what a terminal shows of out: of each line, what follows its
// last carriage return and erase-line, without colours.
func screen(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if j := strings.LastIndex(l, "\r\x1b[K"); j >= 0 {
			l = l[j+len("\r\x1b[K"):]
		}
		lines[i] = regexp.MustCompile(`\x1b\[[0-9;]*m`).ReplaceAllString(l, "")
	}
	return "\n" + strings.Join(lines, "\n")
}
