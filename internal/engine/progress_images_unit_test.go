package engine

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestPlainProgressImages: two labelled builds (Event.Image) run at once,
// each with its own entry 1. Their entries are numbered in one sequence in
// the order they start, each header names the build, and every line of an
// entry carries its number; an entry of one build does not end the other's.
func TestPlainProgressImages(t *testing.T) {
	web := Event{Image: "web", Entry: 1, Entries: 2, Total: 2, Method: "debian_slim"}
	api := Event{Image: "api", Entry: 1, Entries: 1, Total: 1, Method: "debian_slim"}
	with := func(e Event, f func(*Event)) Event { f(&e); return e }
	events := []Event{
		with(web, func(e *Event) { e.Kind, e.Label = EventEntryStart, "debian_slim()" }),
		with(api, func(e *Event) { e.Kind, e.Label = EventEntryStart, "debian_slim()" }),
		with(web, func(e *Event) { e.Kind, e.Step, e.Instruction, e.Line = EventOutput, 1, "FROM base", "web line" }),
		with(api, func(e *Event) { e.Kind, e.Step, e.Instruction, e.Line = EventOutput, 1, "FROM base", "api line" }),
		with(api, func(e *Event) { e.Kind, e.Duration = EventEntryDone, 2*time.Second }),
		with(web, func(e *Event) { e.Kind, e.Cached = EventEntryDone, true }),
		with(web, func(e *Event) { e.Kind, e.Entry, e.Label = EventEntryStart, 2, "apt_install(['git'])" }),
		with(web, func(e *Event) { e.Kind, e.Entry, e.Duration = EventEntryDone, 2, time.Second }),
	}
	var buf bytes.Buffer
	p := NewPlainProgress(&buf)
	for _, e := range events {
		p.Event(e)
	}
	want := strings.Join([]string{
		"#1 [web 1/2] debian_slim()",
		"#2 [api 1/1] debian_slim()",
		"#1 web line",
		"#2 api line",
		"#2 DONE 2.00s",
		"#1 CACHED",
		"#3 [web 2/2] apt_install(['git'])",
		"#3 DONE 1.00s",
	}, "\n") + "\n"
	if got := buf.String(); got != want {
		t.Errorf("plain progress of two builds:\n%s\nwant:\n%s", got, want)
	}
}

// TestClipPerImage: the log limit applies to each build's instruction on its
// own: entry 1 of one build reaching it does not clip entry 1 of another.
func TestClipPerImage(t *testing.T) {
	var buf bytes.Buffer
	p := NewPlainProgress(&buf, StepLogLimit(10))
	long := strings.Repeat("x", 8)
	for _, img := range []string{"web", "api"} {
		p.Event(Event{Kind: EventOutput, Image: img, Entry: 1, Step: 1, Line: long})
	}
	if got := strings.Count(buf.String(), long); got != 2 {
		t.Errorf("%d of the two builds' first lines shown, want both:\n%s", got, buf.String())
	}
}
