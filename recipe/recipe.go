// Package recipe reads image recipes: YAML (or JSON) files whose steps are
// modal.Image method names with Modal's argument names, and turns them into
// snapbuild Images.
//
// A recipe is either a list of steps (one image) or a mapping of image names
// to lists of steps (several images, which snapbuild build builds at once). Each step is a
// one-key mapping, method: arguments, where arguments are a mapping of Modal's
// keyword arguments, a list (the method's variadic arguments), a single
// string (its first argument), or null:
//
//   - debian_slim: {python_version: "3.11"}
//   - apt_install: [git]
//   - run_commands: ["git --version > /git-version"]
//   - env: {GREETING: hello}
//   - workdir: /work
//
// from_id names an image in the store (an "im-..." ID or a name given by an
// earlier build), except when it names another image of the same recipe:
// then the image is built on that image's definition, whatever the order in
// the file, and a change to it rebuilds its dependents.
//
// ignore (add_local_dir, add_local_python_source, dockerfile_commands,
// from_dockerfile) is a list of patterns, {patterns: [...], invert: true}
// (Modal's ~FilePatternMatcher(...)) or {from_file: PATH} (with invert too).
//
// Relative local paths (add_local_file, add_local_dir) are taken relative to
// the recipe file's directory, not to the process's working directory as in
// Modal: a recipe then builds the same way from anywhere.
package recipe

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/snapbuild/snapbuild"
)

// Image is one named image of a recipe.
type Image struct {
	Name  string
	Image snapbuild.Image
}

// Load reads and parses the recipe file at path. defaultName names the image
// of a single-list recipe ("" means the file's base name without extension).
func Load(path, defaultName string) ([]Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	if defaultName == "" {
		defaultName = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	imgs, err := Parse(data, dir, defaultName)
	if err != nil {
		return nil, fmt.Errorf("recipe %s: %w", path, err)
	}
	return imgs, nil
}

// Parse parses recipe data; dir resolves relative local paths.
func Parse(data []byte, dir, defaultName string) ([]Image, error) {
	return parseRecipe(data, dir, defaultName, false)
}

// ParseGenerated is Parse for a recipe a front end generated (the Python
// front end's JSON): errors name the image, the step and the method, not
// lines of a text the user never wrote.
func ParseGenerated(data []byte, dir, defaultName string) ([]Image, error) {
	return parseRecipe(data, dir, defaultName, true)
}

func parseRecipe(data []byte, dir, defaultName string, generated bool) ([]Image, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("empty recipe: list the steps, starting with a base such as `- debian_slim: {}`")
	}
	root := doc.Content[0]
	switch root.Kind {
	case yaml.SequenceNode:
		img, err := (&parser{dir: dir, generated: generated}).steps(root)
		if err != nil {
			return nil, err
		}
		return []Image{{Name: defaultName, Image: img}}, nil
	case yaml.MappingNode:
		p := &parser{dir: dir, generated: generated, nodes: map[string]*yaml.Node{}, done: map[string]snapbuild.Image{}, visiting: map[string]bool{}}
		var names []string
		for i := 0; i+1 < len(root.Content); i += 2 {
			name := root.Content[i].Value
			if _, dup := p.nodes[name]; dup {
				return nil, fmt.Errorf("line %d: image %q is defined twice", root.Content[i].Line, name)
			}
			if root.Content[i+1].Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("line %d: image %q: want a list of steps", root.Content[i+1].Line, name)
			}
			p.nodes[name] = root.Content[i+1]
			names = append(names, name)
		}
		for _, name := range names {
			if _, err := p.image(name); err != nil {
				return nil, err
			}
		}
		return p.out, nil
	}
	return nil, fmt.Errorf("line %d: a recipe is a list of steps or a mapping of image names to lists of steps", root.Line)
}

// parser parses the images of one recipe. An image whose from_id names
// another image of the same recipe is parsed after it, on top of its
// definition.
type parser struct {
	dir       string
	generated bool                  // ParseGenerated: no line numbers in errors
	nodes     map[string]*yaml.Node // the recipe's images by name
	done      map[string]snapbuild.Image
	visiting  map[string]bool
	out       []Image // in build order: every image after the ones it uses
}

