package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Entries that run at once: independent stages of a Dockerfile, whose
// instructions are entries. The events of two or more entries interleave
// between their EventEntryStart and EventEntryDone.

// uOverlapEvents is two entries that overlap: entry 3, a Dockerfile
// instruction (its label is its instruction), silent long enough for a
// heartbeat, and entry 4, an entry of two instructions, the first cached,
// which begins after 3 and ends before it. Their starts, output and ends
// interleave.
func uOverlapEvents() []Event {
	a := Event{Entry: 3, Entries: 9, Total: 10, Method: "dockerfile_commands"}
	b := Event{Entry: 4, Entries: 9, Total: 10, Method: "run_commands"}
	with := func(e Event, f func(*Event)) Event { f(&e); return e }
	return []Event{
		with(a, func(e *Event) { e.Kind, e.Label = EventEntryStart, "RUN make -C a" }),
		with(b, func(e *Event) { e.Kind, e.Label = EventEntryStart, `run_commands("make -C b", "make install")` }),
		with(a, func(e *Event) { e.Kind, e.Step, e.Instruction = EventStart, 3, "RUN make -C a" }),
		with(b, func(e *Event) { e.Kind, e.Step, e.Instruction = EventStart, 4, "RUN make -C b" }),
		with(a, func(e *Event) { e.Kind, e.Step, e.Instruction, e.Line = EventOutput, 3, "RUN make -C a", "cc -c a1.c" }),
		with(b, func(e *Event) { e.Kind, e.Step, e.Instruction, e.Cached = EventDone, 4, "RUN make -C b", true }),
		with(b, func(e *Event) { e.Kind, e.Step, e.Instruction = EventStart, 5, "RUN make install" }),
		with(b, func(e *Event) {
			e.Kind, e.Step, e.Instruction, e.Line = EventOutput, 5, "RUN make install", "install -m 755 b /usr/local/bin"
		}),
		with(a, func(e *Event) { e.Kind, e.Step, e.Duration = EventHeartbeat, 3, 30*time.Second }),
		with(a, func(e *Event) {
			e.Kind, e.Step, e.Instruction, e.Line, e.Detail = EventOutput, 3, "RUN make -C a", "make: Entering directory '/a'", true
		}),
		with(a, func(e *Event) { e.Kind, e.Step, e.Instruction, e.Line = EventOutput, 3, "RUN make -C a", "cc -c a2.c" }),
		with(b, func(e *Event) {
			e.Kind, e.Step, e.Instruction, e.Duration = EventDone, 5, "RUN make install", 1200*time.Millisecond
		}),
		with(b, func(e *Event) { e.Kind, e.Duration = EventEntryDone, 1210*time.Millisecond }),
		with(a, func(e *Event) {
			e.Kind, e.Step, e.Instruction, e.Duration = EventDone, 3, "RUN make -C a", 31450*time.Millisecond
		}),
		with(a, func(e *Event) { e.Kind, e.Duration = EventEntryDone, 31450*time.Millisecond }),
	}
}

// entryOf keeps the events of entry n.
func entryOf(events []Event, n int) []Event {
	var out []Event
	for _, e := range events {
		if e.Entry == n {
			out = append(out, e)
		}
	}
	return out
}

func TestPlainProgressOverlappingEntries(t *testing.T) {
	var buf bytes.Buffer
	p := NewPlainProgress(&buf)
	events := uOverlapEvents()
	for _, e := range events {
		p.Event(e)
	}
	// Each entry keeps its own label (a Dockerfile instruction is not
	// printed twice, another entry's is printed) and its own count of
	// cached instructions.
	want := "#3 [3/9] RUN make -C a\n" +
		`#4 [4/9] run_commands("make -C b", "make install")` + "\n" +
		"#4 RUN make -C b\n" +
		"#3 cc -c a1.c\n" +
		"#4 RUN make install\n" +
		"#4 install -m 755 b /usr/local/bin\n" +
		"#3 still running, 30s\n" +
		"#3 make: Entering directory '/a'\n" +
		"#3 cc -c a2.c\n" +
		"#4 DONE 1.21s (1 of 2 instructions cached)\n" +
		"#3 DONE 31.45s\n"
	if buf.String() != want {
		t.Errorf("plain progress:\n got  %q\n want %q", buf.String(), want)
	}

	// Attributable: the lines starting "#N " are what entry N prints when
	// it runs alone, in the same order.
	for _, n := range []int{3, 4} {
		var alone bytes.Buffer
		q := NewPlainProgress(&alone)
		for _, e := range entryOf(events, n) {
			q.Event(e)
		}
		prefix := "#" + strconv.Itoa(n) + " "
		var got []string
		for _, l := range strings.SplitAfter(buf.String(), "\n") {
			if strings.HasPrefix(l, prefix) {
				got = append(got, l)
			}
		}
		if strings.Join(got, "") != alone.String() {
			t.Errorf("entry %d's lines in the interleaved output:\n%q\nwhen it runs alone:\n%q", n, strings.Join(got, ""), alone.String())
		}
	}
}

