package integration

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestDifferMatrixRoot and TestDifferMatrixRootless build
// testdata/matrix.yaml and compare the image's /t as three readers see it:
// snapbuild's own sandbox (the kernel's overlayfs over the snapshots: what the
// steps made), podman (containers/storage unpacking the exported layers) and
// umoci (unpacking them after skopeo converts them to gzip). They must agree
// on content, type, mode, ownership, xattrs, link targets and link counts;
// the layers themselves are then checked entry by entry.
func TestDifferMatrixRoot(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mmdebstrap", "skopeo", "podman", "runc", "umoci")
	requireMirror(t)
	matrix(t, runner{t: t, root: rootDir}, t.TempDir())
}

func TestDifferMatrixRootless(t *testing.T) {
	requireTools(t, "mmdebstrap", "skopeo", "podman", "runc", "umoci")
	requireMirror(t)
	u := ensureTestUser(t)
	home := userDir(t, u)
	matrix(t, runner{t: t, user: u.Username, root: filepath.Join(home, "store")}, home)
}

func matrix(t *testing.T, r runner, work string) {
	recipe, err := filepath.Abs("testdata/matrix.yaml")
	if err != nil {
		t.Fatal(err)
	}
	listing, err := os.ReadFile("testdata/listing.py")
	if err != nil {
		t.Fatal(err)
	}
	r.build(recipe)

	// 1. What the steps made, through overlayfs.
	res := r.run(string(listing), "run", "-i", "--network", "none", "matrix", "--", "python3", "-", "/t")
	if res.code != 0 {
		t.Fatalf("listing in snapbuild run: exit %d\n%s", res.code, res.stderr)
	}
	sandboxView := res.stdout

	// 2. podman, from the exported OCI layout.
	layout := filepath.Join(work, "matrix-layout")
	r.ok("export", "matrix", "oci:"+layout+":matrix")
	ref := "localhost/snapbuild-it/matrix-" + strings.ReplaceAll(filepath.Base(work), "_", "-") + ":latest"
	if out, err := exec.Command("skopeo", "copy", "--quiet", "oci:"+layout+":matrix", "containers-storage:"+ref).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", ref).Run() })
	cmd := exec.Command("podman", "--runtime", "runc", "run", "-i", "--rm", "--network", "none",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", ref, "python3", "-", "/t")
	cmd.Stdin = bytes.NewReader(listing)
	podmanView, err := cmd.Output()
	if err != nil {
		t.Fatalf("listing in podman: %v\n%s", err, stderrOf(err))
	}

	// 3. umoci, after a conversion to gzip layers (umoci 0.4 cannot read zstd).
	gz := filepath.Join(work, "matrix-gzip")
	if out, err := exec.Command("skopeo", "copy", "--quiet", "--dest-compress-format", "gzip",
		"oci:"+layout+":matrix", "oci:"+gz+":matrix").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy to gzip: %v\n%s", err, out)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", gz+":matrix", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	cmd = exec.Command("chroot", filepath.Join(bundle, "rootfs"), "python3", "-", "/t")
	cmd.Stdin = bytes.NewReader(listing)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	umociView, err := cmd.Output()
	if err != nil {
		t.Fatalf("listing in the umoci rootfs: %v\n%s", err, stderrOf(err))
	}

	// The socket exists only in the build's own view: sockets are skipped.
	if !strings.Contains(sandboxView, "'/t/sock' socket") {
		t.Errorf("the sandbox view lacks the socket the step bound:\n%s", sandboxView)
	}
	sandboxView = dropLines(sandboxView, "'/t/sock' ")
	compareViews(t, "podman", sandboxView, string(podmanView))
	compareViews(t, "umoci", sandboxView, string(umociView))
	expectView(t, string(podmanView))
	checkLayers(t, layout)
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

func dropLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// compareViews reports the lines that differ between two listings.
func compareViews(t *testing.T, name, want, got string) {
	t.Helper()
	w, g := lineSet(want), lineSet(got)
	var missing, extra []string
	for l := range w {
		if !g[l] {
			missing = append(missing, l)
		}
	}
	for l := range g {
		if !w[l] {
			extra = append(extra, l)
		}
	}
	if len(missing)+len(extra) > 0 {
		t.Errorf("%s sees another /t than the build made:\nonly in the build:\n  %s\nonly in %s:\n  %s",
			name, strings.Join(missing, "\n  "), name, strings.Join(extra, "\n  "))
	}
}

func lineSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" {
			m[l] = true
		}
	}
	return m
}

