package base

import (
	"bufio"
	"os"
	"reflect"
	"strings"
	"testing"
)

// testdata/mmdebstrap-bookworm-verbose.log is the output of mmdebstrap 1.3.5
// --verbose making a bookworm minbase with SlimPackages and a customize
// hook, as Bootstrap runs it.
func TestBootstrapPhasesFromMmdebstrap(t *testing.T) {
	f, err := os.Open("testdata/mmdebstrap-bookworm-verbose.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var p BootstrapPhases
	var phases []string
	lines, details := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		phase, detail := p.Line(sc.Text())
		if phase != "" {
			phases = append(phases, phase)
		}
		lines++
		if detail {
			details++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"updating package lists",
		"downloading 69 essential packages (29.7 MB)",
		"unpacking the essential packages",
		"configuring the essential packages",
		"downloading 108 more packages (104 MB)",
		"unpacking 108 packages",
		"configuring 108 packages",
		"customizing",
		"cleaning up",
	}
	if !reflect.DeepEqual(phases, want) {
		t.Errorf("phases:\n got  %q\n want %q", phases, want)
	}
	// A successful bootstrap reports no error: every line is detail
	// (dpkg's "warning: ignoring pre-dependency problem!" included).
	if details != lines || lines < 1000 {
		t.Errorf("%d of %d lines are detail, want all", details, lines)
	}
}

func TestBootstrapPhasesErrorsAreNotDetail(t *testing.T) {
	for _, tc := range []struct {
		line   string
		detail bool
	}{
		{"E: apt-get update --error-on=any failed", false},
		{"dpkg: error processing package python3 (--configure):", false},
		{"Errors were encountered while processing:", false},
		{"W: cannot copy /etc/apt/apt.conf.d: not a directory", true},
		{"dpkg: warning: ignoring pre-dependency problem!", true},
		{"I: using /tmp/mmdebstrap.1B5t0aj2Eo as tempdir", true},
		{"Setting up gcc-12-base:amd64 (12.2.0-14+deb12u1) ...", true},
	} {
		var p BootstrapPhases
		if _, detail := p.Line(tc.line); detail != tc.detail {
			t.Errorf("Line(%q): detail = %v, want %v", tc.line, detail, tc.detail)
		}
	}
}

// Several customize hooks make one phase.
func TestBootstrapPhasesOneCustomizing(t *testing.T) {
	var p BootstrapPhases
	var got []string
	for _, l := range []string{
		"I: running --customize-hook in shell: sh -c 'set -e' exec /tmp/mmdebstrap.x",
		"I: running --customize-hook in shell: sh -c 'PYTHON_TREE=/x' exec /tmp/mmdebstrap.x",
	} {
		if ph, _ := p.Line(l); ph != "" {
			got = append(got, ph)
		}
	}
	if strings.Join(got, ";") != "customizing" {
		t.Errorf("phases = %q, want one customizing", got)
	}
}
