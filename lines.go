package snapbuild

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/snapbuild/snapbuild/internal/modal"
)

// Line breaks in values that Image methods write into Dockerfile lines.
//
// Every Image method lowers to Dockerfile text, one instruction per line,
// and BuildKit's parser ends an instruction at a line feed ("\n") whatever
// the quoting: `ENV A='x<LF>y'` is the instruction `ENV A='x` followed by a
// bogus instruction `y'`. Modal sends such text as is and its build fails
// there, or runs the bogus instruction. snapbuild decides per method, when
// the method is called (see docs/method-arguments.md):
//
//   - exec-form lists (Entrypoint, Cmd, Shell) are written as JSON, which
//     escapes the line feed, so the value keeps it;
//   - run_commands, dockerfile_commands and from_dockerfile take Dockerfile
//     text, where a line break ends the instruction as in any Dockerfile
//     (run_commands refuses one that is not a line continuation);
//   - every other value is refused with an *InvalidError naming the method,
//     the argument and the value: the Dockerfile syntax has no quoting
//     that holds a line break in an ENV value, a WORKDIR path, a package
//     name or a pip flag.
//
// A carriage return alone ("\r") does not end a line for BuildKit's
// parser and is kept.

// namedValues is one argument of a method call, by Modal's keyword name, and
// its values: one for a string argument, several for a list.
type namedValues struct {
	name   string
	values []string
	list   bool // name the value by its index: packages[2]
}

// lineArg is a string argument written into a Dockerfile line.
func lineArg(name, value string) namedValues {
	return namedValues{name: name, values: []string{value}}
}

// lineArgs is a list argument whose items are written into a Dockerfile line.
func lineArgs(name string, values []string) namedValues {
	return namedValues{name: name, values: values, list: true}
}

// oneLine returns an *InvalidError for the first value of args that holds a
// line feed, or nil. The error names method, the argument (with the item's
// index for a list) and the value.
func oneLine(method string, args ...namedValues) error {
	for _, a := range args {
		for i, v := range a.values {
			if !strings.Contains(v, "\n") {
				continue
			}
			name := a.name
			if a.list {
				name = fmt.Sprintf("%s[%d]", a.name, i)
			}
			return modal.Invalidf(method, "%s %q holds a line break: the value is written into one Dockerfile instruction, which ends at a line break, and the Dockerfile syntax cannot quote one there. Remove the line break", name, v)
		}
	}
	return nil
}

// endsInContinuation reports whether the Dockerfile line s ends with a line
// continuation (a backslash, then only blanks), which joins the next line
// to it.
func endsInContinuation(s string) bool {
	return strings.HasSuffix(strings.TrimRight(s, " \t\r\n"), "\\")
}

// pyStr quotes s as a Python string literal in double quotes, as the
// progress shows arguments.
func pyStr(s string) string { return strconv.Quote(s) }

// pyList formats ss as a Python list of strings: ["a", "b"].
func pyList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = pyStr(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// pyDict formats vars as a Python dict of strings in the given order.
func pyDict(vars []EnvVar) string {
	q := make([]string, len(vars))
	for i, v := range vars {
		q[i] = pyStr(v.Name) + ": " + pyStr(v.Value)
	}
	return "{" + strings.Join(q, ", ") + "}"
}