// expectView checks the cases' outcomes in a listing, independently of what
// the build's own view says.
func expectView(t *testing.T, view string) {
	t.Helper()
	entry := func(path string) string {
		for _, l := range strings.Split(view, "\n") {
			if strings.HasPrefix(l, "'"+path+"' ") {
				return l
			}
		}
		return ""
	}
	for _, p := range []string{"/t/del_file", "/t/del_tree", "/t/recreate_same/old", "/t/recreate_later/old",
		"/t/rmstar/a", "/t/rmstar/f", "/t/rmall", "/t/ren_file", "/t/ren_dir", "/t/tmpfile", "/t/tmpdir", "/t/sock",
		"/t/rendir_edit/a", "/t/rendir_away/a", "/t/rendir_back.tmp", "/t/c1", "/t/c2"} {
		if e := entry(p); e != "" {
			t.Errorf("%s should be gone: %s", p, e)
		}
	}
	for p, want := range map[string]string{
		"/t/modify":               " file 644 0:0 8:",
		"/t/chmod_only":           " file 600 0:0 ",
		"/t/chown_only":           " file 644 42:42 ",
		"/t/chown_nobody":         " file 644 65534:65534 ",
		"/t/xattr_only":           "user.test=76616c7565",
		"/t/capbin":               "security.capability=0100000200200000",
		"/t/recreate_same/new/g":  " file 644 0:0 4:",
		"/t/recreate_later/new/g": " file 644 0:0 4:",
		"/t/rmstar":               " dir 755 ",
		"/t/ren_file2":            " file 644 ",
		"/t/ren_dir2/sub/c":       " file 644 0:0 2:",
		"/t/symre":                " symlink 777 0:0 ->target2 ",
		"/t/dangling":             " symlink 777 0:0 ->nowhere ",
		"/t/loop1":                " symlink 777 0:0 ->loop2 ",
		"/t/newhard/a":            " 2 ",
		"/t/newhard/b":            " 2 ",
		"/t/lowerlink":            " 2 ",
		"/t/lowerlink.new":        " 2 ",
		"/t/ten.9":                " 10 ",
		"/t/fifo":                 " fifo 644 ",
		"/t/setbits/suid":         " file 4755 ",
		"/t/setbits/sgid":         " file 2755 ",
		"/t/setbits/sticky":       " dir 1777 ",
		"/t/sparse":               " file 644 0:0 1073741824:",
		`/t/name-\udcff\udcfe`:    " file 644 0:0 1:",
		"/t/" + deepPath() + "/f": " file 644 0:0 5:",
		"/t/mtime_only":           " 170812800 ",
		"/t/rendir_back/a":        "user.test=6b657074",
		"/t/rendir_back/cap":      "security.capability=0100000200200000",
		"/t/rendir_chain/sub/b":   " file 644 0:0 2:",
		"/t/rendir_edit/sub/b":    " file 644 0:0 7:",
		"/t/rendir_away/n":        " file 644 0:0 4:",
		"/t/rendir_away.old/cap":  "security.capability=0100000200200000",
	} {
		if e := entry(p); !strings.Contains(e, want) {
			t.Errorf("%s: got %q, want it to contain %q", p, e, want)
		}
	}
}

func deepPath() string {
	d := strings.Repeat("d", 100)
	return d + "/" + d + "/" + d
}

// layerEntries lists the tar entries of each layer of the exported image,
// keyed by the history entry that made it.
func layerEntries(t *testing.T, layout string) (created []string, entries [][]*tar.Header) {
	t.Helper()
	var index struct{ Manifests []struct{ Digest string } }
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	readJSON(t, blobPath(layout, index.Manifests[0].Digest), &manifest)
	var config struct {
		History []struct {
			CreatedBy  string `json:"created_by"`
			EmptyLayer bool   `json:"empty_layer"`
		} `json:"history"`
	}
	readJSON(t, blobPath(layout, manifest.Config.Digest), &config)
	i := 0
	for _, h := range config.History {
		if h.EmptyLayer {
			continue
		}
		f, err := os.Open(blobPath(layout, manifest.Layers[i].Digest))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		var hs []*tar.Header
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer %d: %v", i, err)
			}
			hs = append(hs, h)
		}
		zr.Close()
		f.Close()
		created = append(created, h.CreatedBy)
		entries = append(entries, hs)
		i++
	}
	if i != len(manifest.Layers) {
		t.Fatalf("history names %d layers, the manifest has %d", i, len(manifest.Layers))
	}
	return created, entries
}

