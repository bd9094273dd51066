package modal

import (
	"fmt"
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Instruction is one parsed Dockerfile instruction of a layer's commands.
type Instruction struct {
	Text string // the original text, e.g. "RUN apt-get update"
	Cmd  any    // *instructions.RunCommand, *instructions.Stage, ...
	Line int    // line in the layer's commands, from 1 ("FROM base" is 1)
}

// IsFrom reports whether in is a FROM.
func (in Instruction) IsFrom() bool { _, ok := in.Cmd.(*instructions.Stage); return ok }

// FromRef is a FROM's image reference as written; "" for another instruction.
func (in Instruction) FromRef() string {
	if s, ok := in.Cmd.(*instructions.Stage); ok {
		return s.BaseName
	}
	return ""
}

// ParseCommands parses a layer's Dockerfile lines with BuildKit's parser.
func ParseCommands(lines []string) ([]Instruction, error) {
	res, err := parser.Parse(strings.NewReader(strings.Join(lines, "\n") + "\n"))
	if err != nil {
		return nil, fmt.Errorf("parsing commands: %w", err)
	}
	var out []Instruction
	for _, node := range res.AST.Children {
		cmd, err := instructions.ParseInstruction(node)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", node.Original, err)
		}
		out = append(out, Instruction{Text: node.Original, Cmd: cmd, Line: node.StartLine})
	}
	return out, nil
}

// CopyPatterns extracts the build-context patterns that COPY and ADD
// sources name (Modal's extract_copy_command_patterns): "." is everything;
// --from sources need no context.
func CopyPatterns(commands []string) ([]string, error) {
	ins, err := ParseCommands(append([]string{"FROM base"}, commands...))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, in := range ins {
		var srcs []string
		switch c := in.Cmd.(type) {
		case *instructions.CopyCommand:
			if c.From != "" {
				continue
			}
			srcs = c.SourcePaths
		case *instructions.AddCommand:
			srcs = c.SourcePaths
		default:
			continue
		}
		for _, s := range srcs {
			if strings.HasPrefix(s, "--") || strings.Contains(s, "$") {
				return nil, fmt.Errorf("COPY command: %s using special flags/arguments/variables are not supported", s)
			}
			if isURL(s) {
				continue
			}
			p := strings.Trim(path.Clean("/"+s), "/")
			if p == "" {
				p = "**"
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// DockerfileContextPatterns is CopyPatterns for a whole Dockerfile, built as
// docker build builds it: where the patterns of COPY and ADD sources cannot
// name every file the build reads from its context, the whole context (less
// the ignore file's patterns) is the context, as docker build sends it. That
// is when a source names a variable (COPY ${SRC}/ /app/, which Modal
// refuses; the converter expands it) or a RUN bind-mounts the context (RUN
// --mount=type=bind without from, reading files no COPY names).
func DockerfileContextPatterns(lines []string) ([]string, error) {
	ins, err := ParseCommands(append([]string{"FROM base"}, lines...))
	if err != nil {
		return nil, err
	}
	for _, in := range ins {
		var srcs []string
		switch c := in.Cmd.(type) {
		case *instructions.RunCommand:
			// Mount options are read when expanded; words are kept as
			// written. One that cannot be read (type=$T) may be a bind.
			if err := c.Expand(func(w string) (string, error) { return w, nil }); err != nil {
				return []string{"**"}, nil
			}
			for _, m := range instructions.GetMounts(c) {
				if m.Type == instructions.MountTypeBind && m.From == "" {
					return []string{"**"}, nil
				}
			}
		case *instructions.CopyCommand:
			if c.From == "" {
				srcs = c.SourcePaths
			}
		case *instructions.AddCommand:
			srcs = c.SourcePaths
		}
		for _, s := range srcs {
			if strings.Contains(s, "$") {
				return []string{"**"}, nil
			}
		}
	}
	return CopyPatterns(lines)
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "git@")
}
