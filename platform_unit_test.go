package snapbuild

import (
	"runtime"
	"strings"
	"testing"
)

func TestValidatePlatform(t *testing.T) {
	host := "linux/" + runtime.GOARCH
	if got := HostPlatform(); got != host {
		t.Errorf("HostPlatform() = %q, want %q", got, host)
	}
	foreign := "linux/arm64"
	if runtime.GOARCH == "arm64" {
		foreign = "linux/amd64"
	}
	ok := []string{host, runtime.GOARCH, strings.ToUpper(host)}
	if runtime.GOARCH == "amd64" {
		ok = append(ok, "linux/amd64/v1", "linux/x86_64")
	}
	for _, p := range ok {
		if err := ValidatePlatform(p); err != nil {
			t.Errorf("ValidatePlatform(%q) = %v, want nil", p, err)
		}
	}
	for p, want := range map[string][]string{
		foreign:                     {"platform " + foreign + ": ", "host platform only, " + host, "without emulation", "or give " + host},
		"windows/" + runtime.GOARCH: {"platform windows/" + runtime.GOARCH + ": ", "host platform only, " + host},
		"linux/amd64/v1/extra":      {`platform "linux/amd64/v1/extra"`, "give OS/ARCH[/VARIANT], as \"" + host + "\""},
	} {
		err := ValidatePlatform(p)
		if err == nil {
			t.Errorf("ValidatePlatform(%q) = nil, want an error", p)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ValidatePlatform(%q) = %q, want it to say %q", p, err, w)
			}
		}
	}
	if runtime.GOARCH == "amd64" {
		if err := ValidatePlatform("linux/amd64/v3"); err == nil {
			t.Error("ValidatePlatform(linux/amd64/v3) = nil: an image for v3 is another platform")
		}
	}
}