// image parses the named image of the recipe (once).
func (p *parser) image(name string) (snapbuild.Image, error) {
	if img, ok := p.done[name]; ok {
		return img, nil
	}
	if p.visiting[name] {
		return snapbuild.Image{}, fmt.Errorf("image %q: from_id makes a cycle through %q", name, name)
	}
	p.visiting[name] = true
	img, err := p.steps(p.nodes[name])
	if err != nil {
		return img, fmt.Errorf("image %q: %w", name, err)
	}
	p.done[name] = img
	p.out = append(p.out, Image{Name: name, Image: img})
	return img, nil
}

// local returns the definition of image name of the same recipe, if any.
func (p *parser) local(name string) (snapbuild.Image, bool, error) {
	if _, ok := p.nodes[name]; !ok {
		return snapbuild.Image{}, false, nil
	}
	img, err := p.image(name)
	return img, true, err
}

func (p *parser) steps(seq *yaml.Node) (snapbuild.Image, error) {
	dir := p.dir
	var img snapbuild.Image
	for i, step := range seq.Content {
		if step.Kind != yaml.MappingNode || len(step.Content) != 2 {
			return img, fmt.Errorf("%sstep %d: want a one-key mapping `method: arguments`, e.g. `- apt_install: [git]`", p.at(step), i+1)
		}
		method, args := step.Content[0].Value, step.Content[1]
		m, ok := methods[method]
		if !ok {
			return img, fmt.Errorf("%sunknown method %q; supported: %s", p.at(step), method, strings.Join(methodNames(), ", "))
		}
		if (i == 0) != m.root {
			if i == 0 {
				return img, fmt.Errorf("%sthe first step must make a base (debian_slim, micromamba, from_dockerfile, from_registry, from_id or from_scratch), not %s", p.at(step), method)
			}
			return img, fmt.Errorf("%s%s makes a new base and can only be the first step", p.at(step), method)
		}
		a, err := newArgs(method, args, m.positional)
		if err != nil {
			return img, fmt.Errorf("%s%w", p.at(step), err)
		}
		a.dir, a.parser = dir, p
		next, err := m.apply(img, a)
		if err == nil {
			err = a.unused()
		}
		if err == nil {
			err = next.Err()
		}
		if err != nil {
			return img, fmt.Errorf("%s%w", p.at(step), err)
		}
		img = next
	}
	if len(seq.Content) == 0 {
		return img, fmt.Errorf("line %d: no steps", seq.Line)
	}
	return img, nil
}

// at is where n is, for an error: "line N: ", or nothing in a generated
// recipe.
func (p *parser) at(n *yaml.Node) string {
	if p == nil || p.generated {
		return ""
	}
	return fmt.Sprintf("line %d: ", n.Line)
}

type method struct {
	root       bool
	positional string // the argument a list or scalar stands for
	apply      func(snapbuild.Image, *args) (snapbuild.Image, error)
}

// methods maps each recipe method to its Image call. It is filled in init:
// from_id refers back to the parser, which uses the table.
var methods map[string]method

