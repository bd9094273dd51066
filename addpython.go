package snapbuild

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/snapbuild/snapbuild/internal/modal"
)

var addPythonRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^3\.\d{1,2}t?$`) })

// addPythonCommands validates add_python and returns Modal's commands for
// it: the tree copied to /usr/local, a python symlink before 3.13,
// TERMINFO_DIRS.
func addPythonCommands(method, series string) ([]string, error) {
	if regexp.MustCompile(`^3\.\d{1,2}\.\d+`).MatchString(series) {
		return nil, modal.Invalidf(method, "Python version must be specified as 'major.minor' for this interface; micro-level specification (%s) is not valid.", modal.PyRepr(series))
	}
	if _, ok := modal.StandaloneBuilds[series]; !ok || !addPythonRE().MatchString(series) {
		return nil, modal.Invalidf(method, "add_python=%s: python-build-standalone builds exist for 3.10, 3.11, 3.12, 3.13, 3.14 and 3.14t", modal.PyRepr(series))
	}
	cmds := []string{"COPY /python/. /usr/local"}
	var minor int
	fmt.Sscanf(strings.TrimSuffix(series, "t"), "3.%d", &minor)
	if minor < 13 {
		cmds = append(cmds, "RUN ln -s /usr/local/bin/python3 /usr/local/bin/python")
	}
	return append(cmds, "ENV TERMINFO_DIRS=/etc/terminfo:/lib/terminfo:/usr/share/terminfo:/usr/lib/terminfo"), nil
}
