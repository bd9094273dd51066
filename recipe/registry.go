package recipe

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/snapbuild/snapbuild"
)

// registryMethods holds from_registry, from_aws_ecr and
// from_gcp_artifact_registry:
//
//	from_registry: {tag: REF, secret: {from_name: NAME}, setup_dockerfile_commands: [...], force_build}
//
// or from_registry: REF. REF is a registry reference or an air-gapped
// source (oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF]).
func registryMethods() map[string]method {
	return map[string]method{
		"from_registry":              registryMethod(snapbuild.FromRegistry),
		"from_aws_ecr":               registryMethod(snapbuild.FromAWSECR),
		"from_gcp_artifact_registry": registryMethod(snapbuild.FromGCPArtifactRegistry),
	}
}

// registryMethod reads the arguments the from_* registry constructors share.
func registryMethod(from func(string, snapbuild.RegistryOptions, ...snapbuild.StepOption) snapbuild.Image) method {
	return method{root: true, positional: "tag", apply: func(_ snapbuild.Image, a *args) (snapbuild.Image, error) {
		tag, err := a.str("tag")
		if err != nil {
			return snapbuild.Image{}, err
		}
		if tag == "" {
			return snapbuild.Image{}, fmt.Errorf("%s: tag is required (an image reference such as ubuntu:22.04)", a.method)
		}
		var o snapbuild.RegistryOptions
		if o.Secret, err = a.secret("secret"); err != nil {
			return snapbuild.Image{}, err
		}
		if o.SetupDockerfileCommands, err = a.strs("setup_dockerfile_commands"); err != nil {
			return snapbuild.Image{}, err
		}
		if o.AddPython, err = a.str("add_python"); err != nil {
			return snapbuild.Image{}, err
		}
		opts, err := a.stepOptions(false)
		return from(tag, o, opts...), err
	}}
}

// secret reads one secret ({from_name: NAME}, {from_dict: {...}} or
// {from_dotenv: PATH}); absent or null is nil.
func (a *args) secret(name string) (*snapbuild.Secret, error) {
	n := a.named[name]
	if n == nil || n.Tag == "!!null" {
		a.used[name] = true
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		a.used[name] = true
		return nil, fmt.Errorf("%s: %s is one secret, such as {from_name: my-registry}", a.method, name)
	}
	a.named[name] = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{n}}
	s, err := a.secrets(name)
	if err != nil || len(s) == 0 {
		return nil, err
	}
	return &s[0], nil
}