func TestJSONProgressOverlappingEntries(t *testing.T) {
	var buf bytes.Buffer
	p := NewJSONProgress(&buf)
	events := uOverlapEvents()
	for _, e := range events {
		p.Event(e)
	}
	// One object per event, in the order sent, the detail line and the
	// heartbeat included; each names its entry.
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(events), buf.String())
	}
	for i, l := range lines {
		var e Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		if !reflect.DeepEqual(e, events[i]) {
			t.Errorf("line %d round-trips to %+v, want %+v", i, e, events[i])
		}
	}
	if want := `{"kind":"heartbeat","step":3,"total":10,"instruction":"","entry":3,"entries":9,"method":"dockerfile_commands","duration":30000000000}`; lines[8] != want {
		t.Errorf("heartbeat of entry 3:\n got  %s\n want %s", lines[8], want)
	}
}

// uScreen is what a terminal shows of what was written to it: it keeps
// the text of each line and follows the cursor through "\r", "\n", erase
// to the end of the line (ESC [K) and cursor up (ESC [nA); colours are
// dropped. A write past the end of a line never wraps (the status lines
// are cut to the width).
type uScreen struct {
	lines    [][]rune
	row, col int
}

func (s *uScreen) write(t *testing.T, out string) {
	t.Helper()
	if len(s.lines) == 0 {
		s.lines = [][]rune{nil}
	}
	r := []rune(out)
	for i := 0; i < len(r); i++ {
		switch c := r[i]; c {
		case '\r':
			s.col = 0
		case '\n':
			s.row, s.col = s.row+1, 0
			if s.row == len(s.lines) {
				s.lines = append(s.lines, nil)
			}
		case '\x1b':
			if i+1 >= len(r) || r[i+1] != '[' {
				t.Fatalf("escape without CSI at %d: %q", i, string(r[i:]))
			}
			j := i + 2
			for j < len(r) && (r[j] >= '0' && r[j] <= '9' || r[j] == ';') {
				j++
			}
			if j == len(r) {
				t.Fatalf("unterminated escape: %q", string(r[i:]))
			}
			param := string(r[i+2 : j])
			switch r[j] {
			case 'm':
			case 'K':
				if param != "" && param != "0" {
					t.Fatalf("ESC[%sK", param)
				}
				if s.col < len(s.lines[s.row]) {
					s.lines[s.row] = s.lines[s.row][:s.col]
				}
			case 'A':
				n := 1
				if param != "" {
					n, _ = strconv.Atoi(param)
				}
				if s.row-n < 0 {
					t.Fatalf("cursor up %d from row %d", n, s.row)
				}
				s.row -= n
			default:
				t.Fatalf("unexpected escape %q", string(r[i:j+1]))
			}
			i = j
		default:
			line := s.lines[s.row]
			for len(line) < s.col {
				line = append(line, ' ')
			}
			if s.col < len(line) {
				line[s.col] = c
			} else {
				line = append(line, c)
			}
			s.lines[s.row], s.col = line, s.col+1
		}
	}
}

// text is the screen's lines; a last empty line (the cursor at the start
// of a new line) is left out.
func (s *uScreen) text() []string {
	var out []string
	for _, l := range s.lines {
		out = append(out, string(l))
	}
	if n := len(out); n > 0 && out[n-1] == "" {
		out = out[:n-1]
	}
	return out
}

// screenOf renders everything written to w so far.
func screenOf(t *testing.T, w *uSafeBuffer) []string {
	t.Helper()
	var s uScreen
	s.write(t, w.String())
	return s.text()
}

