package snapbuild

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// NonPythonFiles is add_local_python_source's default ignore: every file
// that is not a .py file (Modal's NON_PYTHON_FILES, ~FilePatternMatcher("**/*.py")).
var NonPythonFiles Matcher = NewFilePatternMatcher("**/*.py").Invert()

// findSpecScript prints, for each module name in argv, where the local
// Python finds it (Modal resolves modules with importlib.util.find_spec in
// the local environment).
const findSpecScript = `import importlib.util, json, sys
out = []
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except Exception as e:
        out.append({"name": name, "error": str(e)})
        continue
    if spec is None:
        out.append({"name": name, "error": "has no spec - might not be installed?"})
        continue
    out.append({"name": name, "origin": spec.origin, "locations": list(spec.submodule_search_locations or [])})
print(json.dumps(out))
`

// AddLocalPythonSource is modal.Image.add_local_python_source: each module
// or package, found by the local python3 (importlib.util.find_spec, with the
// process's working directory and PYTHONPATH on sys.path), is added under
// /root (a package's directories at /root/<dotted/name>, a single-file
// module at /root/<parents>/<file>.py). ignore=nil means NonPythonFiles (only
// .py files); as in Modal, an explicit ignore replaces it and no other rule
// (such as skipping dot-directories) applies. copy works as for
// AddLocalDir. The modules are resolved when the method is called.
func (img Image) AddLocalPythonSource(modules []string, copy bool, ignore Matcher) Image {
	const method = "add_local_python_source"
	if len(modules) == 0 {
		return img
	}
	if ignore == nil {
		ignore = NonPythonFiles
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		return img.fail(modal.Invalidf(method, "finding Python modules needs python3 on PATH (Modal resolves them in the local Python environment)"))
	}
	cmd := exec.Command(py, append([]string{"-c", findSpecScript}, modules...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return img.fail(modal.Invalidf(method, "python3 could not look up %q: %v: %s", modules, err, strings.TrimSpace(errb.String())))
	}
	var specs []struct {
		Name, Origin, Error string
		Locations           []string
	}
	if err := json.Unmarshal(out.Bytes(), &specs); err != nil {
		return img.fail(modal.Invalidf(method, "python3 answered %q: %v", out.String(), err))
	}
	var inputs []modal.ContextInput
	for _, s := range specs {
		remote := "/root/" + strings.ReplaceAll(s.Name, ".", "/")
		switch {
		case s.Error != "":
			return img.fail(modal.Invalidf(method, "Module %s %s", s.Name, s.Error))
		case len(s.Locations) > 0: // a package
			for _, loc := range s.Locations {
				if fi, err := os.Stat(loc); err == nil && fi.IsDir() {
					inputs = append(inputs, modal.ContextInput{Local: loc, Remote: remote, Dir: true, Ignore: ignore})
				}
			}
		case s.Origin != "" && strings.HasSuffix(s.Origin, ".py"):
			inputs = append(inputs, modal.ContextInput{Local: s.Origin, Remote: path.Dir(remote) + "/" + filepath.Base(s.Origin)})
		case s.Origin != "":
			return img.fail(modal.Invalidf(method, "Module %s can't be mounted because it contains binary file(s): %s", s.Name, s.Origin))
		}
		if len(inputs) == 0 {
			return img.fail(modal.Invalidf(method, "Module %s has no mountable paths", s.Name))
		}
	}
	if !copy {
		return img.with(&modal.Layer{Method: method, Mount: true, Context: inputs}, nil)
	}
	return img.with(&modal.Layer{Method: method, Commands: []string{"FROM base", "COPY . /"}, Context: inputs}, nil)
}
