package worker

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestSingleIDCause(t *testing.T) {
	for _, c := range []struct {
		tail []string
		want string
	}{
		{[]string{"x", "chown: changing ownership of '/x': Invalid argument"}, "chown: changing ownership of '/x': Invalid argument"},
		{[]string{"E: setgroups 65534 failed - setgroups (1: Operation not permitted)", "E: done"}, "E: setgroups 65534 failed - setgroups (1: Operation not permitted)"},
		{[]string{"dpkg: error processing archive x.deb (--unpack):", " error setting ownership of './usr/share/x': Invalid argument"}, " error setting ownership of './usr/share/x': Invalid argument"},
		{[]string{"su: cannot set groups: Operation not permitted"}, "su: cannot set groups: Operation not permitted"},
		// The first refusal is the cause; apt's warning is not.
		{[]string{
			"Setting up openssh-client (1:9.2p1-2+deb12u10) ...",
			"chgrp: changing group of '/usr/bin/ssh-agent': Invalid argument",
			"dpkg: error processing package openssh-client (--configure):",
			"W: chown to root:adm of file /var/log/apt/term.log failed - OpenLog (22: Invalid argument)",
			"E: Sub-process /usr/bin/dpkg returned an error code (1)",
		}, "chgrp: changing group of '/usr/bin/ssh-agent': Invalid argument"},
		{[]string{"W: chown to root:adm of file /var/log/apt/term.log failed - OpenLog (22: Invalid argument)", "E: Unable to locate package nope"}, ""},
		// Not an ID refusal.
		{[]string{"mkdir: cannot create directory '/x': Operation not permitted"}, ""},
		{[]string{"chown: cannot access '/nope': No such file or directory"}, ""},
		{nil, ""},
	} {
		if got := singleIDCause(c.tail); got != c.want {
			t.Errorf("singleIDCause(%q) = %q, want %q", c.tail, got, c.want)
		}
	}
}

// TestAptSingleID: the configuration sets the sandbox user and includes the
// one APT_CONFIG named before; APT_CONFIG points at the mount.
func TestAptSingleID(t *testing.T) {
	dir := t.TempDir()
	env := []string{"A=1", "APT_CONFIG=/.snapbuild-cache/apt/apt.conf"}
	m, got, err := aptSingleID(dir, env)
	if err != nil {
		t.Fatal(err)
	}
	if m.Destination != aptSingleIDConf || !m.ReadOnly {
		t.Errorf("mount = %+v", m)
	}
	if !slices.Equal(got, []string{"A=1", "APT_CONFIG=" + aptSingleIDConf}) {
		t.Errorf("env = %q", got)
	}
	if env[1] != "APT_CONFIG=/.snapbuild-cache/apt/apt.conf" {
		t.Errorf("the caller's env changed: %q", env)
	}
	b, err := os.ReadFile(m.Source)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`APT::Sandbox::User "root";`, `#include "/.snapbuild-cache/apt/apt.conf";`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("configuration %q lacks %q", b, want)
		}
	}
	m, got, err = aptSingleID(dir, []string{"A=1"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"A=1", "APT_CONFIG=" + aptSingleIDConf}) {
		t.Errorf("env = %q", got)
	}
	if b, _ := os.ReadFile(m.Source); strings.Contains(string(b), "#include") {
		t.Errorf("configuration %q includes a file though none was named", b)
	}
}
