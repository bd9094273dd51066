package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/frontend"
	"github.com/snapbuild/snapbuild/internal/dockerfile"
	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/worker"
)

// The local sources of a run_function layer's exec op.
const (
	functionRuntimeLocal = "function-runtime" // snapbuild's runtime and the request
	functionSourceLocal  = "function-source"  // the function's module (modal.Function.Source)
)

// functionKeyFile is the file of the runtime directory that holds what
// identifies the call (keyInputs), so that the runtime source's content
// key, and with it the exec op's, follows the function's definition and
// globals as Modal's layer identity does.
const functionKeyFile = "call-key.json"

// localSource is a directory the worker serves as local://name.
type localSource struct {
	name, dir string
	opts      []worker.LocalOption
}

// functionLLB returns the graph of run_function layer l on st (whose
// manifest is written) and the image it makes: one exec op on the parent
// image that runs snapbuild's runner with the image's Python ("python",
// else "python3"), the image's environment (PYTHONUNBUFFERED=1 set), working
// directory and user. Mounted read-only: the runtime and the request,
// written into dir, at functionRuntimeDir; the function's source, when it
// has one, at /root/<its name>. The layer's env=, secrets=, gpu= and the
// call's volumes are added as for any layer (solveLayer's Rewrite); the
// timeout is the worker's (WithTimeout). The source map gives the exec op
// line 2 of text, the layer's "RUN_FUNCTION" line. locals are the local
// sources the worker must serve.
func (x *llbLayer) functionLLB(ctx context.Context, st *buildState, text, dir string) (*pb.Definition, dockerspec.DockerOCIImage, []localSource, error) {
	f := x.l.Function
	img, _ := st.imageConfig()
	img.Config.OnBuild = nil // the parent's, kept by apply
	inputs, err := f.KeyInputs()
	if err != nil {
		return nil, img, nil, err
	}
	if err := f.WriteRuntime(dir); err != nil {
		return nil, img, nil, err
	}
	key := []byte(inputs)
	if err := os.WriteFile(filepath.Join(dir, functionKeyFile), key, 0o644); err != nil {
		return nil, img, nil, err
	}
	locals := []localSource{{name: functionRuntimeLocal, dir: dir}}

	plat := dockerfile.HostPlatform() // as the converter's ops carry it
	sm := llb.NewSourceMap(nil, x.l.Method, "", []byte(text))
	cfg := st.config
	env := setEnv(slices.Clone(cfg.Env), "PYTHONUNBUFFERED", "1")
	opts := []llb.RunOption{
		llb.Args(append([]string{"/bin/sh", "-c", `if command -v python >/dev/null 2>&1; then exec python "$@"; fi; exec python3 "$@"`},
			frontend.RunnerCommand("python")...)),
		llb.Dir(orDefault(cfg.WorkingDir, "/")),
		llb.AddMount(modal.FunctionRuntimeDir, llb.Local(functionRuntimeLocal), llb.Readonly),
		llb.WithCustomName(f.Title()),
		sm.Location([]*pb.Range{{Start: &pb.Position{Line: 2}, End: &pb.Position{Line: 2}}}),
	}
	if cfg.User != "" {
		opts = append(opts, llb.User(cfg.User))
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		opts = append(opts, llb.AddEnv(k, v))
	}
	if f.Fn.Source != "" && len(f.Fn.Pickled) == 0 {
		src, err := functionSource(f.Fn.Source)
		if err != nil {
			return nil, img, nil, err
		}
		// The source's identity is the call's key (keyInputs: the
		// definition, else the source's content), not every byte of
		// the directory.
		ls := localSource{name: functionSourceLocal, dir: src.dir, opts: []worker.LocalOption{worker.WithContentKey(digest.FromBytes(key))}}
		var lopts []llb.LocalOption
		var mopts []llb.MountOption
		if src.file != "" {
			lopts = append(lopts, llb.IncludePatterns([]string{src.file}))
			mopts = append(mopts, llb.SourcePath(src.file))
		}
		locals = append(locals, ls)
		opts = append(opts, llb.AddMount("/root/"+src.name, llb.Local(functionSourceLocal, lopts...), append(mopts, llb.Readonly)...))
	}
	parent := llb.Image(parentRef+"@"+string(st.manifest), llb.Platform(plat))
	run := parent.Run(opts...)
	def, err := run.Root().Marshal(ctx, llb.Platform(plat))
	if err != nil {
		return nil, img, nil, err
	}
	pdef := def.ToPB()
	// The layer's history entry; apply writes its Modal text.
	img.History = append(img.History, ocispec.History{CreatedBy: f.Title()})
	return pdef, img, locals, nil
}

// functionSourceDir is where a run_function's source is on the host: the
// directory to serve, and the file in it when the source is one file.
type functionSourceDir struct {
	dir  string // the directory served
	file string // the source file's name in dir; "" for a directory source
	name string // the name under /root
}

// functionSource locates a Function.Source ("~" expanded, relative to the
// working directory): a file or a directory.
func functionSource(source string) (functionSourceDir, error) {
	src, err := modal.AbsLocal(source)
	if err != nil {
		return functionSourceDir{}, err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return functionSourceDir{}, fmt.Errorf("function source %s: %w", src, err)
	}
	switch {
	case fi.IsDir():
		return functionSourceDir{dir: src, name: filepath.Base(src)}, nil
	case fi.Mode().IsRegular():
		return functionSourceDir{dir: filepath.Dir(src), file: filepath.Base(src), name: filepath.Base(src)}, nil
	}
	return functionSourceDir{}, fmt.Errorf("function source %s is neither a file nor a directory", src)
}
