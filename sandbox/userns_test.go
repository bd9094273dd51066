package sandbox

import (
	"errors"
	"strings"
	"testing"
)

// TestChooseUserNS: which mapping each mode makes, given whether the
// subordinate IDs are usable.
func TestChooseUserNS(t *testing.T) {
	noRange := errors.New("/etc/subuid gives user u 0 subordinate IDs, need at least 65536")
	for _, c := range []struct {
		mode       UserNSMode
		subErr     error
		wantSingle bool
		wantWarn   string // "" for none
		wantErr    string // "" for none
	}{
		{UserNSAuto, nil, false, "", ""},
		{"", nil, false, "", ""},
		{UserNSAuto, noRange, true, noRange.Error(), ""},
		{"", noRange, true, noRange.Error(), ""},
		{UserNSSubIDs, nil, false, "", ""},
		{UserNSSubIDs, noRange, false, "", noRange.Error()},
		{UserNSSingle, nil, true, "", ""},
		{UserNSSingle, noRange, true, "", ""},
		{"two", nil, false, "", `unknown user namespace mode`},
	} {
		got, err := chooseUserNS(c.mode, c.subErr)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("chooseUserNS(%q, %v) error = %v, want one containing %q", c.mode, c.subErr, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("chooseUserNS(%q, %v) error = %v", c.mode, c.subErr, err)
			continue
		}
		if got.single != c.wantSingle || got.warn != c.wantWarn {
			t.Errorf("chooseUserNS(%q, %v) = %+v, want single=%v warn=%q", c.mode, c.subErr, got, c.wantSingle, c.wantWarn)
		}
	}
}

func TestParseUserNSMode(t *testing.T) {
	for in, want := range map[string]UserNSMode{"": UserNSAuto, "auto": UserNSAuto, "subids": UserNSSubIDs, "single": UserNSSingle} {
		if got, err := ParseUserNSMode(in); err != nil || got != want {
			t.Errorf("ParseUserNSMode(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"Single", "keep-id", "host"} {
		_, err := ParseUserNSMode(in)
		if err == nil || !strings.Contains(err.Error(), "SNAPBUILD_USERNS=") || !strings.Contains(err.Error(), `"single"`) {
			t.Errorf("ParseUserNSMode(%q) error = %v, want one naming the variable and the choices", in, err)
		}
	}
}

// TestSingleIDError: the error names the mode, the variable and the fix,
// and wraps ErrSingleID.
func TestSingleIDError(t *testing.T) {
	t.Setenv(EnvUserNS, "")
	err := SingleIDError("USER nobody (uid 65534, gid 65534)")
	if !errors.Is(err, ErrSingleID) {
		t.Errorf("SingleIDError does not wrap ErrSingleID: %v", err)
	}
	for _, want := range []string{"USER nobody", "single-ID mode (no usable subordinate ID range)", "usermod --add-subuids", "SNAPBUILD_USERNS=auto"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("SingleIDError = %q, want it to contain %q", err, want)
		}
	}
	t.Setenv(EnvUserNS, "single")
	if err := SingleIDError("chown"); !strings.Contains(err.Error(), "single-ID mode (SNAPBUILD_USERNS=single)") {
		t.Errorf("SingleIDError with SNAPBUILD_USERNS=single = %q, want it to name the variable as the cause", err)
	}
}

// TestSingleIDFix: a user who chose single-ID mode and has a usable range
// is told to drop the choice, not to add a second range.
func TestSingleIDFix(t *testing.T) {
	noRange := errors.New("/etc/subuid gives user u 0 subordinate IDs")
	for _, c := range []struct {
		explicit      bool
		subErr        error
		want, notWant string
	}{
		{true, nil, "unset SNAPBUILD_USERNS", "usermod"},
		{true, noRange, "usermod --add-subuids 165536-231071 --add-subgids 165536-231071 u", "unset"},
		{false, noRange, "usermod --add-subuids 165536-231071", "unset"},
		{false, nil, "usermod --add-subuids", "unset"},
	} {
		got := singleIDFix(c.explicit, c.subErr, "u", 165536)
		if !strings.Contains(got, c.want) || strings.Contains(got, c.notWant) {
			t.Errorf("singleIDFix(%v, %v) = %q, want it to contain %q and not %q", c.explicit, c.subErr, got, c.want, c.notWant)
		}
	}
}

// TestShareProc: the fallback spec has no PID namespace and binds /proc.
func TestShareProc(t *testing.T) {
	spec, err := runtimeSpec(Spec{ID: "t", StateDir: "/s", Rootfs: "/r", Args: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	shareProc(spec)
	shareUTS(spec)
	for _, n := range spec.Linux.Namespaces {
		if n.Type == "pid" || n.Type == "uts" {
			t.Errorf("namespace %s kept", n.Type)
		}
	}
	if spec.Hostname != "" {
		t.Errorf("hostname %q kept without a UTS namespace", spec.Hostname)
	}
	found := false
	for _, m := range spec.Mounts {
		if m.Destination == "/proc" {
			found = true
			if m.Type != "bind" || m.Source != "/proc" || m.Options[0] != "rbind" {
				t.Errorf("/proc mount = %+v, want an rbind of /proc", m)
			}
		}
	}
	if !found {
		t.Error("no /proc mount")
	}
}
