package recipe

import (
	"reflect"
	"strings"
	"testing"
)

func TestFromRegistryRecipe(t *testing.T) {
	for src, want := range map[string][][]string{
		"- from_registry: ubuntu:22.04\n": {{"FROM ubuntu:22.04"}},
		"- from_registry: {tag: 'oci:/srv/base:v1', secret: {from_name: reg}, setup_dockerfile_commands: ['RUN apt-get update', 'ENV A=1']}\n": {
			{"FROM oci:/srv/base:v1", "RUN apt-get update", "ENV A=1"}},
		"- from_registry: {tag: ubuntu:22.04, force_build: true}\n- run_commands: ['true']\n": {{"FROM ubuntu:22.04"}, {"FROM base", "RUN true"}},
		"- from_aws_ecr: {tag: 1.dkr.ecr.x.amazonaws.com/a:1, secret: {from_name: aws}, add_python: '3.12'}\n": {{"FROM 1.dkr.ecr.x.amazonaws.com/a:1",
			"COPY /python/. /usr/local", "RUN ln -s /usr/local/bin/python3 /usr/local/bin/python",
			"ENV TERMINFO_DIRS=/etc/terminfo:/lib/terminfo:/usr/share/terminfo:/usr/lib/terminfo"}},
	} {
		img := parseOne(t, src)
		if got := img.Commands(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: commands %q, want %q", src, got, want)
		}
	}
	for src, want := range map[string]string{
		"- from_registry: {}\n":                                     "from_registry: tag is required",
		"- from_registry: {tag: ubuntu, secret: reg}\n":             "from_registry: secret is one secret, such as {from_name: my-registry}",
		"- from_registry: {tag: ubuntu, add_python: '3.12.1'}\n":    "from_registry: Python version must be specified as 'major.minor' for this interface; micro-level specification ('3.12.1') is not valid.",
		"- from_registry: {tag: ubuntu, secret: {from_vault: x}}\n": `unknown secret kind "from_vault"`,
	} {
		err := parseErr(t, src)
		if want != "" && !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", src, err, want)
		}
	}
}
