package modal

import (
	"fmt"
	"sort"
	"strings"
)

// StandaloneBuild is the python-build-standalone build Modal's add_python
// installs for a series: release date and full version.
type StandaloneBuild struct{ Release, Version string }

var StandaloneBuilds = map[string]StandaloneBuild{
	"3.10":  {"20230826", "3.10.13"},
	"3.11":  {"20230826", "3.11.5"},
	"3.12":  {"20240107", "3.12.1"},
	"3.13":  {"20241008", "3.13.0"},
	"3.14":  {"20251205", "3.14.2"},
	"3.14t": {"20251209", "3.14.2"},
}

// File is the release asset's name: the glibc "install_only" tarball, whose
// root directory is python/.
func (s StandaloneBuild) File(series string) string {
	variant := "install_only"
	if strings.HasSuffix(series, "t") {
		variant = "freethreaded-install_only"
	}
	return fmt.Sprintf("cpython-%s+%s-x86_64-unknown-linux-gnu-%s.tar.gz", s.Version, s.Release, variant)
}

// DebianSuiteFor maps a Python series to the Debian suite that ships it.
var DebianSuiteFor = map[string]string{"3.11": "bookworm", "3.13": "trixie"}

// OfflineSeries names the series a Debian suite ships (DebianSuiteFor), for
// messages: "Python 3.11 (Debian bookworm) and ...".
func OfflineSeries() string {
	var s []string
	for series, suite := range DebianSuiteFor {
		s = append(s, fmt.Sprintf("Python %s (Debian %s)", series, suite))
	}
	sort.Strings(s)
	return strings.Join(s, " and ")
}

// DebianSlimImage is the image debian_slim(version) pulls with
// WithDebianSlimFromRegistry: for a series Modal's 2025.06 pin,
// for a micro version ("3.12.3") that version, as Modal does.
func DebianSlimImage(series string) string {
	micro := map[string]string{"3.10": "3.10.17", "3.11": "3.11.12", "3.12": "3.12.10", "3.13": "3.13.3", "3.14": "3.14.2"}[series]
	if micro == "" {
		micro = series
	}
	return "docker.io/library/python:" + micro + "-slim-bookworm"
}
