package base

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Archive is the state of a suite in the Debian archive, as the suite's
// InRelease file tells it (the file apt reads first; see Debian's
// DebianRepository/Format).
type Archive struct {
	// InRelease is the sha256 of the InRelease file, hex: it changes
	// whenever any package of the suite changes.
	InRelease string `json:"inRelease"`
	// Release is what a person reads: the Label and Version fields
	// ("Debian 12.8"), or Label and Codename for a suite without point
	// releases ("Debian trixie"); "" when the file has neither.
	Release string `json:"release,omitempty"`
	// Date is the file's Date field: when the archive last changed.
	Date time.Time `json:"date,omitzero"`
}

// String describes a as "Debian 12.8 of 2024-11-09".
func (a Archive) String() string {
	s := a.Release
	if s == "" {
		s = "archive " + short(a.InRelease)
	}
	if !a.Date.IsZero() {
		s += " of " + a.Date.UTC().Format(time.DateOnly)
	}
	return s
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// ArchiveState fetches the suite's InRelease file from the mirror and
// returns what it says of the archive. It fails, naming the mirror, when the
// mirror cannot be reached within 10 seconds or does not serve the suite.
func (d Debian) ArchiveState(ctx context.Context) (Archive, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := strings.TrimRight(d.mirror(), "/") + "/dists/" + d.Suite + "/InRelease"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Archive{}, fmt.Errorf("debian mirror %q: %w", d.mirror(), err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Archive{}, fmt.Errorf("debian mirror: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Archive{}, fmt.Errorf("debian mirror: GET %s: %s", url, resp.Status)
	}
	// An InRelease file is about 150 kB; a mirror that sends more is
	// not one.
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return Archive{}, fmt.Errorf("debian mirror: GET %s: %w", url, err)
	}
	return ParseInRelease(data), nil
}

// ParseInRelease reads an InRelease (or Release) file: its hash, and its
// Label, Version, Codename and Date fields. Fields it cannot read are left
// empty; only the hash is always set.
func ParseInRelease(data []byte) Archive {
	sum := sha256.Sum256(data)
	a := Archive{InRelease: hex.EncodeToString(sum[:])}
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == ' ' || line[0] == '\t' || strings.HasPrefix(line, "-----") {
			continue // the signature's armour, or a checksum list
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if _, seen := fields[k]; !seen {
			fields[k] = strings.TrimSpace(v)
		}
		if k == "MD5Sum" || k == "SHA256" {
			break // the checksum lists end the fields
		}
	}
	label := fields["Label"]
	if label == "" {
		label = fields["Origin"]
	}
	switch {
	case fields["Version"] != "":
		a.Release = strings.TrimSpace(label + " " + fields["Version"])
	case fields["Codename"] != "":
		a.Release = strings.TrimSpace(label + " " + fields["Codename"])
	}
	if t, err := time.Parse(time.RFC1123, fields["Date"]); err == nil {
		a.Date = t.UTC()
	} else if t, err := time.Parse(time.RFC1123Z, fields["Date"]); err == nil {
		a.Date = t.UTC()
	}
	return a
}

// Packages reads the installed packages of a Debian root filesystem from
// its dpkg database (var/lib/dpkg/status): package name (with
// ":ARCH" for a foreign architecture's) to version. A package that is
// known but not installed (Status other than "install ok installed") is
// left out.
func Packages(rootfs string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(rootfs, "var/lib/dpkg/status"))
	if err != nil {
		return nil, fmt.Errorf("reading the installed packages: %w", err)
	}
	defer f.Close()
	pkgs := map[string]string{}
	var name, version, arch, status string
	flush := func() {
		if name != "" && status == "install ok installed" {
			if arch != "" && arch != "all" && arch != hostArch() {
				name += ":" + arch
			}
			pkgs[name] = version
		}
		name, version, arch, status = "", "", "", ""
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "Package: "):
			name = strings.TrimPrefix(line, "Package: ")
		case strings.HasPrefix(line, "Version: "):
			version = strings.TrimPrefix(line, "Version: ")
		case strings.HasPrefix(line, "Architecture: "):
			arch = strings.TrimPrefix(line, "Architecture: ")
		case strings.HasPrefix(line, "Status: "):
			status = strings.TrimPrefix(line, "Status: ")
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the installed packages: %w", err)
	}
	return pkgs, nil
}

// hostArch is the dpkg architecture of the packages a bootstrap installs
// (mmdebstrap's default: the host's).
func hostArch() string {
	switch a := runtime.GOARCH; a {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	default:
		return a // amd64, arm64, s390x, riscv64 are spelt alike
	}
}

// PackageChange is a package whose version differs between two root
// filesystems; Old is "" for an added package, New "" for a removed one.
type PackageChange struct {
	Name, Old, New string
}

// String is "name old → new" ("name (new) → 1.2", "name 1.2 → (removed)").
func (c PackageChange) String() string {
	old, new := c.Old, c.New
	if old == "" {
		old = "(new)"
	}
	if new == "" {
		new = "(removed)"
	}
	return c.Name + " " + old + " → " + new
}

// ChangedPackages lists the packages whose versions differ between old and
// new (as Packages returns them), by name.
func ChangedPackages(old, new map[string]string) []PackageChange {
	var out []PackageChange
	for n, v := range old {
		if new[n] != v {
			out = append(out, PackageChange{Name: n, Old: v, New: new[n]})
		}
	}
	for n, v := range new {
		if _, ok := old[n]; !ok {
			out = append(out, PackageChange{Name: n, New: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
