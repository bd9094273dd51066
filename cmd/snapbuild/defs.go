package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/snapbuild/snapbuild"
	"github.com/snapbuild/snapbuild/frontend"
	"github.com/snapbuild/snapbuild/recipe"
	"github.com/snapbuild/snapbuild/sandbox"
)

// definition is one image a build command names: a recipe's image, or an
// image of a Modal file or module.
type definition struct {
	name   string // the store-wide name it gets
	label  string // how the user selects it: "app.py::image", "hello.yaml::hello"
	source string // what defined it, recorded with the name (TagOptions.Source)
	image  snapbuild.Image
	steps  []byte // its recipe steps as compact JSON: equal steps, equal image
	dir    string // where its relative local paths start
}

// sameAs reports whether d and e are the same definition: the same recipe
// steps read from the same directory (relative paths resolve alike).
func (d definition) sameAs(e definition) bool {
	return d.steps != nil && bytes.Equal(d.steps, e.steps) && d.dir == e.dir
}

// group is one image to build and every name it gets.
type group struct {
	defs []definition
}

// groups puts equal definitions together, in order of first appearance.
func groups(defs []definition) []group {
	var out []group
next:
	for _, d := range defs {
		for i := range out {
			if out[i].defs[0].sameAs(d) {
				out[i].defs = append(out[i].defs, d)
				continue next
			}
		}
		out = append(out, group{defs: []definition{d}})
	}
	return out
}

// nameWithTag applies -t (one or more): the names all name the one image
// the definitions define (several names of one definition are one image, as
// a Modal file's `image` and the functions that use it), or it fails
// listing the images.
func nameWithTag(tags []string, defs []definition) ([]group, error) {
	gs := groups(defs)
	if len(gs) == 1 {
		var named []definition
		for _, t := range tags {
			d := gs[0].defs[0]
			d.name = t
			named = append(named, d)
		}
		return []group{{defs: named}}, nil
	}
	var labels []string
	for _, g := range gs {
		var ls []string
		for _, d := range g.defs {
			ls = append(ls, d.label)
		}
		labels = append(labels, strings.Join(ls, " = "))
	}
	return nil, fmt.Errorf("build: -t names one image, but %d different images are defined: %s; pick one, e.g. snapbuild build %s -t %s",
		len(gs), strings.Join(labels, ", "), selector(gs[0].defs[0].label), tags[0])
}

// selector is how the command line selects the image labelled label: a
// recipe's image is an argument after the file ("hello.yaml hello"), a
// Python file's is named after "::" as its label says ("app.py::image").
func selector(label string) string {
	file, name, ok := strings.Cut(label, "::")
	switch strings.ToLower(filepath.Ext(file)) {
	case ".yaml", ".yml", ".json":
		if ok {
			return file + " " + name
		}
	}
	return label
}

// recipeSteps returns each image's steps of recipe JSON ({name: [steps]}),
// compacted.
func recipeSteps(data []byte) (map[string][]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		var b bytes.Buffer
		if err := json.Compact(&b, v); err != nil {
			return nil, err
		}
		out[k] = b.Bytes()
	}
	return out, nil
}

// loadRecipe reads a recipe file's images; tag ("" for the file's stem)
// names a single-list recipe's image.
func loadRecipe(file, tag string) ([]definition, error) {
	imgs, err := recipe.Load(file, tag)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	var defs []definition
	for _, im := range imgs {
		// Recipe images are told apart by name; only identical names
		// would be "the same", which a recipe cannot have.
		defs = append(defs, definition{name: im.Name, label: file + "::" + im.Name, source: abs, image: im.Image})
	}
	return defs, nil
}

// defaultLoadTimeout is build's --load-timeout: how long a Python file may
// take to load (imports included) before snapbuild stops it. Modal sets no
// limit; a file that loops at import would otherwise hang the build.
const defaultLoadTimeout = 2 * time.Minute

