package modal

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"strings"
)

// Layer is one Modal image Layer (one modal.Image object): its Dockerfile
// commands and what they need.
type Layer struct {
	Method     string
	Commands   []string       // Dockerfile lines; "FROM base" first unless root
	Root       *RootSpec      // how a root layer's FROM is resolved; nil otherwise
	Context    []ContextInput // COPY sources, resolved at build time
	ForceBuild bool
	BuildEnv   map[string]string // per-step env= (build time only, not persisted)
	GPU        string            // per-step gpu= in Modal's gpu_config form ("A100:2"); "" for none
	OptErr     error             // a bad step option, reported by with
	Volumes    map[string]Volume // run_commands volumes=, mounted for the RUN steps
	Secrets    []Secret
	Mount      bool              // add_local_* copy=False: no commands, attached at run time
	BuildArgs  map[string]string // dockerfile_commands build_args
	Target     string            // from_dockerfile's stage to build ("" for the last)
	Dockerfile string            // from_dockerfile's path as given, for errors
	// MountSecrets are from_dockerfile's values of secret mounts by ID.
	MountSecrets map[string][]byte
	Function     *FunctionStep // run_function: the call, after "FROM base"
	AddPython    string        // add_python series: its COPY takes python-build-standalone
	// Call is the method Call as the user wrote it, for progress
	// (`apt_install(["git"])`); "" when only the method is known (callOf).
	Call string
}

// RootSpec says where a root layer's base comes from.
type RootSpec struct {
	Debian   *DebianBase   // DebianSlim
	FromID   string        // FromID, or a stored tool image (micromamba)
	Pull     bool          // fromID names a tool image that may be pulled when missing
	Scratch  bool          // FromScratch
	Registry *RegistryBase // FromRegistry
	// Dockerfile: FromDockerfile's inner layer; its own FROM lines (several
	// stages) are resolved by fromStage.
	Dockerfile bool
}

// PyRepr quotes s as Python's repr does for plain strings, so that messages
// read as Modal's.
func PyRepr(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
}

// DebianBase is DebianSlim's base: a Debian suite with SlimPackages.
type DebianBase struct {
	Suite  string
	Python string // series, e.g. "3.11"
	// Version is the python_version asked for: the series, or a micro pin
	// ("3.12.3") that only Modal's own image can honour (see slimSource).
	Version string
}

// ContextInput is a local file or directory that a layer copies in.
type ContextInput struct {
	Local  string  // local path as given
	Remote string  // absolute path in the image
	Dir    bool    // AddLocalDir: copy the directory's contents
	Ignore Matcher // files to leave out (paths relative to local); nil leaves none out
	// Include, when set, selects the files to take (COPY source patterns,
	// matched with their parent directories); nil takes all.
	Include []string
}

func SHA256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// PerInstruction reports whether each instruction of l is an entry.
func (l *Layer) PerInstruction() bool {
	return l.Method == "dockerfile_commands" || l.Method == "from_dockerfile"
}

// UserDockerfileText reports whether l's commands are Dockerfile text the
// user wrote, where a line break is the user's own (dockerfile_commands,
// from_dockerfile, run_commands).
func (l *Layer) UserDockerfileText() bool {
	return l.PerInstruction() || l.Method == "run_commands"
}

// CheckLines refuses a layer lowered from user values whose commands hold a
// line feed: the safety net behind the methods' own checks (oneLine), so a
// value that a method forgets to check is still never split into a bogus
// instruction.
func (l *Layer) CheckLines() error {
	if l.UserDockerfileText() {
		return nil
	}
	for _, c := range l.Commands {
		if strings.Contains(c, "\n") {
			return Invalidf(l.Method, "an argument holds a line break, which would split the Dockerfile line %q into two instructions. Remove the line break", c)
		}
	}
	return nil
}

// AllVolumes returns the volumes l's exec ops mount: run_commands'
// volumes= and run_function's FunctionCall.Volumes, by mount path.
func (l *Layer) AllVolumes() map[string]Volume {
	if l.Function == nil || len(l.Function.Call.Volumes) == 0 {
		return l.Volumes
	}
	all := maps.Clone(l.Volumes)
	if all == nil {
		all = map[string]Volume{}
	}
	maps.Copy(all, l.Function.Call.Volumes)
	return all
}

// BuilderVersion is the Modal image builder version whose commands snapbuild
// emits. Only 2025.06 (and PREVIEW, its equal) are implemented.
const BuilderVersion = "2025.06"
