package snapbuild

import (
	"strings"
	"testing"
)

func TestGPUOption(t *testing.T) {
	base := uBase(t)
	for _, tc := range []struct {
		requests []string
		want     string
	}{
		{[]string{"t4"}, "T4"},
		{[]string{"a100:2"}, "A100:2"},
		{[]string{"H100", "a100-80gb:2", "any"}, "H100,A100-80GB:2,ANY"},
		{[]string{"h100!"}, "H100!"},
	} {
		img := base.RunCommands([]string{"true"}, GPU(tc.requests...))
		if err := img.Err(); err != nil {
			t.Errorf("GPU(%q): %v", tc.requests, err)
			continue
		}
		if got := img.layers[len(img.layers)-1].GPU; got != tc.want {
			t.Errorf("GPU(%q) = %q, want %q", tc.requests, got, tc.want)
		}
	}
	for _, tc := range []struct {
		requests []string
		want     string
	}{
		{[]string{"V100"}, `run_commands: unknown GPU type "V100" in gpu="V100"`},
		{[]string{"T4:x"}, "run_commands: Invalid GPU count: x. Value must be an integer."},
		{[]string{"H100", ""}, "run_commands: empty GPU type"},
		{nil, "run_commands: empty GPU list"},
	} {
		err := base.RunCommands([]string{"true"}, GPU(tc.requests...)).Err()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("GPU(%q): error %v, want prefix %q", tc.requests, err, tc.want)
		}
	}
}
