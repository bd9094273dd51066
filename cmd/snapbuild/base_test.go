package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/snapbuild/snapbuild"
)

func TestWriteBases(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	writeBases(&buf, []snapbuild.BaseInfo{
		{ID: "2ab08802e4f7", Suite: "bookworm", Python: "3.11.2", Release: "Debian 12.8", ArchiveDate: time.Date(2024, 11, 9, 10, 2, 43, 0, time.UTC),
			Built: now.Add(-3 * time.Hour), Size: 161362673, Images: []string{"app", "slim"}, Present: true},
		{ID: "9f00aa11bb22", Suite: "trixie"},
	}, now)
	want := `SUITE     BASE ID       RELEASE      ARCHIVE DATE  PYTHON  BUILT        SIZE      IMAGES
bookworm  2ab08802e4f7  Debian 12.8  2024-11-09    3.11.2  3 hours ago  161.4MB   app,slim
trixie    9f00aa11bb22  (unknown)    -             -       -            (pruned)  -
`
	if got := buf.String(); got != want {
		t.Errorf("writeBases =\n%s\nwant\n%s", got, want)
	}
}

func TestBaseUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"base"}, "snapbuild: base: give a subcommand: ls or update (see 'snapbuild base --help')\n"},
		{[]string{"base", "rm"}, "snapbuild: base: unknown subcommand \"rm\": use ls or update (see 'snapbuild base --help')\n"},
		{[]string{"base", "ls", "bookworm"}, "snapbuild: base ls: unexpected argument \"bookworm\": snapbuild base ls takes only flags\n"},
	} {
		_, errOut, code := runCLI(t, c.args...)
		if code != exitUsage || errOut != c.want {
			t.Errorf("snapbuild %s: exit %d, stderr %q; want %d, %q", strings.Join(c.args, " "), code, errOut, exitUsage, c.want)
		}
	}
	// A store that does not exist pins nothing.
	out, errOut, code := runCLI(t, "base", "ls", "--root", t.TempDir()+"/none", "--json")
	if code != 0 || out != "[]\n" || errOut != "" {
		t.Errorf("base ls of no store: exit %d, %q, %q", code, out, errOut)
	}
}
