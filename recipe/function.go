package recipe

import (
	"encoding/base64"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/snapbuild/snapbuild"
)

// functionMethods holds run_function:
//
//	run_function: {function: NAME, module: MODULE, source: PATH, args: [...], kwargs: {...},
//	               volumes: {/remote: PATH or {from_name: NAME, create_if_missing: BOOL}},
//	               timeout: SECONDS, secrets, env, gpu, force_build}
//
// source is the .py file or top-level package directory that defines
// module, mounted at /root/<base name> (omit it when the module is in the
// image: Modal's include_source=False); module defaults to the source
// file's name without ".py". args and kwargs are JSON values. The Python
// front end also writes definition (the cache-key text), and base64 fields
// globals, input (pickled (args, kwargs)) and pickled (a cloudpickled
// callable, instead of module/function/source).
func functionMethods() map[string]method {
	return map[string]method{
		"run_function": {apply: func(img snapbuild.Image, a *args) (snapbuild.Image, error) {
			var fn snapbuild.Function
			var call snapbuild.FunctionCall
			var err error
			if fn.Name, err = a.str("function"); err != nil {
				return img, err
			}
			if fn.Module, err = a.str("module"); err != nil {
				return img, err
			}
			src, err := a.str("source")
			if err != nil {
				return img, err
			}
			if src != "" {
				fn.Source = a.resolve(src)
				if fn.Module == "" && strings.HasSuffix(src, ".py") {
					fn.Module = strings.TrimSuffix(filepath.Base(src), ".py")
				}
			}
			if fn.Definition, err = a.str("definition"); err != nil {
				return img, err
			}
			for name, dst := range map[string]*[]byte{"globals": &fn.Globals, "pickled": &fn.Pickled, "input": &call.Input} {
				if *dst, err = a.base64(name); err != nil {
					return img, err
				}
			}
			if len(fn.Pickled) == 0 && fn.Name == "" {
				return img, fmt.Errorf("%s: function is required (the callable's name in its module), or pickled", a.method)
			}
			if n := a.get("args"); n != nil && n.Tag != "!!null" {
				if n.Kind != yaml.SequenceNode {
					return img, fmt.Errorf("%s: args must be a list", a.method)
				}
				if err := n.Decode(&call.Args); err != nil {
					return img, fmt.Errorf("%s: args: %w", a.method, err)
				}
			}
			if n := a.get("kwargs"); n != nil && n.Tag != "!!null" {
				if n.Kind != yaml.MappingNode {
					return img, fmt.Errorf("%s: kwargs must be a mapping", a.method)
				}
				if err := n.Decode(&call.Kwargs); err != nil {
					return img, fmt.Errorf("%s: kwargs: %w", a.method, err)
				}
			}
			if call.Volumes, err = a.volumes("volumes"); err != nil {
				return img, err
			}
			if n := a.get("timeout"); n != nil {
				var secs float64
				if n.Tag == "!!null" || n.Decode(&secs) != nil || secs <= 0 || math.IsInf(secs, 0) {
					return img, fmt.Errorf("%s: timeout must be a positive number of seconds (Modal does not take timeout=None)", a.method)
				}
				call.Timeout = time.Duration(secs * float64(time.Second))
			}
			opts, err := a.stepOptions(true)
			return img.RunFunction(fn, call, opts...), err
		}},
	}
}

// base64 reads a standard-base64 string argument.
func (a *args) base64(name string) ([]byte, error) {
	s, err := a.str(name)
	if err != nil || s == "" {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %s is not base64: %w", a.method, name, err)
	}
	return b, nil
}

// volumes reads {"/remote": PATH or {from_name: NAME, create_if_missing: BOOL}}.
func (a *args) volumes(name string) (map[string]snapbuild.Volume, error) {
	n := a.get(name)
	if n == nil || n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: %s must map container paths to volumes", a.method, name)
	}
	out := map[string]snapbuild.Volume{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		p, v := n.Content[i].Value, n.Content[i+1]
		switch v.Kind {
		case yaml.ScalarNode:
			out[p] = snapbuild.HostVolume(a.resolve(v.Value))
		case yaml.MappingNode:
			sub, err := newArgs(a.method+": "+name+": "+p, v, "")
			if err != nil {
				return nil, err
			}
			vn, err := sub.str("from_name")
			if err != nil {
				return nil, err
			}
			create, err := sub.boolean("create_if_missing", false)
			if err != nil {
				return nil, err
			}
			if err := sub.unused(); err != nil {
				return nil, err
			}
			if vn == "" {
				return nil, fmt.Errorf("%s: volume at %s: from_name is required", a.method, p)
			}
			out[p] = snapbuild.VolumeFromName(vn, create)
		default:
			return nil, fmt.Errorf("%s: volume at %s: a host path or {from_name: NAME}", a.method, p)
		}
	}
	return out, nil
}