// loadPython runs a Modal file (FILE.py[::NAME]) or, with module set, a
// module (PKG.MODULE[::NAME], as `modal run -m`), and names its images
// "<project>:<name>" (frontend.ImageName). Local paths are relative to the
// working directory, as in Modal.
func loadPython(ctx context.Context, ref string, module bool, timeout time.Duration) ([]definition, error) {
	target, selector := frontend.SplitRef(ref)
	opts := frontend.Options{Selector: selector, Meta: true, Timeout: timeout}
	file := target
	if module {
		opts.Module, file = target, ""
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	ev := pythonEval{Ref: ref, Module: module, Cwd: cwd}
	res, ok := handedOver(ev)
	if !ok {
		res, err = frontend.Evaluate(ctx, file, opts)
		var te *frontend.TimeoutError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%w; give it longer with --load-timeout (now %v; 0 for no limit)", err, timeout)
		}
		if err != nil {
			return nil, err
		}
	}
	ev.Recipe, ev.Meta = res.Recipe, res.Meta
	evaluated = append(evaluated, ev)
	stem := res.Meta.Stem
	imgs, err := recipe.ParseGenerated(res.Recipe, cwd, stem)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	steps, err := recipeSteps(res.Recipe)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the front end's recipe: %w", ref, err)
	}
	meta := map[string]frontend.ImageMeta{}
	for _, m := range res.Meta.Images {
		meta[m.Name] = m
	}
	source := res.Meta.Source
	if module {
		source = fmt.Sprintf("python -m %s in %s", target, cwd)
	}
	var defs []definition
	for _, im := range imgs {
		m := meta[im.Name]
		defs = append(defs, definition{
			name:   frontend.ImageName(frontend.ProjectName(m.App, stem), im.Name),
			label:  target + "::" + im.Name,
			source: source,
			image:  im.Image,
			steps:  steps[im.Name],
			dir:    cwd,
		})
	}
	return defs, nil
}

// pythonEval is what loadPython read from a Python file or module.
type pythonEval struct {
	Ref    string        `json:"ref"`    // FILE.py[::NAME] or PKG.MODULE[::NAME]
	Module bool          `json:"module"` // -m
	Cwd    string        `json:"cwd"`    // the working directory it ran in
	Recipe []byte        `json:"recipe"` // frontend.Result.Recipe
	Meta   frontend.Meta `json:"meta"`
}

// evaluated are the Python files and modules this process evaluated, for
// handOver.
var evaluated []pythonEval

// envEvaluated names the file in which a process that re-executes itself
// into the build namespace hands its evaluated Python files to the new
// process (handOver), so that a file is run once per command, not once per
// process: importing it may be slow, or have effects.
const envEvaluated = "_SNAPBUILD_PYTHON_EVALUATED"

// handOver writes what this process evaluated to a file that the process
// it is about to re-execute into the namespace reads (handedOver), and
// names it in the environment. Without it, that process evaluates again.
func handOver() {
	if len(evaluated) == 0 {
		return
	}
	data, err := json.Marshal(evaluated)
	if err != nil {
		return
	}
	f, err := os.CreateTemp("", "snapbuild-python-")
	if err != nil {
		return
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err != nil || cerr != nil {
		os.Remove(f.Name())
		return
	}
	os.Setenv(envEvaluated, f.Name())
}

// handedOver returns the evaluation of ev's file or module (its Ref,
// Module and Cwd) that the process which re-executed this one into the
// build namespace handed over, if any. The first call reads and removes
// the file.
func handedOver(ev pythonEval) (*frontend.Result, bool) {
	handedOnce.Do(func() {
		name := os.Getenv(envEvaluated)
		if name == "" || !sandbox.Entered() {
			return
		}
		os.Unsetenv(envEvaluated)
		data, err := os.ReadFile(name)
		os.Remove(name)
		if err == nil {
			json.Unmarshal(data, &handed)
		}
	})
	for _, h := range handed {
		if h.Ref == ev.Ref && h.Module == ev.Module && h.Cwd == ev.Cwd {
			return &frontend.Result{Recipe: h.Recipe, Meta: h.Meta}, true
		}
	}
	return nil, false
}

var (
	handedOnce sync.Once
	handed     []pythonEval
)
