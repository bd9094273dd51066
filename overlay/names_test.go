package overlay

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// needTool returns the path of an external program the test checks its
// output with; it skips without it, unless CI=true, where that fails.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (CI=true: not skipping); install the Debian package %s", name, pkg)
	}
	t.Skipf("%s not found; install the Debian package %s", name, pkg)
	return ""
}

// A file name is any bytes but "/" and NUL. Names that are not valid UTF-8
// go into the layer as they are, marked hdrcharset=BINARY, so that
// libarchive extracts them as it does from Docker's and BuildKit's layers;
// without the record bsdtar exits 1 ("Pathname can't be converted from
// UTF-8 to current locale"). Go's archive/tar and GNU tar read the same
// names.
func TestDiffNonUTF8Names(t *testing.T) {
	const (
		latin1 = "caf\xe9"      // "café" in ISO 8859-1
		dir    = "d\xff\xfe"    // no encoding's text
		link   = "lnk-\xe9"     // symlink to latin1
		hard   = "hard-\xe9"    // hard link to dir/f
		utf8   = "na\u00efve"   // valid UTF-8: no record
		target = "../" + latin1 // a symlink target that is not UTF-8 either
	)
	upper := t.TempDir()
	must(t, os.WriteFile(filepath.Join(upper, latin1), []byte("latin1\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(upper, utf8), []byte("utf8\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(upper, dir), 0o755))
	must(t, os.WriteFile(filepath.Join(upper, dir, "f"), []byte("in dir\n"), 0o644))
	must(t, os.Link(filepath.Join(upper, dir, "f"), filepath.Join(upper, hard)))
	must(t, os.Mkdir(filepath.Join(upper, "sub"), 0o755))
	must(t, os.Symlink(target, filepath.Join(upper, "sub", link)))
	setTimes(t, upper, lowerTime)

	var layer bytes.Buffer
	if _, err := Diff(context.Background(), &layer, upper, DiffOptions{}); err != nil {
		t.Fatal(err)
	}

	// archive/tar: the names' bytes, and the record only where needed.
	binary := map[string]bool{latin1: true, dir + "/": true, dir + "/f": true, hard: true, "sub/" + link: true}
	es := readTar(t, layer.Bytes())
	for _, e := range es {
		if got := e.hdr.PAXRecords["hdrcharset"]; (got == "BINARY") != binary[e.hdr.Name] {
			t.Errorf("%q: hdrcharset = %q", e.hdr.Name, got)
		}
	}
	if e := byName(t, es, "sub/"+link); e.hdr.Linkname != target {
		t.Errorf("symlink target %q, want %q", e.hdr.Linkname, target)
	}
	if e := byName(t, es, hard); e.hdr.Linkname != dir+"/f" && byName(t, es, dir+"/f").hdr.Linkname != hard {
		t.Errorf("%q and %q are not linked in the layer", hard, dir+"/f")
	}
	if len(es) != len(binary)+2 { // + utf8 and sub/
		t.Errorf("entries %q", names(es))
	}

	file := filepath.Join(t.TempDir(), "layer.tar")
	must(t, os.WriteFile(file, layer.Bytes(), 0o644))
	for _, x := range []struct {
		tool string
		args []string
	}{
		{needTool(t, "bsdtar", "libarchive-tools"), []string{"-x", "-o", "-f", file}},
		{needTool(t, "tar", "tar"), []string{"--no-same-owner", "-xf", file}},
	} {
		out := t.TempDir()
		cmd := exec.Command(x.tool, x.args...)
		cmd.Dir = out
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s %q: %v\n%s", x.tool, x.args, err, b)
			continue
		}
		for name, want := range map[string]string{latin1: "latin1\n", utf8: "utf8\n", dir + "/f": "in dir\n", hard: "in dir\n"} {
			if b, err := os.ReadFile(filepath.Join(out, name)); err != nil || string(b) != want {
				t.Errorf("%s: %q: %q, %v; want %q", x.tool, name, b, err, want)
			}
		}
		if got, err := os.Readlink(filepath.Join(out, "sub", link)); err != nil || got != target {
			t.Errorf("%s: symlink %q -> %q, %v; want %q", x.tool, "sub/"+link, got, err, target)
		}
		a, errA := os.Stat(filepath.Join(out, hard))
		b, errB := os.Stat(filepath.Join(out, dir, "f"))
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Errorf("%s: %q and %q are not one file (%v, %v)", x.tool, hard, dir+"/f", errA, errB)
		}
	}
}