func blobPath(layout, d string) string {
	return filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
}

// checkLayers checks the change step's layer entry by entry: whiteouts only
// where something was deleted, no trace of copy-ups without change or of what
// was made and removed within the step, no mount stubs.
func checkLayers(t *testing.T, layout string) {
	t.Helper()
	created, entries := layerEntries(t, layout)
	var change []*tar.Header
	for i, c := range created {
		if strings.Contains(c, "change.sh") {
			change = entries[i]
		}
		if strings.HasPrefix(c, "RUN ") && !strings.Contains(c, "apt-get") {
			for _, h := range entries[i] {
				switch h.Name {
				case "etc/", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/", "proc/", "sys/":
					t.Errorf("layer of %.40q holds the mount stub or its parent %s", c, h.Name)
				}
			}
		}
	}
	if change == nil {
		t.Fatalf("no layer for the change step among %q", created)
	}
	byName := map[string]*tar.Header{}
	for _, h := range change {
		byName[h.Name] = h
	}
	for _, name := range []string{"t/.wh.del_file", "t/.wh.del_tree", "t/.wh.ren_file", "t/.wh.ren_dir",
		"t/.wh.recreate_later", "t/.wh.rmall", "t/rmstar/.wh.a", "t/rmstar/.wh.f", "t/recreate_same/.wh..wh..opq",
		"t/rendir_edit/.wh.a", "t/rendir_away/.wh..wh..opq"} {
		h := byName[name]
		if h == nil {
			t.Errorf("change layer lacks %s", name)
			continue
		}
		if h.Typeflag != tar.TypeReg || h.Size != 0 {
			t.Errorf("%s is type %c size %d, want an empty regular file (never a hard link)", name, h.Typeflag, h.Size)
		}
	}
	for _, h := range change {
		for _, absent := range []string{"tmpfile", "tmpdir", "sock", "renback", "cp_chmod", "cp_mv", "rmstar/.wh..wh..opq", "/.wh.new"} {
			if strings.Contains(h.Name, absent) {
				t.Errorf("change layer holds %s (made and removed in the step, unchanged after a copy-up, a socket, or a needless marker)", h.Name)
			}
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s has user/group names %q/%q", h.Name, h.Uname, h.Gname)
		}
	}
	// A directory renamed away and back (mv copies it: overlayfs cannot
	// rename a lower directory without redirect_dir) changed nothing; one
	// edited after coming back changed only the edited entries.
	for _, h := range change {
		if strings.HasPrefix(h.Name, "t/rendir_back/") || strings.HasPrefix(h.Name, "t/rendir_chain/") ||
			strings.HasPrefix(h.Name, "t/rendir_edit/") && !slices.Contains([]string{"t/rendir_edit/", "t/rendir_edit/.wh.a", "t/rendir_edit/sub/b"}, h.Name) {
			t.Errorf("change layer holds %s: the directory was renamed away and back, and only what was edited after changed", h.Name)
		}
	}
	if h := byName["t/rendir_away.old/cap"]; h == nil || fmt.Sprintf("%x", h.PAXRecords["SCHILY.xattr.security.capability"]) != "0100000200200000000000000000000000000000" {
		t.Errorf("t/rendir_away.old/cap = %+v, want the renamed copy with its capability", h)
	}
	if h := byName["t/newhard/b"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "t/newhard/a" {
		t.Errorf("t/newhard/b = %+v, want a hard link to t/newhard/a", h)
	}
	if h := byName["t/capbin"]; h == nil || fmt.Sprintf("%x", h.PAXRecords["SCHILY.xattr.security.capability"]) != "0100000200200000000000000000000000000000" {
		t.Errorf("t/capbin capability = %x, want v2 cap_net_raw+ep", byName["t/capbin"].PAXRecords["SCHILY.xattr.security.capability"])
	}
	for name, h := range byName {
		if strings.HasPrefix(name, "t/") && h.ModTime.Unix() > 315532800 {
			t.Errorf("%s mtime %v is after the epoch", name, h.ModTime)
		}
	}
	if j, _ := json.Marshal(created); !strings.Contains(string(j), "mkdir -p /t/recreate_later/new") {
		t.Errorf("no layer for the recreate step: %s", j)
	}
}