func init() {
	methods = map[string]method{
		"debian_slim": {root: true, positional: "python_version", apply: func(_ snapbuild.Image, a *args) (snapbuild.Image, error) {
			v, err := a.str("python_version")
			if err != nil {
				return snapbuild.Image{}, err
			}
			opts, err := a.stepOptions(false)
			return snapbuild.DebianSlim(v, opts...), err
		}},
		"from_id": {root: true, positional: "image_id", apply: func(_ snapbuild.Image, a *args) (snapbuild.Image, error) {
			v, err := a.str("image_id")
			if err != nil {
				return snapbuild.Image{}, err
			}
			// Another image of this recipe: build on its definition, so that a
			// change to it rebuilds this one too.
			if img, ok, err := a.parser.local(v); ok || err != nil {
				return img, err
			}
			return snapbuild.FromID(v), nil
		}},
		"from_dockerfile": {root: true, positional: "path", apply: func(_ snapbuild.Image, a *args) (snapbuild.Image, error) {
			p, err := a.str("path")
			if err != nil {
				return snapbuild.Image{}, err
			}
			if p == "" {
				return snapbuild.Image{}, fmt.Errorf("from_dockerfile: path is required")
			}
			var o snapbuild.FromDockerfileOptions
			dir, err := a.str("context_dir")
			if err != nil {
				return snapbuild.Image{}, err
			}
			o.ContextDir = a.local(dir)
			if o.Ignore, err = a.matcher("ignore"); err != nil {
				return snapbuild.Image{}, err
			}
			if a.named["build_args"] != nil {
				ba, err := a.env("build_args")
				if err != nil {
					return snapbuild.Image{}, err
				}
				o.BuildArgs = map[string]string{}
				for _, kv := range ba {
					o.BuildArgs[kv.Name] = kv.Value
				}
			}
			if o.AddPython, err = a.str("add_python"); err != nil {
				return snapbuild.Image{}, err
			}
			if o.Target, err = a.str("target"); err != nil {
				return snapbuild.Image{}, err
			}
			opts, err := a.stepOptions(true)
			return snapbuild.FromDockerfile(a.local(p), o, opts...), err
		}},
		"from_scratch": {root: true, apply: func(_ snapbuild.Image, a *args) (snapbuild.Image, error) {
			return snapbuild.FromScratch(), nil
		}},
		"apt_install": {positional: "packages", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			p, err := a.strs("packages")
			if err != nil {
				return img, err
			}
			opts, err := a.stepOptions(true)
			return img.AptInstall(p, opts...), err
		}},
		"pip_install": {positional: "packages", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			p, err := a.strs("packages")
			if err != nil {
				return img, err
			}
			opts, err := a.stepOptions(true)
			return img.PipInstall(p, opts...), err
		}},
		"run_commands": {positional: "commands", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			c, err := a.strs("commands")
			if err != nil {
				return img, err
			}
			vols, err := a.volumes("volumes")
			if err != nil {
				return img, err
			}
			opts, err := a.stepOptions(true)
			if len(vols) > 0 {
				opts = append(opts, snapbuild.Volumes(vols))
			}
			return img.RunCommands(c, opts...), err
		}},
		"dockerfile_commands": {positional: "commands", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			cmds, err := a.strs("commands")
			if err != nil {
				return img, err
			}
			var o snapbuild.DockerfileOptions
			if a.named["context_files"] != nil {
				files, err := a.env("context_files")
				if err != nil {
					return img, err
				}
				o.ContextFiles = map[string]string{}
				for _, f := range files {
					o.ContextFiles[f.Name] = a.local(f.Value)
				}
			}
			dir, err := a.str("context_dir")
			if err != nil {
				return img, err
			}
			o.ContextDir = a.local(dir)
			if o.Ignore, err = a.matcher("ignore"); err != nil {
				return img, err
			}
			if a.named["build_args"] != nil {
				ba, err := a.env("build_args")
				if err != nil {
					return img, err
				}
				o.BuildArgs = map[string]string{}
				for _, kv := range ba {
					o.BuildArgs[kv.Name] = kv.Value
				}
			}
			opts, err := a.stepOptions(true)
			return img.DockerfileCommands(cmds, o, opts...), err
		}},
		"env": {positional: "vars", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			vars, err := a.env("vars")
			return img.EnvVars(vars...), err
		}},
		"workdir": {positional: "path", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			p, err := a.str("path")
			return img.Workdir(p), err
		}},
		"entrypoint": {positional: "entrypoint_commands", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			c, err := a.strs("entrypoint_commands")
			return img.Entrypoint(c), err
		}},
		"cmd": {positional: "cmd", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			c, err := a.strs("cmd")
			return img.Cmd(c), err
		}},
		"shell": {positional: "shell_commands", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			c, err := a.strs("shell_commands")
			return img.Shell(c), err
		}},
		"add_local_file": {apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			local, remote, copy, err := a.localArgs()
			return img.AddLocalFile(local, remote, copy), err
		}},
		"add_local_python_source": {positional: "modules", apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			mods, err := a.strs("modules")
			if err != nil {
				return img, err
			}
			copy, err := a.boolean("copy", false)
			if err != nil {
				return img, err
			}
			ignore, err := a.matcher("ignore")
			if err != nil {
				return img, err
			}
			return img.AddLocalPythonSource(mods, copy, ignore), nil
		}},
		"add_local_dir": {apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			local, remote, copy, err := a.localArgs()
			if err != nil {
				return img, err
			}
			ignore, err := a.matcher("ignore")
			return img.AddLocalDir(local, remote, copy, ignore), err
		}},
	}
	for name, m := range installMethods() {
		methods[name] = m
	}
	for name, m := range functionMethods() {
		methods[name] = m
	}
	for name, m := range registryMethods() {
		methods[name] = m
	}
}

