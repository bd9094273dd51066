package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// clipEvents is an entry with two instructions: the first prints lines
// lines of width bytes (newline included), the second one line.
func clipEvents(lines, width int) []Event {
	base := Event{Entry: 2, Entries: 3, Step: 4, Total: 6, Instruction: "RUN yes | head"}
	evs := []Event{{Kind: EventEntryStart, Entry: 2, Entries: 3, Label: `run_commands("yes | head")`}}
	start := base
	start.Kind = EventStart
	evs = append(evs, start)
	body := strings.Repeat("y", width-1)
	for i := 0; i < lines; i++ {
		evs = append(evs, base.output(body))
	}
	done := base
	done.Kind = EventDone
	evs = append(evs, done)
	next := Event{Kind: EventStart, Entry: 2, Entries: 3, Step: 5, Total: 6, Instruction: "RUN echo after"}
	evs = append(evs, next, next.output("after"))
	next.Kind = EventDone
	return append(evs, next, Event{Kind: EventEntryDone, Entry: 2, Entries: 3})
}

func TestPlainProgressClips(t *testing.T) {
	for _, tc := range []struct {
		name         string
		limit        int // 0: the default
		lines, width int
		shown        int // lines of output shown
		note         string
	}{
		{name: "under the limit", lines: 100, width: 100, shown: 100},
		{name: "at the limit", limit: 1000, lines: 10, width: 100, shown: 10},
		{name: "over a small limit", limit: 1000, lines: 25, width: 100, shown: 10,
			note: "#2 [output clipped, log limit 1000B reached]\n#2 [output clipped: 1.46KiB in 15 lines not shown]\n"},
		{name: "over the default (2MiB)", lines: 30000, width: 100, shown: 20971,
			note: "#2 [output clipped, log limit 2MiB reached]\n#2 [output clipped: 881.74KiB in 9029 lines not shown]\n"},
		{name: "no limit", limit: -1, lines: 30000, width: 100, shown: 30000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []ProgressOption
			if tc.limit != 0 {
				opts = append(opts, StepLogLimit(tc.limit))
			}
			var buf bytes.Buffer
			p := NewPlainProgress(&buf, opts...)
			for _, e := range clipEvents(tc.lines, tc.width) {
				p.Event(e)
			}
			out := buf.String()
			body := "#2 " + strings.Repeat("y", tc.width-1) + "\n"
			if n := strings.Count(out, body); n != tc.shown {
				t.Errorf("%d lines of output shown, want %d", n, tc.shown)
			}
			if tc.note != "" && !strings.Contains(out, body+tc.note+"#2 RUN echo after\n#2 after\n") {
				t.Errorf("want the output's last line, then %q, then the next instruction unclipped; got the end:\n%s", tc.note, out[max(0, len(out)-400):])
			}
			if tc.note == "" && strings.Contains(out, "clipped") {
				t.Errorf("clipped output:\n%s", out[max(0, len(out)-400):])
			}
			if !strings.HasSuffix(out, "#2 after\n#2 DONE 0.00s\n") {
				t.Errorf("the entry did not end as it should:\n%s", out[max(0, len(out)-200):])
			}
		})
	}
}

// TestProgressClipsPerInstruction: each instruction has its own limit,
// also when two run at once, and the TTY and JSON writers clip as the
// plain one does.
func TestProgressClipsPerInstruction(t *testing.T) {
	a := Event{Entry: 1, Entries: 2, Step: 1, Total: 2, Instruction: "RUN a"}
	b := Event{Entry: 2, Entries: 2, Step: 2, Total: 2, Instruction: "RUN b"}
	var evs []Event
	for _, e := range []Event{a, b} {
		s := e
		s.Kind = EventEntryStart
		evs = append(evs, s)
	}
	for i := 0; i < 20; i++ {
		evs = append(evs, a.output(fmt.Sprintf("a%08d", i)), b.output(fmt.Sprintf("b%08d", i)))
	}
	for _, e := range []Event{a, b} {
		d := e
		d.Kind = EventDone
		evs = append(evs, d)
		d.Kind = EventEntryDone
		evs = append(evs, d)
	}
	var plain, tty, js bytes.Buffer
	for _, p := range []Progress{NewPlainProgress(&plain, StepLogLimit(50)), NewTTYProgress(&tty, StepLogLimit(50)), NewJSONProgress(&js, StepLogLimit(50))} {
		for _, e := range evs {
			p.Event(e)
		}
	}
	for num, x := range []string{1: "a", 2: "b"} {
		if num == 0 {
			continue
		}
		for _, out := range []string{plain.String(), tty.String()} {
			for _, want := range []string{
				fmt.Sprintf("#%d %s00000004\n", num, x),
				fmt.Sprintf("#%d [output clipped, log limit 50B reached]\n", num),
				fmt.Sprintf("#%d [output clipped: 150B in 15 lines not shown]\n", num),
			} {
				if !strings.Contains(out, want) {
					t.Errorf("instruction %s: no line %q in:\n%q", x, want, out)
				}
			}
			if strings.Contains(out, x+"00000005") {
				t.Errorf("instruction %s not clipped after 5 lines:\n%q", x, out)
			}
		}
	}
	// A clipped line costs a terminal nothing: no redraw.
	if n := strings.Count(tty.String(), "\x1b[1A"); n > 20 {
		t.Errorf("%d redraws for 40 lines, 28 of them clipped", n)
	}
	var lines []string
	sc := bufio.NewScanner(&js)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == EventOutput {
			lines = append(lines, fmt.Sprintf("%d:%s", e.Entry, e.Line))
		}
	}
	if got := strings.Join(lines, ","); !strings.Contains(got, "1:a00000004,2:b00000004,1:[output clipped, log limit 50B reached],2:[output clipped, log limit 50B reached],1:[output clipped: 150B in 15 lines not shown],2:[output clipped: 150B in 15 lines not shown]") {
		t.Errorf("JSON output lines: %s", got)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int]string{0: "0B", 512: "512B", 1024: "1KiB", 1536: "1.5KiB", 2 << 20: "2MiB", 102400000: "97.66MiB", 5 << 30: "5GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
