package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOutputsForConsumers: the default outputs are taken by the consumers a
// user is likely to have, checked with the tools themselves. A push is
// gzip (Docker before 23 reads no zstd), skopeo turns it into a
// docker-archive and snapbuild pulls back the same diff IDs;
// --compression zstd still pushes zstd; a docker-archive
// export is read by skopeo; an oci-archive export is unpacked by umoci
// 0.4 (which refuses zstd) and imported by podman load under the image's
// full name; an oci: layout, zstd as stored, is unpacked by umoci with
// --compression gzip, as docs/outputs.md says.
func TestOutputsForConsumers(t *testing.T) {
	requireRoot(t)
	requireTools(t, "skopeo", "podman", "umoci", "docker-registry", "tar")
	host := startRegistry(t)
	insecure := "--insecure-registry=" + host
	dir := t.TempDir()
	r := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	// A one-file image: no Debian bootstrap, no container.
	os.WriteFile(filepath.Join(dir, "greeting.txt"), []byte("hello from snapbuild\n"), 0o644)
	const named = "localhost/snapbuild-it/outputs:v1" // a full name
	const short = "snapbuild-it-outputs"              // docker.io/library/snapbuild-it-outputs:latest
	recipe := writeRecipe(t, dir, "outputs.yaml", named+`:
  - from_scratch: {}
  - add_local_file: {local_path: greeting.txt, remote_path: /greeting.txt, copy: true}
`+short+`:
  - from_scratch: {}
  - add_local_file: {local_path: greeting.txt, remote_path: /greeting.txt, copy: true}
`)
	r.ok("build", recipe, "--progress", "plain")
	store := layerTypes(t, inspectRaw(t, "oci:"+exportLayout(t, r, named)))
	if len(store) == 0 || store[0] != "application/vnd.oci.image.layer.v1.tar+zstd" {
		t.Fatalf("the store's layers should be zstd (the oci: default keeps them): %q", store)
	}

	// push: gzip by default; skopeo copies it to a docker-archive.
	pushed := "docker://" + host + "/snapbuild-it/outputs:gzip"
	r.ok("push", named, pushed, insecure)
	if got := layerTypes(t, inspectRaw(t, pushed, "--tls-verify=false")); !allEqual(got, "application/vnd.oci.image.layer.v1.tar+gzip") {
		t.Errorf("default push: layer media types %q, want gzip", got)
	}
	viaSkopeo := filepath.Join(t.TempDir(), "from-registry.tar")
	if out, err := exec.Command("skopeo", "copy", "--quiet", "--src-tls-verify=false", pushed, "docker-archive:"+viaSkopeo+":snapbuild-it/outputs:gzip").CombinedOutput(); err != nil {
		t.Errorf("skopeo copy %s docker-archive: %v\n%s", pushed, err, out)
	} else if got := fileFromDockerArchive(t, viaSkopeo, "greeting.txt"); got != "hello from snapbuild\n" {
		t.Errorf("greeting.txt in skopeo's docker-archive: %q", got)
	}
	// snapbuild pulls it back: the same filesystem (diff IDs) under gzip.
	fresh := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	fresh.ok("pull", pushed[len("docker://"):], insecure)
	if got, want := inspect(t, fresh, pushed[len("docker://"):]).Config.RootFS.DiffIDs, inspect(t, r, named).Config.RootFS.DiffIDs; strings.Join(got, ",") != strings.Join(want, ",") || len(want) == 0 {
		t.Errorf("diff IDs after a gzip push and pull: %q, want %q", got, want)
	}
	// --compression zstd pushes zstd.
	zpushed := "docker://" + host + "/snapbuild-it/outputs:zstd"
	r.ok("push", named, zpushed, insecure, "--compression", "zstd")
	if got := layerTypes(t, inspectRaw(t, zpushed, "--tls-verify=false")); !allEqual(got, "application/vnd.oci.image.layer.v1.tar+zstd") {
		t.Errorf("push --compression zstd: layer media types %q, want zstd", got)
	}
	// A bad value names the flag and the choices, and writes nothing.
	if res := r.run("", "push", named, "docker://"+host+"/snapbuild-it/outputs:bad", insecure, "--compression", "lz4"); res.code == 0 ||
		!strings.Contains(res.stderr, `compression "lz4" (--compression): choose gzip or zstd`) {
		t.Errorf("push --compression lz4: exit %d\n%s", res.code, tail(res.stderr, 4))
	}

	// docker-archive: skopeo reads the default export.
	darchive := filepath.Join(t.TempDir(), "outputs-docker.tar")
	r.ok("export", named, "docker-archive:"+darchive)
	if out, err := exec.Command("skopeo", "inspect", "docker-archive:"+darchive).CombinedOutput(); err != nil {
		t.Errorf("skopeo inspect docker-archive: %v\n%s", err, out)
	} else if !strings.Contains(string(out), `"RepoTags": [`) {
		t.Errorf("skopeo inspect docker-archive:\n%s", out)
	}
	if got := fileFromDockerArchive(t, darchive, "greeting.txt"); got != "hello from snapbuild\n" {
		t.Errorf("greeting.txt in the docker-archive export: %q", got)
	}

	// oci-archive: umoci 0.4 unpacks the default export (gzip).
	oarchive := filepath.Join(t.TempDir(), "outputs-oci.tar")
	r.ok("export", named, "oci-archive:"+oarchive)
	unpacked := filepath.Join(t.TempDir(), "layout")
	os.MkdirAll(unpacked, 0o755)
	if out, err := exec.Command("tar", "-C", unpacked, "-xf", oarchive).CombinedOutput(); err != nil {
		t.Fatalf("untar %s: %v\n%s", oarchive, err, out)
	}
	umociUnpack(t, unpacked+":"+named)

	// podman load names an oci-archive by its full name: a name with a
	// domain as it is, a short name as Docker reads it.
	shortArchive := filepath.Join(t.TempDir(), "short-oci.tar")
	r.ok("export", short, "oci-archive:"+shortArchive)
	tagged := filepath.Join(t.TempDir(), "tagged-oci.tar")
	r.ok("export", short, "oci-archive:"+tagged+":v2") // a TAG: the image's repository with that tag
	for archive, want := range map[string]string{
		oarchive:     named,
		shortArchive: "docker.io/library/" + short + ":latest",
		tagged:       "docker.io/library/" + short + ":v2",
	} {
		exec.Command("podman", "rmi", "-f", want).Run()
		out, err := exec.Command("podman", "load", "-i", archive).CombinedOutput()
		t.Cleanup(func() { exec.Command("podman", "rmi", "-f", want).Run() })
		if err != nil {
			t.Errorf("podman load -i %s: %v\n%s", archive, err, out)
			continue
		}
		if names := podmanImages(t); !strings.Contains(names, "\n"+want+"\n") {
			t.Errorf("podman load -i %s (%s): podman images has no %s:\n%s", filepath.Base(archive), strings.TrimSpace(string(out)), want, names)
		}
	}

	// snapbuild pull reads the same names back: an archive's image is named
	// by the name it carries, not by the archive's path.
	back := runner{t: t, root: filepath.Join(t.TempDir(), "store")}
	for archive, want := range map[string]string{
		"oci-archive:" + shortArchive:   short + ":latest",
		"oci-archive:" + tagged + ":v2": short + ":v2",
	} {
		back.ok("pull", archive)
		if info := inspect(t, back, want); len(info.Config.RootFS.DiffIDs) == 0 {
			t.Errorf("snapbuild pull %s: %s has no layers", archive, want)
		}
	}

	// oci: keeps zstd; umoci 0.4 needs --compression gzip there.
	gz := filepath.Join(t.TempDir(), "gz-layout")
	r.ok("export", named, "oci:"+gz, "--compression", "gzip")
	umociUnpack(t, gz+":"+named)
}