func methodNames() []string {
	var n []string
	for k := range methods {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// args holds one step's arguments by name and tracks which were used.
type args struct {
	method string
	dir    string
	parser *parser
	named  map[string]*yaml.Node
	order  []string
	used   map[string]bool
}

func newArgs(method string, n *yaml.Node, positional string) (*args, error) {
	a := &args{method: method, named: map[string]*yaml.Node{}, used: map[string]bool{}}
	switch n.Kind {
	case yaml.MappingNode:
		if method == "env" && !hasKey(n, "vars") {
			// env: {A: x, B: y} is the common short form of env: {vars: {...}}.
			a.named["vars"] = n
			a.order = []string{"vars"}
			return a, nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if _, dup := a.named[k]; dup {
				return nil, fmt.Errorf("%s: argument %q given twice", method, k)
			}
			a.named[k] = n.Content[i+1]
			a.order = append(a.order, k)
		}
	case yaml.SequenceNode, yaml.ScalarNode:
		if n.Tag == "!!null" {
			return a, nil
		}
		if positional == "" {
			return nil, fmt.Errorf("%s: give the arguments by name, e.g. {local_path: ..., remote_path: ..., copy: true}", method)
		}
		a.named[positional] = n
		a.order = []string{positional}
	default:
		return nil, fmt.Errorf("%s: unsupported argument form", method)
	}
	return a, nil
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func (a *args) get(name string) *yaml.Node {
	a.used[name] = true
	return a.named[name]
}

func (a *args) unused() error {
	for _, k := range a.order {
		if !a.used[k] {
			var known []string
			for k := range a.used {
				known = append(known, k)
			}
			sort.Strings(known)
			return fmt.Errorf("%s: unknown argument %q (known: %s)", a.method, k, strings.Join(known, ", "))
		}
	}
	return nil
}

func (a *args) str(name string) (string, error) {
	n := a.get(name)
	if n == nil || n.Tag == "!!null" {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%s: %s must be a string", a.method, name)
	}
	if n.Tag == "!!float" {
		// Modal: "The `python_version` argument should be a string, not a float."
		return "", fmt.Errorf("%s: the `%s` argument should be a string, not a float: quote it (%q)", a.method, name, n.Value)
	}
	return n.Value, nil
}

func (a *args) boolean(name string, def bool) (bool, error) {
	n := a.get(name)
	if n == nil || n.Tag == "!!null" {
		return def, nil
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, fmt.Errorf("%s: %s must be true or false", a.method, name)
	}
	return b, nil
}

// strs accepts a list of strings or a single string (flattened one level,
// as Modal's _flatten_str_args).
func (a *args) strs(name string) ([]string, error) {
	n := a.get(name)
	if n == nil || n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s: %s must only contain strings", a.method, name)
	}
	var out []string
	for _, c := range n.Content {
		switch {
		case c.Kind == yaml.ScalarNode && c.Tag == "!!str":
			out = append(out, c.Value)
		case c.Kind == yaml.SequenceNode:
			for _, cc := range c.Content {
				if cc.Kind != yaml.ScalarNode || cc.Tag != "!!str" {
					return nil, fmt.Errorf("%s: %s must only contain strings", a.method, name)
				}
				out = append(out, cc.Value)
			}
		default:
			return nil, fmt.Errorf("%s: %s must only contain strings (quote %q)", a.method, name, c.Value)
		}
	}
	return out, nil
}

// matcher reads an ignore= argument: a pattern or a list of them
// (FilePatternMatcher(*patterns)), or a mapping {patterns: [...]} or
// {from_file: PATH} (FilePatternMatcher.from_file, PATH relative to the
// recipe), either with invert: true (Modal's ~matcher). Absent or null means
// nil (the method's default).
func (a *args) matcher(name string) (snapbuild.Matcher, error) {
	n := a.named[name]
	if n == nil || n.Tag == "!!null" {
		a.used[name] = true
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		p, err := a.strs(name)
		return snapbuild.NewFilePatternMatcher(p...), err
	}
	a.used[name] = true
	sub, err := newArgs(a.method+": "+name, n, "")
	if err != nil {
		return nil, err
	}
	patterns, err := sub.strs("patterns")
	if err != nil {
		return nil, err
	}
	file, err := sub.str("from_file")
	if err != nil {
		return nil, err
	}
	invert, err := sub.boolean("invert", false)
	if err != nil {
		return nil, err
	}
	if err := sub.unused(); err != nil {
		return nil, err
	}
	var m *snapbuild.FilePatternMatcher
	switch {
	case file != "" && patterns != nil:
		return nil, fmt.Errorf("%s: %s takes patterns or from_file, not both", a.method, name)
	case file != "":
		m = snapbuild.FilePatternMatcherFromFile(a.resolve(file))
	default:
		m = snapbuild.NewFilePatternMatcher(patterns...)
	}
	if invert {
		m = m.Invert()
	}
	return m, nil
}

func (a *args) env(name string) ([]snapbuild.EnvVar, error) {
	n := a.get(name)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: want a mapping of variable names to string values", a.method)
	}
	var vars []snapbuild.EnvVar
	var bad []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
			bad = append(bad, k)
			continue
		}
		vars = append(vars, snapbuild.EnvVar{Name: k, Value: v.Value})
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("Image ENV variables must be strings. Invalid keys: %q (quote the values)", bad)
	}
	return vars, nil
}

