package dockerfile

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// foreignArch is an architecture that is not the host's.
func foreignArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

func TestParseAndCheckHostPlatform(t *testing.T) {
	host := "linux/" + runtime.GOARCH
	for _, c := range []struct {
		in      string
		host    bool   // CheckHostPlatform accepts it
		parsed  string // FormatPlatform of what ParsePlatform returns
		badSpec bool   // ParsePlatform refuses it
	}{
		{in: host, host: true, parsed: host},
		{in: runtime.GOARCH, host: true, parsed: host}, // the OS defaults to linux here
		{in: "LINUX/" + strings.ToUpper(runtime.GOARCH), host: true, parsed: host},
		{in: "linux/" + foreignArch(), parsed: "linux/" + foreignArch()},
		{in: "windows/" + runtime.GOARCH, parsed: "windows/" + runtime.GOARCH},
		{in: "linux/arm/v7", parsed: "linux/arm/v7"},
		{in: "linux/amd64/v1/x", badSpec: true},
		{in: "", badSpec: true},
	} {
		p, err := ParsePlatform(c.in)
		if c.badSpec {
			if err == nil || !strings.Contains(err.Error(), "give OS/ARCH[/VARIANT], as \""+host+"\"") {
				t.Errorf("ParsePlatform(%q) = %v, %v; want an error saying what to give", c.in, p, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePlatform(%q): %v", c.in, err)
			continue
		}
		if got := FormatPlatform(p); got != c.parsed {
			t.Errorf("ParsePlatform(%q) = %s, want %s", c.in, got, c.parsed)
		}
		err = CheckHostPlatform(p)
		if (err == nil) != c.host {
			t.Errorf("CheckHostPlatform(%s) = %v, want host %v", c.in, err, c.host)
		}
		if err != nil && !strings.Contains(err.Error(), "host platform only, "+host) {
			t.Errorf("CheckHostPlatform(%s) = %q does not name the host platform %s", c.in, err, host)
		}
	}
	if runtime.GOARCH == "amd64" {
		// A variant names a micro-architecture level: v1 is plain amd64,
		// a higher one is another platform (images built for it say so).
		for in, ok := range map[string]bool{"linux/amd64/v1": true, "linux/x86_64": true, "linux/amd64/v2": false, "linux/amd64/v3": false} {
			p, err := ParsePlatform(in)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckHostPlatform(p); (err == nil) != ok {
				t.Errorf("CheckHostPlatform(%s) = %v, want host %v", in, err, ok)
			}
		}
	}
}

// A FROM --platform that names a platform other than the host's (the build
// platform and, by default, the target) is refused at its line, before the
// image is resolved; $BUILDPLATFORM and $TARGETPLATFORM expand to the host's.
func TestConvertFromPlatform(t *testing.T) {
	foreign := "linux/" + foreignArch()
	host := "linux/" + runtime.GOARCH
	for _, tc := range []struct {
		name       string
		dockerfile string
		buildArgs  map[string]string
		line       int // of the *Error; 0: Convert succeeds
	}{
		{"foreign platform", "FROM --platform=" + foreign + " debian:bookworm\nRUN true\n", nil, 1},
		{"foreign platform of a stage the target copies from",
			"FROM debian:bookworm AS a\nRUN true\nFROM --platform=" + foreign + " alpine:3.20 AS b\nRUN true\nFROM a\nCOPY --from=b /x /x\n", nil, 3},
		{"foreign platform from a global ARG", "ARG P=" + foreign + "\nFROM --platform=$P debian:bookworm\n", nil, 2},
		{"foreign platform from a build arg", "ARG P\nFROM --platform=${P:-" + host + "} debian:bookworm\n", map[string]string{"P": foreign}, 2},
		{"host platform from an ARG default", "ARG P\nFROM --platform=${P:-" + host + "} debian:bookworm\n", nil, 0},
		{"foreign platform of an unused stage", "FROM --platform=" + foreign + " alpine:3.20 AS unused\nRUN true\nFROM debian:bookworm\nRUN true\n", nil, 0},
		{"host platform", "FROM --platform=" + host + " debian:bookworm\nRUN true\n", nil, 0},
		{"BUILDPLATFORM", "FROM --platform=$BUILDPLATFORM debian:bookworm AS build\nRUN true\nFROM --platform=$TARGETPLATFORM alpine:3.20\nCOPY --from=build /x /x\n", nil, 0},
		// BuildKit builds a scratch stage for the target platform,
		// whatever its --platform says, and so does snapbuild.
		{"scratch", "FROM --platform=" + foreign + " scratch\nENV A=1\n", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := newFakeResolver(t)
			res, err := Convert(context.Background(), []byte(tc.dockerfile), Options{MetaResolver: fr, BuildArgs: tc.buildArgs})
			for _, c := range fr.calls {
				if FormatPlatform(c.platform) != host {
					t.Errorf("resolved %s for %s", c.ref, FormatPlatform(c.platform))
				}
			}
			if tc.line == 0 {
				if err != nil {
					t.Fatalf("Convert: %v", err)
				}
				if FormatPlatform(res.Platform) != host || res.Image.OS+"/"+res.Image.Architecture != host {
					t.Errorf("converted for %s, config %s/%s; want %s", FormatPlatform(res.Platform), res.Image.OS, res.Image.Architecture, host)
				}
				return
			}
			if err == nil {
				t.Fatal("Convert succeeded, want an error naming the platform")
			}
			var de *Error
			if !errors.As(err, &de) || de.StartLine != tc.line {
				t.Errorf("error %q (%T): want an *Error at line %d", err, err, tc.line)
			}
			for _, w := range []string{"for " + foreign + " (FROM --platform)", "host platform only, " + host, "without emulation", "--platform=$BUILDPLATFORM"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
