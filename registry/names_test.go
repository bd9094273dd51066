package registry

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestLayoutNames(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":2,"manifests":[
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"annotations":{"org.opencontainers.image.ref.name":"base:1"}},
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":1},
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cc","size":1,"annotations":{"org.opencontainers.image.ref.name":"tool"}}]}`), 0o644)
	got, err := LayoutNames(dir)
	if err != nil || !reflect.DeepEqual(got, []string{"base:1", "tool"}) {
		t.Errorf("LayoutNames = %q, %v", got, err)
	}
	if _, err := LayoutNames(t.TempDir()); err == nil {
		t.Error("a directory without index.json: no error")
	}
}

func TestFullName(t *testing.T) {
	for in, want := range map[string]string{
		"app":                             "docker.io/library/app:latest",
		"app:image":                       "docker.io/library/app:image",
		"team/app":                        "docker.io/team/app:latest",
		"localhost/app":                   "localhost/app:latest",
		"registry.local:5000/team/app:v1": "registry.local:5000/team/app:v1",
		"ubuntu@sha256:" + sixtyFourA:     "docker.io/library/ubuntu@sha256:" + sixtyFourA,
	} {
		if got, err := FullName(in); err != nil || got != want {
			t.Errorf("FullName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if got, err := FullName("App"); err == nil {
		t.Errorf("FullName(%q) = %q, want an error (upper-case repository)", "App", got)
	}
}

const sixtyFourA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestIndexAnnotations(t *testing.T) {
	const full = "docker.io/library/app:v1"
	for _, tc := range []struct {
		tag, full  string
		refName    string // org.opencontainers.image.ref.name; "" for absent
		containerd string // io.containerd.image.name; "" for absent
	}{
		{"", full, full, full},
		{"", "", "", ""},
		{"latest", full, "latest", "docker.io/library/app:latest"},
		{"latest", "", "latest", ""},
		{"team/app:v2", full, "team/app:v2", "docker.io/team/app:v2"},
		{"other:v3", "", "other:v3", "docker.io/library/other:v3"},
		{"registry.local:5000/x", full, "registry.local:5000/x", "registry.local:5000/x:latest"},
		{"Not/A:Name", full, "Not/A:Name", ""},
	} {
		got := IndexAnnotations(tc.tag, tc.full)
		want := map[string]string{}
		if tc.refName != "" {
			want[AnnotationRefName] = tc.refName
		}
		if tc.containerd != "" {
			want[AnnotationImageName] = tc.containerd
		}
		if len(want) == 0 {
			want = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("IndexAnnotations(%q, %q) = %v, want %v", tc.tag, tc.full, got, want)
		}
	}
}

func TestWithImageName(t *testing.T) {
	for _, bad := range []string{"", "app latest"} {
		if _, err := makeOptions(WithImageName(bad)); err == nil {
			t.Errorf("WithImageName(%q): no error", bad)
		}
	}
	o, err := makeOptions(WithImageName("docker.io/library/app:latest"))
	if err != nil || o.imageName != "docker.io/library/app:latest" {
		t.Errorf("WithImageName: %+v, %v", o, err)
	}
}
