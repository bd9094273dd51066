package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild"
)

func TestGroupsAndTag(t *testing.T) {
	d := func(name, steps, dir string) definition {
		return definition{name: name, label: "app.py::" + strings.TrimPrefix(name, "p:"), source: "/w/app.py", steps: []byte(steps), dir: dir}
	}
	image, serve, other := d("p:image", `[{"a":1}]`, "/w"), d("p:serve", `[{"a":1}]`, "/w"), d("p:other", `[{"a":2}]`, "/w")
	gs := groups([]definition{image, serve, other})
	if len(gs) != 2 || len(gs[0].defs) != 2 || gs[0].defs[1].name != "p:serve" || gs[1].defs[0].name != "p:other" {
		t.Errorf("groups = %+v", gs)
	}
	// The same steps from another directory are another image (relative
	// paths differ).
	if gs := groups([]definition{image, d("p:x", `[{"a":1}]`, "/elsewhere")}); len(gs) != 2 {
		t.Errorf("steps of two directories grouped: %+v", gs)
	}
	// Recipe images (no steps recorded) are never merged.
	if gs := groups([]definition{{name: "a"}, {name: "b"}}); len(gs) != 2 {
		t.Errorf("recipe images grouped: %+v", gs)
	}

	gs, err := nameWithTag([]string{"mine"}, []definition{image, serve})
	if err != nil || len(gs) != 1 || len(gs[0].defs) != 1 || gs[0].defs[0].name != "mine" {
		t.Errorf("-t of one image: %+v, %v", gs, err)
	}
	gs, err = nameWithTag([]string{"mine", "mine:v2"}, []definition{image})
	if err != nil || len(gs) != 1 || len(gs[0].defs) != 2 || gs[0].defs[1].name != "mine:v2" {
		t.Errorf("two -t: %+v, %v", gs, err)
	}
	_, err = nameWithTag([]string{"mine"}, []definition{image, serve, other})
	if err == nil || !strings.Contains(err.Error(), "2 different images are defined: app.py::image = app.py::serve, app.py::other") ||
		!strings.Contains(err.Error(), "snapbuild build app.py::image -t mine") {
		t.Errorf("-t of two images: %v", err)
	}
}

func TestPrintFlag(t *testing.T) {
	for args, want := range map[string]string{"--print": "text", "--print=json": "json", "--print=text": "text", "": ""} {
		fs := flag.NewFlagSet("build", flag.ContinueOnError)
		var p printFlag
		fs.Var(&p, "print", "")
		if _, _, err := parse(fs, strings.Fields(args+" app.py")); err != nil || string(p) != want {
			t.Errorf("%q: %q, %v", args, p, err)
		}
	}
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	var p printFlag
	fs.Var(&p, "print", "")
	if _, _, err := parse(fs, []string{"--print=yaml"}); err == nil || !strings.Contains(err.Error(), "--print=json") {
		t.Errorf("--print=yaml: %v", err)
	}
}

func TestWritePlan(t *testing.T) {
	key := strings.Repeat("ab", 32)
	p := snapbuild.Plan{Layers: []snapbuild.PlanLayer{
		{Method: "debian_slim", Steps: []snapbuild.PlanStep{
			{Instruction: "FROM python:3.11-slim-bookworm", State: snapbuild.PlanCached, Key: key},
			{Instruction: `CMD ["sleep", "172800"]`, State: snapbuild.PlanConfig},
		}},
		{Method: "run_commands", Steps: []snapbuild.PlanStep{
			{Instruction: "RUN cat <<EOF > /x\nhi\nEOF", State: snapbuild.PlanRun, Key: key, Note: "run: not in the cache"},
			{Instruction: "RUN true", State: snapbuild.PlanPending},
		}},
		{Method: "add_local_dir", Runtime: true},
	}}
	var b bytes.Buffer
	writePlan(&b, []string{"p:image", "p:serve"}, []string{"app.py::image", "app.py::serve"}, p)
	want := `p:image, p:serve (app.py::image, app.py::serve)
  [1] debian_slim
      FROM python:3.11-slim-bookworm  cached   key abababababab
      CMD ["sleep", "172800"]         config
  [2] run_commands
      RUN cat <<EOF > /x ...          run      key abababababab  (run: not in the cache)
      RUN true                        pending
  [3] add_local_dir (copy=False: attached when the image runs)
  4 instructions: 1 cached, 1 config, 1 to run, 1 pending
`
	if b.String() != want {
		t.Errorf("writePlan:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestSelector: the -t error's example selects a recipe's image as an
// argument after the file, and a Python file's after "::".
func TestSelector(t *testing.T) {
	for label, want := range map[string]string{
		"fb.yaml::fb1":      "fb.yaml fb1",
		"dir/r.yml::web":    "dir/r.yml web",
		"r.json::a":         "r.json a",
		"app.py::image":     "app.py::image",
		"pkg.module::image": "pkg.module::image",
		"hello.yaml":        "hello.yaml",
	} {
		if got := selector(label); got != want {
			t.Errorf("selector(%q) = %q, want %q", label, got, want)
		}
	}
}
