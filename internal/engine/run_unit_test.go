package engine

import (
	"slices"
	"strings"
	"testing"
)

// TestRunArgv checks Builder.Run's command against Docker's rules for
// ENTRYPOINT, CMD, the arguments of `docker run IMAGE ARG...` and
// --entrypoint.
func TestRunArgv(t *testing.T) {
	ep := []string{"/docker-entrypoint.sh", "--verbose"}
	cmd := []string{"serve", "--port", "80"}
	for _, tc := range []struct {
		name            string
		entrypoint, cmd []string
		args            []string
		o               RunOptions
		want            []string
		wantErr         string
	}{
		{name: "CMD only", cmd: cmd, want: cmd},
		{name: "args replace CMD", cmd: cmd, args: []string{"sh", "-c", "id"}, want: []string{"sh", "-c", "id"}},
		{name: "ENTRYPOINT + CMD", entrypoint: ep, cmd: cmd, want: []string{"/docker-entrypoint.sh", "--verbose", "serve", "--port", "80"}},
		{name: "args follow ENTRYPOINT", entrypoint: ep, cmd: cmd, args: []string{"migrate"}, want: []string{"/docker-entrypoint.sh", "--verbose", "migrate"}},
		{name: "ENTRYPOINT only", entrypoint: ep, want: ep},
		{name: "neither", wantErr: "no ENTRYPOINT or CMD"},
		{name: "--entrypoint drops the image's CMD", entrypoint: ep, cmd: cmd,
			o: RunOptions{Entrypoint: []string{"env"}, ReplaceEntrypoint: true}, want: []string{"env"}},
		{name: "--entrypoint then args", entrypoint: ep, cmd: cmd, args: []string{"-c", "echo hi"},
			o: RunOptions{Entrypoint: []string{"sh"}, ReplaceEntrypoint: true}, want: []string{"sh", "-c", "echo hi"}},
		{name: `--entrypoint "" runs args alone`, entrypoint: ep, cmd: cmd, args: []string{"ls", "/"},
			o: RunOptions{ReplaceEntrypoint: true}, want: []string{"ls", "/"}},
		{name: `--entrypoint "" without args`, entrypoint: ep, cmd: cmd,
			o: RunOptions{ReplaceEntrypoint: true}, wantErr: "an empty entrypoint clears the image's ENTRYPOINT and CMD"},
		{name: "Entrypoint ignored without ReplaceEntrypoint", entrypoint: ep, cmd: cmd,
			o: RunOptions{Entrypoint: []string{"sh"}}, want: []string{"/docker-entrypoint.sh", "--verbose", "serve", "--port", "80"}},
		{name: "empty program name", args: []string{"x"},
			o: RunOptions{Entrypoint: []string{""}, ReplaceEntrypoint: true}, wantErr: "program name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entrypoint, cmdCopy := slices.Clone(tc.entrypoint), slices.Clone(tc.cmd)
			got, err := runArgv(tc.entrypoint, tc.cmd, tc.args, tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("runArgv() = %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("runArgv() = %q, %v; want %q", got, err, tc.want)
			}
			if !slices.Equal(tc.entrypoint, entrypoint) || !slices.Equal(tc.cmd, cmdCopy) {
				t.Errorf("runArgv changed the image config: entrypoint %q, cmd %q", tc.entrypoint, tc.cmd)
			}
		})
	}
}
