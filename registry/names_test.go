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
