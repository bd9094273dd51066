// Package kubernetes holds an example Kubernetes Job that runs snapbuild in
// an unprivileged pod; its test checks the manifest's shape.
package kubernetes

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// job is the part of a batch/v1 Job the example relies on.
type job struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Spec       struct {
		Template struct {
			Spec struct {
				RestartPolicy   string `yaml:"restartPolicy"`
				HostUsers       *bool  `yaml:"hostUsers"`
				SecurityContext struct {
					RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
					RunAsUser      *int64 `yaml:"runAsUser"`
					SeccompProfile struct {
						Type             string `yaml:"type"`
						LocalhostProfile string `yaml:"localhostProfile"`
					} `yaml:"seccompProfile"`
				} `yaml:"securityContext"`
				Containers []struct {
					Name            string   `yaml:"name"`
					Command         []string `yaml:"command"`
					Args            []string `yaml:"args"`
					Env             []struct{ Name, Value string }
					SecurityContext struct {
						Privileged               *bool `yaml:"privileged"`
						AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
						Capabilities             struct {
							Add  []string `yaml:"add"`
							Drop []string `yaml:"drop"`
						} `yaml:"capabilities"`
						ProcMount string `yaml:"procMount"`
					} `yaml:"securityContext"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name     string         `yaml:"name"`
					EmptyDir map[string]any `yaml:"emptyDir"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// TestJobManifest: snapbuild-job.yaml is a batch/v1 Job whose pod is the
// unprivileged shape README "CI runners" describes: non-root user 1000, no
// capabilities, no privilege escalation, no hostUsers or procMount, a
// seccomp profile that is not Unconfined, the store on an emptyDir, and the
// registry cache flags.
func TestJobManifest(t *testing.T) {
	b, err := os.ReadFile("snapbuild-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var j job
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&j); err != nil {
		t.Fatalf("snapbuild-job.yaml: %v", err)
	}
	if j.APIVersion != "batch/v1" || j.Kind != "Job" {
		t.Errorf("apiVersion, kind = %q, %q, want batch/v1, Job", j.APIVersion, j.Kind)
	}
	p := j.Spec.Template.Spec
	if p.RestartPolicy != "Never" && p.RestartPolicy != "OnFailure" {
		t.Errorf("restartPolicy %q: a Job's pod needs Never or OnFailure", p.RestartPolicy)
	}
	if p.HostUsers != nil {
		t.Errorf("hostUsers is set (%v): the example needs no user namespace from the runtime", *p.HostUsers)
	}
	sc := p.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 1000 {
		t.Errorf("pod securityContext: runAsNonRoot %v, runAsUser %v, want true and 1000", sc.RunAsNonRoot, sc.RunAsUser)
	}
	if sp := sc.SeccompProfile; sp.Type != "Localhost" || sp.LocalhostProfile == "" {
		t.Errorf("seccompProfile %+v: want Localhost with a profile (the pod security standard restricted allows RuntimeDefault or Localhost)", sp)
	}
	if len(p.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(p.Containers))
	}
	c := p.Containers[0]
	csc := c.SecurityContext
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if csc.Privileged != nil && *csc.Privileged {
		t.Error("the container is privileged")
	}
	if !slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) || len(csc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v, want drop ALL and add none", csc.Capabilities)
	}
	if csc.ProcMount != "" {
		t.Errorf("procMount %q: the example needs none", csc.ProcMount)
	}
	cmd := strings.Join(append(slices.Clone(c.Command), c.Args...), " ")
	for _, want := range []string{"snapbuild build", "--root=/store", "--cache-from=docker://", "--cache-to=docker://", "snapbuild push"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command %q lacks %q", cmd, want)
		}
	}
	storeVolume := ""
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/store" {
			storeVolume = m.Name
		}
	}
	found := false
	for _, v := range p.Volumes {
		if v.Name == storeVolume && v.EmptyDir != nil {
			found = true
		}
	}
	if !found {
		t.Errorf("/store is not an emptyDir volume (mounted from %q)", storeVolume)
	}
}
