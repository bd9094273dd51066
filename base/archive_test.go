package base

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// inRelease is the head of Debian's bookworm InRelease file of the 12.8
// point release, signature armour included.
const inRelease = `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Origin: Debian
Label: Debian
Suite: stable
Version: 12.8
Codename: bookworm
Changelogs: https://metadata.ftp-master.debian.org/changelogs/@CHANGEPATH@_changelog
Date: Sat, 09 Nov 2024 10:02:43 UTC
Acquire-By-Hash: yes
Architectures: all amd64 arm64
Components: main contrib non-free-firmware non-free
Description: Debian 12.8 Released 09 November 2024
MD5Sum:
 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all
Date: Mon, 01 Jan 2024 00:00:00 UTC
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCAAdFiEE
-----END PGP SIGNATURE-----
`

func TestParseInRelease(t *testing.T) {
	sum := sha256.Sum256([]byte(inRelease))
	want := Archive{InRelease: hex.EncodeToString(sum[:]), Release: "Debian 12.8", Date: time.Date(2024, 11, 9, 10, 2, 43, 0, time.UTC)}
	if got := ParseInRelease([]byte(inRelease)); got != want {
		t.Errorf("ParseInRelease = %+v, want %+v", got, want)
	}
	if s := want.String(); s != "Debian 12.8 of 2024-11-09" {
		t.Errorf("String() = %q", s)
	}
	// A suite without point releases (testing, unstable) has no Version.
	sid := "Origin: Debian\nLabel: Debian\nSuite: unstable\nCodename: sid\nDate: Sun, 01 Dec 2024 08:14:01 UTC\nSHA256:\n"
	if got := ParseInRelease([]byte(sid)); got.Release != "Debian sid" || got.Date.Day() != 1 {
		t.Errorf("ParseInRelease(sid) = %+v, want Release Debian sid, 1 December", got)
	}
	// Garbage still has a hash, and says it knows nothing else.
	got := ParseInRelease([]byte("<html>not found</html>"))
	if got.InRelease == "" || got.Release != "" || !got.Date.IsZero() {
		t.Errorf("ParseInRelease(garbage) = %+v", got)
	}
	if s := got.String(); s != "archive "+got.InRelease[:12] {
		t.Errorf("String() of an unknown release = %q", s)
	}
}

func TestArchiveState(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debian/dists/bookworm/InRelease" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(inRelease))
	}))
	defer srv.Close()
	a, err := Debian{Suite: "bookworm", Mirror: srv.URL + "/debian/"}.ArchiveState(context.Background())
	if err != nil || a != ParseInRelease([]byte(inRelease)) {
		t.Errorf("ArchiveState = %+v, %v", a, err)
	}
	_, err = Debian{Suite: "nosuch", Mirror: srv.URL + "/debian"}.ArchiveState(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/debian/dists/nosuch/InRelease: 404") {
		t.Errorf("ArchiveState of a missing suite: %v", err)
	}
	srv.Close()
	if _, err := (Debian{Suite: "bookworm", Mirror: srv.URL}).ArchiveState(context.Background()); err == nil || !strings.Contains(err.Error(), "debian mirror") {
		t.Errorf("ArchiveState of a closed mirror: %v", err)
	}
}

func TestPackages(t *testing.T) {
	root := t.TempDir()
	if _, err := Packages(root); err == nil {
		t.Error("Packages of a rootfs without dpkg status: no error")
	}
	status := `Package: libc6
Status: install ok installed
Architecture: ` + hostArch() + `
Version: 2.36-9+deb12u8

Package: gone
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: libfoo
Status: install ok installed
Architecture: s390x
Version: 3
Description: a foreign architecture's
 continued line: Version: 99

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
`
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte(status), 0o644)
	got, err := Packages(root)
	want := map[string]string{"libc6": "2.36-9+deb12u8", "libfoo:s390x": "3", "tzdata": "2024a-0+deb12u1"}
	if hostArch() == "s390x" {
		want = map[string]string{"libc6": "2.36-9+deb12u8", "libfoo": "3", "tzdata": "2024a-0+deb12u1"}
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Packages = %v, %v; want %v", got, err, want)
	}
}

func TestChangedPackages(t *testing.T) {
	old := map[string]string{"libc6": "2.36-9+deb12u7", "tzdata": "2024a", "gone": "1"}
	new := map[string]string{"libc6": "2.36-9+deb12u9", "tzdata": "2024a", "added": "2"}
	got := ChangedPackages(old, new)
	var s []string
	for _, c := range got {
		s = append(s, c.String())
	}
	want := []string{"added (new) → 2", "gone 1 → (removed)", "libc6 2.36-9+deb12u7 → 2.36-9+deb12u9"}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("ChangedPackages = %q, want %q", s, want)
	}
	if got := ChangedPackages(old, old); len(got) != 0 {
		t.Errorf("ChangedPackages of the same = %v", got)
	}
}
