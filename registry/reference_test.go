package registry

import (
	"strings"
	"testing"
)

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in        string
		transport Transport
		name      string // fullName of Name; "" for none
		path, tag string
		str       string // String()
	}{
		{"ubuntu:22.04", Docker, "docker.io/library/ubuntu:22.04", "", "", "docker://docker.io/library/ubuntu:22.04"},
		{"ubuntu", Docker, "docker.io/library/ubuntu:latest", "", "", "docker://docker.io/library/ubuntu:latest"},
		{"docker://ubuntu:22.04", Docker, "docker.io/library/ubuntu:22.04", "", "", "docker://docker.io/library/ubuntu:22.04"},
		{"docker.io/library/ubuntu:22.04", Docker, "docker.io/library/ubuntu:22.04", "", "", "docker://docker.io/library/ubuntu:22.04"},
		{"index.docker.io/team/app:v1", Docker, "docker.io/team/app:v1", "", "", "docker://docker.io/team/app:v1"},
		{"localhost:5000/x/y@sha256:" + strings.Repeat("ab", 32), Docker, "localhost:5000/x/y@sha256:" + strings.Repeat("ab", 32), "", "", "docker://localhost:5000/x/y@sha256:" + strings.Repeat("ab", 32)},
		{"docker://127.0.0.1:5000/x:1", Docker, "127.0.0.1:5000/x:1", "", "", "docker://127.0.0.1:5000/x:1"},
		{"oci:/tmp/layout", OCI, "", "/tmp/layout", "", "oci:/tmp/layout"},
		{"oci:/tmp/layout:v1", OCI, "", "/tmp/layout", "v1", "oci:/tmp/layout:v1"},
		{"oci:rel/dir:a:b", OCI, "", "rel/dir", "a:b", "oci:rel/dir:a:b"},
		{"oci-archive:/tmp/x.tar:latest", OCIArchive, "", "/tmp/x.tar", "latest", "oci-archive:/tmp/x.tar:latest"},
		{"docker-archive:/tmp/x.tar", DockerArchive, "", "/tmp/x.tar", "", "docker-archive:/tmp/x.tar"},
		{"docker-archive:/tmp/x.tar:busybox:1.36", DockerArchive, "docker.io/library/busybox:1.36", "/tmp/x.tar", "", "docker-archive:/tmp/x.tar:docker.io/library/busybox:1.36"},
		{"docker-archive:/tmp/x.tar:busybox", DockerArchive, "docker.io/library/busybox:latest", "/tmp/x.tar", "", "docker-archive:/tmp/x.tar:docker.io/library/busybox:latest"},
	} {
		r, err := ParseReference(tc.in)
		if err != nil {
			t.Errorf("ParseReference(%q) = %v", tc.in, err)
			continue
		}
		if r.Transport != tc.transport || fullName(r.Name) != tc.name || r.Path != tc.path || r.Tag != tc.tag || r.String() != tc.str {
			t.Errorf("ParseReference(%q) = {%s %q %q %q} %q, want {%s %q %q %q} %q", tc.in,
				r.Transport, fullName(r.Name), r.Path, r.Tag, r.String(), tc.transport, tc.name, tc.path, tc.tag, tc.str)
		}
		// The string form round-trips.
		r2, err := ParseReference(r.String())
		if err != nil || r2.String() != r.String() || r2.Transport != r.Transport || fullName(r2.Name) != fullName(r.Name) || r2.Path != r.Path || r2.Tag != r.Tag {
			t.Errorf("ParseReference(%q) = %v, %v; want it equal to ParseReference(%q)", r.String(), r2, err, tc.in)
		}
	}
}

func TestParseReferenceErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty registry reference"},
		{"docker://", "empty registry reference"},
		{"docker:ubuntu", "want docker://REF"},
		{"oci:", "empty path"},
		{"oci::tag", "empty path"},
		{"oci:/x:", "empty tag"},
		{"oci-archive:", "empty path"},
		{"docker-archive:", "empty path"},
		{"docker-archive:/x.tar:@1", "by index"},
		{"docker-archive:/x.tar:busybox@sha256:" + strings.Repeat("ab", 32), "not a tagged image name"},
		{"containers-storage:foo", `transport "containers-storage" is not supported`},
		{"dir:/tmp/x", `transport "dir" is not supported`},
		{"UPPER/case:tag", "image reference"},
		{"docker://x y", "image reference"},
	} {
		_, err := ParseReference(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"`+tc.in+`"`) {
			t.Errorf("ParseReference(%q) = %v, want an error naming the input and saying %q", tc.in, err, tc.want)
		}
	}
}