// stepOptions reads force_build and (if allowed) env.
func (a *args) stepOptions(withEnv bool) ([]snapbuild.StepOption, error) {
	var opts []snapbuild.StepOption
	fb, err := a.boolean("force_build", false)
	if err != nil {
		return nil, err
	}
	if fb {
		opts = append(opts, snapbuild.ForceBuild())
	}
	if withEnv {
		secrets, err := a.secrets("secrets")
		if err != nil {
			return nil, err
		}
		if len(secrets) > 0 {
			opts = append(opts, snapbuild.Secrets(secrets...))
		}
		g, err := a.strs("gpu")
		if err != nil {
			return nil, err
		}
		if len(g) > 0 {
			opts = append(opts, snapbuild.GPU(g...))
		}
	}
	if withEnv && a.named["env"] != nil {
		vars, err := a.env("env")
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		for _, v := range vars {
			m[v.Name] = v.Value
		}
		opts = append(opts, snapbuild.BuildEnv(m))
	} else if withEnv {
		a.used["env"] = true
	}
	return opts, nil
}

func (a *args) localArgs() (string, string, bool, error) {
	local, err := a.str("local_path")
	if err != nil {
		return "", "", false, err
	}
	if local == "" {
		return "", "", false, fmt.Errorf("%s: local_path is required", a.method)
	}
	remote, err := a.str("remote_path")
	if err != nil {
		return "", "", false, err
	}
	copy, err := a.boolean("copy", false)
	if err != nil {
		return "", "", false, err
	}
	return a.resolve(local), remote, copy, nil
}

// secrets reads a list of {from_dict: {K: V}}, {from_name: NAME} and
// {from_dotenv: PATH} (relative to the recipe's directory).
func (a *args) secrets(name string) ([]snapbuild.Secret, error) {
	n := a.get(name)
	if n == nil || n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s: %s must be a list such as [{from_name: my-secret}]", a.method, name)
	}
	var out []snapbuild.Secret
	for _, s := range n.Content {
		if s.Kind != yaml.MappingNode || len(s.Content) != 2 {
			return nil, fmt.Errorf("%s: %sa secret is {from_dict: {KEY: VALUE}}, {from_name: NAME} or {from_dotenv: PATH}", a.method, a.parser.at(s))
		}
		kind, v := s.Content[0].Value, s.Content[1]
		switch kind {
		case "from_dict":
			sub := &args{method: a.method, named: map[string]*yaml.Node{"vars": v}, used: map[string]bool{}}
			vars, err := sub.env("vars")
			if err != nil {
				return nil, err
			}
			m := map[string]string{}
			for _, kv := range vars {
				m[kv.Name] = kv.Value
			}
			out = append(out, snapbuild.SecretFromDict(m))
		case "from_name", "from_dotenv":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return nil, fmt.Errorf("%s: %s%s takes a string", a.method, a.parser.at(s), kind)
			}
			if kind == "from_name" {
				out = append(out, snapbuild.SecretFromName(v.Value))
				continue
			}
			out = append(out, snapbuild.SecretFromDotenv(a.resolve(v.Value)))
		default:
			return nil, fmt.Errorf("%s: %sunknown secret kind %q: use from_dict, from_name or from_dotenv", a.method, a.parser.at(s), kind)
		}
	}
	return out, nil
}

// local resolves a local path of the recipe against its directory ("" means
// the directory itself).
func (a *args) local(p string) string {
	if p == "" {
		return a.dir
	}
	return a.resolve(p)
}
