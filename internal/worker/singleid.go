package worker

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/snapbuild/snapbuild/sandbox"
)

// aptSingleIDConf is where a step in single-ID mode finds the apt
// configuration that keeps apt from dropping to its _apt sandbox user,
// whose uid (42 in Debian) the namespace does not map. The worker removes
// the mount point before the diff, as for any mount.
const aptSingleIDConf = "/.snapbuild-userns/apt.conf"

// aptSingleID points apt at a configuration that runs its downloads as
// root (APT::Sandbox::User "root", what apt itself falls back to, with a
// warning, when _apt does not exist), for a step in single-ID mode
// (sandbox.SingleID). The configuration includes the one env already names
// in APT_CONFIG (a package cache's, or the step's own), so nothing else
// changes. It is the worker's, outside the op: no cache key changes. It
// returns the bind mount of the file, a new file in dir (the caller
// removes it after the step), and env with
// APT_CONFIG replaced.
func aptSingleID(dir string, env []string) (sandbox.BindMount, []string, error) {
	conf := "// Written by snapbuild: single-ID mode maps no _apt user.\nAPT::Sandbox::User \"root\";\n"
	i := slices.IndexFunc(env, hasName("APT_CONFIG"))
	if i >= 0 {
		if prev := strings.TrimPrefix(env[i], "APT_CONFIG="); prev != "" {
			conf += fmt.Sprintf("#include %q;\n", prev)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return sandbox.BindMount{}, nil, err
	}
	f, err := os.CreateTemp(dir, "apt-*.conf")
	if err != nil {
		return sandbox.BindMount{}, nil, err
	}
	p := f.Name()
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(p, 0o644)
	}
	if err != nil {
		os.Remove(p)
		return sandbox.BindMount{}, nil, err
	}
	env = slices.Clone(env)
	if i >= 0 {
		env[i] = "APT_CONFIG=" + aptSingleIDConf
	} else {
		env = append(env, "APT_CONFIG="+aptSingleIDConf)
	}
	return sandbox.BindMount{Source: p, Destination: aptSingleIDConf, ReadOnly: true}, env, nil
}

// singleIDRefusals are the messages of the tools a step runs when it asks
// for an ID the single-ID namespace does not map, as they print them: the
// kernel's EINVAL for an unmapped ID in chown, setuid and setgroups, and
// EPERM for setgroups (denied in the namespace). They are matched against
// the last lines of a failed step's output.
var singleIDRefusals = []string{
	// coreutils chown/chgrp (a package's postinst chgrp to its own
	// group), install -o, dpkg ("error setting ownership").
	"changing ownership of",
	"changing group of",
	"error setting ownership",
	// su, runuser, setpriv, apt's sandbox drop ("setgroups 65534 failed").
	"setgroups",
	"cannot set groups",
	"setresuid",
	"setresgid",
	"setuid",
	"setgid",
	"failed to set user credentials",
	// useradd/groupadd of an ID the map lacks.
	"invalid user ID",
	"chown",
}

// singleIDCause reports the first line of tail (a failed step's last lines)
// that shows the step asked for an unmapped ID, or "" when none does.
// apt's warnings ("W: chown to root:adm of file /var/log/apt/term.log
// failed"), which every apt run prints in single-ID mode, are no cause.
func singleIDCause(tail []string) string {
	for i := range tail {
		if strings.HasPrefix(tail[i], "W: ") {
			continue
		}
		l := strings.ToLower(tail[i])
		if !strings.Contains(l, "invalid argument") && !strings.Contains(l, "operation not permitted") {
			continue
		}
		for _, r := range singleIDRefusals {
			if strings.Contains(l, strings.ToLower(r)) {
				return tail[i]
			}
		}
	}
	return ""
}
