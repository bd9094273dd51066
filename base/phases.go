package base

import (
	"fmt"
	"regexp"
	"strings"
)

// BootstrapPhases reads mmdebstrap's --verbose output (what Bootstrap writes
// to its log), one line at a time, and tells the phases of the bootstrap
// apart from the detail: apt's and dpkg's messages, dpkg's warnings,
// mmdebstrap's own "I:" and "W:" lines.
//
// The phases of a Debian base, in order:
//
//	updating package lists
//	downloading 69 essential packages (29.7 MB)
//	unpacking the essential packages
//	configuring the essential packages
//	downloading 108 more packages (104 MB)
//	unpacking 108 packages
//	configuring 108 packages
//	customizing
//	cleaning up
//
// The zero value is ready to use. It is not safe for concurrent use.
type BootstrapPhases struct {
	stage   stage
	count   int    // packages apt said it installs in this stage
	extra   string // the part of the remaining stage last reported
	hooking bool   // a customize hook was reported
}

type stage int

const (
	stageNone stage = iota
	stageUpdate
	stageEssentialDownload
	stageEssentialUnpack
	stageEssentialConfigure
	stageRemaining
	stageCustomize
	stageCleanup
)

var (
	newlyInstalledRE = regexp.MustCompile(`^\d+ upgraded, (\d+) newly installed`)
	needToGetRE      = regexp.MustCompile(`^Need to get (.+?) of archives\.`)
)

// Line classifies one line (without its newline). phase is the phase the
// line begins, or "" when it begins none. detail is false for lines that
// report an error ("E: " lines from mmdebstrap and apt, dpkg's errors) and
// true for every other line.
func (p *BootstrapPhases) Line(line string) (phase string, detail bool) {
	detail = !isError(line)
	switch {
	case strings.HasPrefix(line, "I: running apt-get update"):
		p.stage = stageUpdate
		return "updating package lists", detail
	case strings.HasPrefix(line, "I: downloading packages with apt"):
		p.stage, p.count = stageEssentialDownload, 0
	case strings.HasPrefix(line, "I: extracting archives"):
		p.stage = stageEssentialUnpack
		return "unpacking the essential packages", detail
	case strings.HasPrefix(line, "I: installing essential packages"):
		p.stage = stageEssentialConfigure
		return "configuring the essential packages", detail
	case strings.HasPrefix(line, "I: installing remaining packages"):
		p.stage, p.count, p.extra = stageRemaining, 0, ""
	case strings.HasPrefix(line, "I: running --customize-hook"), strings.HasPrefix(line, "I: running special hook"):
		p.stage = stageCustomize
		if !p.hooking {
			p.hooking = true
			return "customizing", detail
		}
	case strings.HasPrefix(line, "I: cleaning package lists"):
		p.stage = stageCleanup
		return "cleaning up", detail
	}
	if m := newlyInstalledRE.FindStringSubmatch(line); m != nil {
		fmt.Sscan(m[1], &p.count)
		return "", detail
	}
	if m := needToGetRE.FindStringSubmatch(line); m != nil {
		switch p.stage {
		case stageEssentialDownload:
			return fmt.Sprintf("downloading %d essential packages (%s)", p.count, m[1]), detail
		case stageRemaining:
			p.extra = "download"
			return fmt.Sprintf("downloading %d more packages (%s)", p.count, m[1]), detail
		}
	}
	if p.stage == stageRemaining {
		// apt in the chroot unpacks all, then configures all.
		switch {
		case strings.HasPrefix(line, "Unpacking ") && p.extra != "unpack" && p.extra != "configure":
			p.extra = "unpack"
			return fmt.Sprintf("unpacking %d packages", p.count), detail
		case strings.HasPrefix(line, "Setting up ") && p.extra != "configure":
			p.extra = "configure"
			return fmt.Sprintf("configuring %d packages", p.count), detail
		}
	}
	return "", detail
}

// isError reports whether an output line of mmdebstrap reports an error.
func isError(line string) bool {
	return strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "dpkg: error") ||
		strings.HasPrefix(line, "Errors were encountered")
}