// The terminal shows a status line per running entry, in the order they
// began, below the printed lines; each line printed while they show
// replaces them and they come back below it; an entry's status line goes
// when it ends; of more than 4 running entries the last line counts the
// others; nothing stays on the screen or is written once the last entry
// ends.
func TestTTYProgressOverlappingEntries(t *testing.T) {
	var w uSafeBuffer
	clock := &uClock{t: time.Unix(1000, 0)}
	p := uTTY(&w, clock)
	ev := uOverlapEvents()
	p.Event(ev[0]) // entry 3 begins
	clock.add(time.Second)
	for _, e := range ev[1:5] { // entry 4 begins, both start an instruction, 3 prints a line
		p.Event(e)
	}
	clock.add(2 * time.Second)
	// One redraw: both status lines are erased (the cursor ends the
	// second: erase it, go up, erase the first) and drawn again.
	redraw := "\r\x1b[K\x1b[1A\x1b[K" +
		"\x1b[2m#3 [3/9] 3.0s RUN make -C a\x1b[0m\n" +
		"\x1b[2m#4 [4/9] 2.0s RUN make -C b\x1b[0m"
	waitFor(t, "a redraw of two status lines", func() bool { return strings.HasSuffix(w.String(), redraw) })
	printed := []string{
		"#3 [3/9] RUN make -C a",
		`#4 [4/9] run_commands("make -C b", "make install")`,
		"#4 RUN make -C b",
		"#3 cc -c a1.c",
	}
	wantScreen := func(what string, status ...string) {
		t.Helper()
		want := append(append([]string(nil), printed...), status...)
		if got := screenOf(t, &w); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the screen shows\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	wantScreen("two running entries", "#3 [3/9] 3.0s RUN make -C a", "#4 [4/9] 2.0s RUN make -C b")

	// Entry 4's first instruction is cached, its next one runs and
	// prints; 3's heartbeat and detail line are left out.
	for _, e := range ev[5:11] {
		p.Event(e)
	}
	printed = append(printed, "#4 RUN make install", "#4 install -m 755 b /usr/local/bin", "#3 cc -c a2.c")
	wantScreen("entry 4 runs its second instruction", "#3 [3/9] 3.0s RUN make -C a", "#4 [4/9] 2.0s RUN make install")
	if out := w.String(); strings.Contains(out, "still running") || strings.Contains(out, "Entering directory") {
		t.Errorf("a heartbeat or detail line on the terminal:\n%q", out)
	}
	// A printed line starts where the status lines were.
	if !strings.Contains(w.String(), "\r\x1b[K\x1b[1A\x1b[K#3 cc -c a2.c\n\x1b[2m#3 [3/9]") {
		t.Errorf("a line is not printed over the erased status lines:\n%q", w.String())
	}

	// Entry 4 ends: its status line goes, 3's stays and is redrawn alone.
	p.Event(ev[11])
	p.Event(ev[12])
	printed = append(printed, "#4 DONE 1.21s (1 of 2 instructions cached)")
	wantScreen("entry 4 ended", "#3 [3/9] 3.0s RUN make -C a")
	clock.add(time.Second)
	waitFor(t, "a redraw of one status line", func() bool {
		return strings.HasSuffix(w.String(), "\r\x1b[K\x1b[2m#3 [3/9] 4.0s RUN make -C a\x1b[0m")
	})

	// Five entries run: three are listed, the last line counts the
	// other two; every line is cut to the terminal's 60 columns.
	for n := 5; n <= 8; n++ {
		label := fmt.Sprintf("RUN step %d", n)
		if n == 6 {
			label = "RUN " + strings.Repeat("x", 100)
		}
		p.Event(Event{Kind: EventEntryStart, Entry: n, Entries: 9, Label: label})
		printed = append(printed, fmt.Sprintf("#%d [%d/9] %s", n, n, label))
	}
	clock.add(time.Second)
	status := []string{
		"#3 [3/9] 5.0s RUN make -C a",
		"#5 [5/9] 1.0s RUN step 5",
		"#6 [6/9] 1.0s RUN " + strings.Repeat("x", 59-len("#6 [6/9] 1.0s RUN ")-1) + "…",
		"+2 more: #7 #8",
	}
	waitFor(t, "a redraw of four status lines", func() bool {
		return strings.HasSuffix(w.String(), "\x1b[2m#3 [3/9] 5.0s RUN make -C a\x1b[0m\n\x1b[2m#5 [5/9] 1.0s RUN step 5\x1b[0m\n"+
			"\x1b[2m"+status[2]+"\x1b[0m\n\x1b[2m+2 more: #7 #8\x1b[0m")
	})
	wantScreen("five running entries", status...)
	if n := utf8.RuneCountInString(status[2]); n != 59 {
		t.Fatalf("the test's status line has %d columns, want 59", n)
	}

	// Entry 3 ends: 5, 6, 7 are listed, and one more.
	p.Event(ev[13])
	p.Event(ev[14])
	printed = append(printed, "#3 DONE 31.45s")
	wantScreen("four running entries after 3 ended",
		"#5 [5/9] 1.0s RUN step 5", status[2], "#7 [7/9] 1.0s RUN step 7", "#8 [8/9] 1.0s RUN step 8")

	// The rest end, out of order.
	for _, n := range []int{7, 5, 8, 6} {
		p.Event(Event{Kind: EventEntryDone, Entry: n, Entries: 9, Cached: true})
		printed = append(printed, fmt.Sprintf("#%d CACHED", n))
	}
	wantScreen("no entry runs")
	if out := w.String(); !strings.HasSuffix(out, "\r\x1b[K#6 \x1b[36mCACHED\x1b[0m\n") {
		t.Errorf("the last entry does not end with its line on an erased status line:\n%q", out[max(0, len(out)-200):])
	}
	if tp := p.(*textProgress); tp.stop != nil || tp.stopped != nil || tp.shown != 0 || len(tp.open) != 0 {
		t.Errorf("after the last entry ended: ticker %v, %d status lines shown, %d entries open", tp.stop != nil, tp.shown, len(tp.open))
	}
	w.mu.Lock()
	n := w.n
	w.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	if w.mu.Lock(); w.n != n {
		t.Errorf("%d writes after the last entry ended", w.n-n)
	}
	w.mu.Unlock()
}

// Each running entry has its own heartbeat: one entry's steady output
// keeps its own quiet, not a silent entry running beside it.
func TestHeartbeatPerEntry(t *testing.T) {
	rec := &uRecorder{}
	sp := &syncProgress{p: rec}
	const every = 20 * time.Millisecond
	busy := Event{Kind: EventEntryStart, Entry: 2, Entries: 3, Label: "RUN make -C b"}
	silent := Event{Kind: EventEntryStart, Entry: 3, Entries: 3, Label: "RUN sleep 60"}
	start := time.Now()
	sp.Event(busy)
	stopBusy := sp.heartbeat(busy, start, every)
	sp.Event(silent)
	stopSilent := sp.heartbeat(silent, start, every)
	var sent []time.Time
	for time.Since(start) < 200*time.Millisecond {
		sent = append(sent, time.Now())
		sp.Event(Event{Kind: EventOutput, Entry: 2, Entries: 3, Line: "cc -c b.c"})
		time.Sleep(2 * time.Millisecond)
	}
	stopBusy()
	stopSilent()
	stopped := time.Now()
	sp.Event(Event{Kind: EventEntryDone, Entry: 2, Entries: 3})
	sp.Event(Event{Kind: EventEntryDone, Entry: 3, Entries: 3})
	if len(sp.last) != 0 {
		t.Errorf("entries still tracked after they ended: %v", sp.last)
	}
	events, at := rec.snapshot()
	beats := map[int]int{}
	for i, e := range events {
		if e.Kind != EventHeartbeat {
			continue
		}
		beats[e.Entry]++
		if e.Entry == 2 && at[i].Before(stopped) {
			// Only where the busy sender itself stalled for an
			// interval (a loaded machine).
			var last time.Time
			for _, s := range sent {
				if s.Before(at[i]) {
					last = s
				}
			}
			if at[i].Sub(last) < every/2 {
				t.Errorf("heartbeat of the busy entry %v after its last output", at[i].Sub(last))
			}
		}
	}
	if beats[3] < 3 {
		t.Errorf("%d heartbeats of the silent entry while the other printed, want >= 3", beats[3])
	}
}
