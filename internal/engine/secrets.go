package engine

import (
	"sort"
	"strings"
)

// redactor masks secret values in build output.
type redactor struct{ r *strings.Replacer }

func newRedactor(vars map[string]string) redactor {
	var pairs []string
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	// Longer values first, so that one value inside another is masked whole.
	sort.Slice(keys, func(i, j int) bool { return len(vars[keys[i]]) > len(vars[keys[j]]) })
	for _, k := range keys {
		if v := vars[k]; len(v) >= 3 {
			pairs = append(pairs, v, "[secret "+k+"]")
		}
	}
	if len(pairs) == 0 {
		return redactor{}
	}
	return redactor{strings.NewReplacer(pairs...)}
}

func (r redactor) mask(s string) string {
	if r.r == nil {
		return s
	}
	return r.r.Replace(s)
}
