package gpu

import (
	"slices"
	"strings"

	"github.com/snapbuild/snapbuild/sandbox"
)

// Apply adds the plan to a sandbox spec: the device nodes (bound, not
// created), the mounts (read-only), the hooks, and the environment, whose
// entries replace entries of s.Env with the same name (as CDI's edits do:
// the injection wins over the image's and the step's values). Nothing else
// of s changes. The runtime's and the hooks' traces in the rootfs are kept
// out of the layer only when s.UpperDir is set (see sandbox.Result.Stubs);
// set it whenever inj has hooks.
func (inj *Injection) Apply(s *sandbox.Spec) {
	for _, d := range inj.Devices {
		s.Devices = append(s.Devices, sandbox.Device{Path: d.Path, HostPath: d.HostPath, Major: int64(d.Major), Minor: int64(d.Minor)})
	}
	for _, m := range inj.Mounts {
		s.Mounts = append(s.Mounts, sandbox.BindMount{Source: m.HostPath, Destination: m.ContainerPath, ReadOnly: true})
	}
	for _, h := range inj.Hooks {
		s.Hooks = append(s.Hooks, sandbox.Hook{Stage: h.Stage, Path: h.Path, Args: h.Args, Env: h.Env, Timeout: h.Timeout})
	}
	for _, kv := range inj.Env {
		s.Env = setEnv(s.Env, kv)
	}
}

// setEnv replaces the entry named as kv ("K=V") in env, or appends kv.
func setEnv(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	for i, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			out := append([]string(nil), env...)
			out[i] = kv
			return out
		}
	}
	return append(slices.Clip(env), kv)
}
