package gpu

import (
	"fmt"
	"strings"
	"unicode"
)

// Types are the GPU types Modal takes in gpu=, in Modal's spelling, plus
// "any". Requests are upper-cased, so "any" is matched as "ANY".
var Types = []string{"any", "T4", "L4", "A10G", "A100", "A100-40GB", "A100-80GB", "L40S", "H100", "H100!", "H200", "B200"}

// typeRule says which GPU models (as the driver names them, e.g. "NVIDIA
// A100-SXM4-80GB", "Tesla T4", "NVIDIA H100 80GB HBM3") serve a type. Model
// names are split into upper-cased words at every non-alphanumeric rune, so
// "L4" never matches "L40S" and "A100" never matches "A1000".
type typeRule struct {
	name  string   // Modal's spelling
	anyOf []string // the model has one of these words
	allOf []string // ... and all of these
}

// rules in the order in which suggestions are tried: the most specific name
// of a model first.
var rules = []typeRule{
	{name: "T4", anyOf: []string{"T4"}},
	{name: "L4", anyOf: []string{"L4"}},
	// Modal's A10G is AWS's variant of the A10 (same GA102 chip, 24 GB);
	// both serve "A10G".
	{name: "A10G", anyOf: []string{"A10G", "A10"}},
	{name: "A100-80GB", anyOf: []string{"A100"}, allOf: []string{"80GB"}},
	{name: "A100-40GB", anyOf: []string{"A100"}, allOf: []string{"40GB"}},
	// "A100" is either size: Modal may run it on an 80 GB card.
	{name: "A100", anyOf: []string{"A100"}},
	{name: "L40S", anyOf: []string{"L40S"}},
	{name: "H200", anyOf: []string{"H200"}},
	// "H100" may run on an H200, as Modal upgrades it; "H100!" may not.
	{name: "H100!", anyOf: []string{"H100"}},
	{name: "H100", anyOf: []string{"H100", "H200"}},
	{name: "B200", anyOf: []string{"B200"}},
}

func ruleFor(typ string) (typeRule, bool) {
	for _, r := range rules {
		if strings.EqualFold(r.name, typ) {
			return r, true
		}
	}
	return typeRule{}, false
}

// Validate reports an unknown GPU type: `unknown GPU type "V100" in gpu="V100":
// use one of any, T4, L4, ...`. ParseRequest does not check the type (Modal's
// client does not either); Resolve does.
func (r Request) Validate() error {
	if r.Type == "ANY" {
		return nil
	}
	if _, ok := ruleFor(r.Type); !ok {
		return fmt.Errorf("unknown GPU type %q in gpu=%q: use one of %s, with an optional \":N\" count", r.Type, r.String(), strings.Join(Types, ", "))
	}
	return nil
}

// Matches reports whether a GPU whose driver model name is model can serve
// the request's type (the count is not looked at). "ANY" matches every
// model, even an empty (unknown) one; other types never match an unknown
// model. Matching is by words of the model name: "A100-80GB" needs the words
// A100 and 80GB, "A100" takes both sizes, "H100" takes an H100 or an H200
// (Modal's automatic upgrade; "H100!" takes an H100 only), "A10G" takes an
// A10G or an A10.
func (r Request) Matches(model string) bool {
	if r.Type == "ANY" {
		return true
	}
	rule, ok := ruleFor(r.Type)
	if !ok {
		return false
	}
	return rule.matches(modelWords(model))
}

func (t typeRule) matches(words map[string]bool) bool {
	hit := false
	for _, w := range t.anyOf {
		if words[w] {
			hit = true
			break
		}
	}
	if !hit {
		return false
	}
	for _, w := range t.allOf {
		if !words[w] {
			return false
		}
	}
	return true
}

func modelWords(model string) map[string]bool {
	words := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToUpper(model), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		words[w] = true
	}
	return words
}

// TypeOf returns the Modal type that names a GPU model most exactly
// ("NVIDIA A100-SXM4-80GB" -> "A100-80GB", "NVIDIA H200" -> "H200"), or ""
// when no Modal type names it.
func TypeOf(model string) string {
	words := modelWords(model)
	for _, r := range rules {
		if r.name == "H100" { // an upgrade, never the name of a model
			continue
		}
		if r.matches(words) {
			return strings.TrimSuffix(r.name, "!")
		}
	}
	return ""
}

// ParseList parses a gpu= value that may be a list of fallbacks, written as
// Join writes it: requests separated by commas ("H100,A100-80GB:2"). A value
// without a comma is one request, as ParseRequest parses it. Errors are
// ParseRequest's.
func ParseList(s string) ([]Request, error) {
	return ParseRequests(strings.Split(s, ","))
}

// ParseRequests parses a list of gpu= values (Modal's gpu=["H100", "A100"]):
// the first one the host can serve is used. An empty list is an error.
func ParseRequests(values []string) ([]Request, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("empty GPU list: use e.g. [\"H100\", \"A100\"]")
	}
	reqs := make([]Request, 0, len(values))
	for _, v := range values {
		r, err := ParseRequest(v)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// Join renders requests in the form ParseList reads: "A100:2" for one,
// "H100,A100-80GB:2" for a list. For one request it is Request.String, so a
// single request keeps its old cache key.
func Join(reqs []Request) string {
	parts := make([]string, len(reqs))
	for i, r := range reqs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// quote renders requests for error messages: gpu="A100:2" or
// gpu=["H100", "A100"].
func quote(reqs []Request) string {
	if len(reqs) == 1 {
		return fmt.Sprintf("gpu=%q", reqs[0].String())
	}
	parts := make([]string, len(reqs))
	for i, r := range reqs {
		parts[i] = fmt.Sprintf("%q", r.String())
	}
	return "gpu=[" + strings.Join(parts, ", ") + "]"
}