// exportLayout exports name to a fresh oci: layout and returns its path.
func exportLayout(t *testing.T, r runner, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	r.ok("export", name, "oci:"+dir)
	return dir + ":" + name
}

// inspectRaw is the manifest skopeo reads at ref.
func inspectRaw(t *testing.T, ref string, flags ...string) map[string]any {
	t.Helper()
	out, err := exec.Command("skopeo", append(append([]string{"inspect", "--raw"}, flags...), ref)...).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --raw %s: %v", ref, err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("skopeo inspect --raw %s: %v\n%s", ref, err, out)
	}
	return m
}

// layerTypes lists a manifest's layer media types.
func layerTypes(t *testing.T, m map[string]any) []string {
	t.Helper()
	var types []string
	ls, _ := m["layers"].([]any)
	for _, l := range ls {
		d, _ := l.(map[string]any)
		mt, _ := d["mediaType"].(string)
		types = append(types, mt)
	}
	return types
}

func allEqual(s []string, want string) bool {
	for _, v := range s {
		if v != want {
			return false
		}
	}
	return len(s) > 0
}

// fileFromDockerArchive reads name from the last layer of a docker-archive
// (layers are read by tar itself, whatever their compression).
func fileFromDockerArchive(t *testing.T, archive, name string) string {
	t.Helper()
	raw, err := exec.Command("tar", "-xOf", archive, "manifest.json").Output()
	if err != nil {
		t.Fatalf("manifest.json of %s: %v", archive, err)
	}
	var m []struct{ Layers []string }
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != 1 || len(m[0].Layers) == 0 {
		t.Fatalf("manifest.json of %s: %v\n%s", archive, err, raw)
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-C", dir, "-xf", archive, m[0].Layers[len(m[0].Layers)-1]).CombinedOutput(); err != nil {
		t.Fatalf("extracting a layer of %s: %v\n%s", archive, err, out)
	}
	out, err := exec.Command("tar", "-xOf", filepath.Join(dir, m[0].Layers[len(m[0].Layers)-1]), name).Output()
	if err != nil {
		t.Errorf("%s in the last layer of %s: %v", name, archive, err)
	}
	return string(out)
}

// umociUnpack unpacks image (DIR:TAG) with umoci and checks its file.
func umociUnpack(t *testing.T, image string) {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", image, bundle).CombinedOutput(); err != nil {
		t.Errorf("umoci unpack --image %s: %v\n%s", image, err, out)
		return
	}
	if got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "greeting.txt")); err != nil || string(got) != "hello from snapbuild\n" {
		t.Errorf("umoci unpack %s: greeting.txt %q, %v", image, got, err)
	}
}

// podmanImages lists podman's images as REPOSITORY:TAG lines, between
// newlines.
func podmanImages(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("podman", "images", "--format", "{{.Repository}}:{{.Tag}}").Output()
	if err != nil {
		t.Fatalf("podman images: %v", err)
	}
	return "\n" + string(out)
}
