package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func uProgressEvents() []Event {
	return []Event{
		{Kind: EventStart, Step: 2, Total: 5, Instruction: "RUN apt-get update"},
		{Kind: EventOutput, Step: 2, Total: 5, Instruction: "RUN apt-get update", Line: "Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]"},
		{Kind: EventDone, Step: 2, Total: 5, Instruction: "RUN apt-get update", Duration: 2410 * time.Millisecond},
		{Kind: EventStart, Step: 3, Total: 5, Instruction: "ENV GREETING=hello"},
		{Kind: EventDone, Step: 3, Total: 5, Instruction: "ENV GREETING=hello", Cached: true},
		{Kind: EventStart, Step: 4, Total: 5, Instruction: "RUN false"},
		{Kind: EventDone, Step: 4, Total: 5, Instruction: "RUN false", Duration: 500 * time.Millisecond, Error: "step 4 failed"},
	}
}

func TestPlainProgressFormat(t *testing.T) {
	var buf bytes.Buffer
	p := NewPlainProgress(&buf)
	for _, e := range uProgressEvents() {
		p.Event(e)
	}
	want := "#2 [2/5] RUN apt-get update\n" +
		"#2 Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]\n" +
		"#2 DONE 2.41s\n" +
		"#3 [3/5] ENV GREETING=hello\n" +
		"#3 CACHED\n" +
		"#4 [4/5] RUN false\n" +
		"#4 ERROR 0.50s\n"
	if buf.String() != want {
		t.Errorf("plain progress:\n got  %q\n want %q", buf.String(), want)
	}
	if strings.Contains(buf.String(), "\x1b[") {
		t.Error("plain progress has escape codes")
	}
}

func TestTTYProgressFormat(t *testing.T) {
	var buf bytes.Buffer
	p := NewTTYProgress(&buf)
	for _, e := range uProgressEvents() {
		p.Event(e)
	}
	want := "\x1b[1;34m#2 [2/5]\x1b[0m RUN apt-get update\n" +
		"#2 Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]\n" +
		"#2 \x1b[32mDONE\x1b[0m 2.41s\n" +
		"\x1b[1;34m#3 [3/5]\x1b[0m ENV GREETING=hello\n" +
		"#3 \x1b[36mCACHED\x1b[0m\n" +
		"\x1b[1;34m#4 [4/5]\x1b[0m RUN false\n" +
		"#4 \x1b[1;31mERROR\x1b[0m 0.50s\n"
	if buf.String() != want {
		t.Errorf("tty progress:\n got  %q\n want %q", buf.String(), want)
	}
}

func TestJSONProgressFormat(t *testing.T) {
	var buf bytes.Buffer
	p := NewJSONProgress(&buf)
	events := uProgressEvents()
	for _, e := range events {
		p.Event(e)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(events), buf.String())
	}
	wantLines := []string{
		`{"kind":"start","step":2,"total":5,"instruction":"RUN apt-get update"}`,
		`{"kind":"output","step":2,"total":5,"instruction":"RUN apt-get update","line":"Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]"}`,
		`{"kind":"done","step":2,"total":5,"instruction":"RUN apt-get update","duration":2410000000}`,
		`{"kind":"start","step":3,"total":5,"instruction":"ENV GREETING=hello"}`,
		`{"kind":"done","step":3,"total":5,"instruction":"ENV GREETING=hello","cached":true}`,
		`{"kind":"start","step":4,"total":5,"instruction":"RUN false"}`,
		`{"kind":"done","step":4,"total":5,"instruction":"RUN false","duration":500000000,"error":"step 4 failed"}`,
	}
	for i, l := range lines {
		if l != wantLines[i] {
			t.Errorf("line %d:\n got  %s\n want %s", i, l, wantLines[i])
		}
		var e Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		if !reflect.DeepEqual(e, events[i]) {
			t.Errorf("line %d round-trips to %+v, want %+v", i, e, events[i])
		}
	}
}

func TestJSONProgressConcurrent(t *testing.T) {
	var buf bytes.Buffer
	p := NewJSONProgress(&buf)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				p.Event(Event{Kind: EventOutput, Step: g, Line: strings.Repeat("x", 100)})
			}
		}(g)
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	for _, l := range lines {
		var e Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("interleaved output: %q", l)
		}
	}
}

func TestProgressFunc(t *testing.T) {
	var got []Event
	var p Progress = ProgressFunc(func(e Event) { got = append(got, e) })
	p.Event(Event{Kind: EventStart, Step: 1})
	if len(got) != 1 || got[0].Step != 1 {
		t.Errorf("got %+v", got)
	}
}

type uLines struct {
	mu    sync.Mutex
	lines []string
}

func (u *uLines) emit(s string) { u.mu.Lock(); u.lines = append(u.lines, s); u.mu.Unlock() }

func uLineWriter(keep int) (*lineWriter, *uLines) {
	u := &uLines{}
	return &lineWriter{keep: keep, emit: u.emit}, u
}

func TestLineWriterSplitting(t *testing.T) {
	w, u := uLineWriter(20)
	for _, chunk := range []string{"he", "llo\nwor", "ld\n", "\n", "a\r\nb\r\n", "c\rd\n", "(Reading 5%\r(Reading 100%\r\n", "partial"} {
		n, err := w.Write([]byte(chunk))
		if err != nil || n != len(chunk) {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	want := []string{"hello", "world", "", "a", "b", "d", "(Reading 100%"}
	if !reflect.DeepEqual(u.lines, want) {
		t.Errorf("before flush: %q, want %q", u.lines, want)
	}
	w.flush()
	want = append(want, "partial")
	if !reflect.DeepEqual(u.lines, want) {
		t.Errorf("after flush: %q, want %q", u.lines, want)
	}
	w.flush() // nothing left: no extra line
	if len(u.lines) != len(want) {
		t.Errorf("second flush emitted %q", u.lines[len(want):])
	}
	// A partial line ending in \r is trimmed on flush too.
	w.Write([]byte("x\r"))
	w.flush()
	if got := u.lines[len(u.lines)-1]; got != "x" {
		t.Errorf("flushed %q, want %q", got, "x")
	}
	if !reflect.DeepEqual(w.lastLines(), append(want, "x")) {
		t.Errorf("lastLines = %q", w.lastLines())
	}
}

func TestLineWriterTail(t *testing.T) {
	w, u := uLineWriter(3)
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if len(u.lines) != 10 {
		t.Errorf("emitted %d lines, want all 10", len(u.lines))
	}
	tail := w.lastLines()
	if !reflect.DeepEqual(tail, []string{"line 8", "line 9", "line 10"}) {
		t.Errorf("tail = %q", tail)
	}
	tail[0] = "changed"
	if w.lastLines()[0] != "line 8" {
		t.Error("lastLines returned the internal slice")
	}
	empty, _ := uLineWriter(3)
	if l := empty.lastLines(); len(l) != 0 {
		t.Errorf("empty writer tail = %q", l)
	}
}

func TestLineWriterLongLine(t *testing.T) {
	w, u := uLineWriter(2)
	long := strings.Repeat("y", 64<<10+1)
	w.Write([]byte(long))
	if len(u.lines) != 1 || u.lines[0] != long {
		t.Fatalf("a line over 64 KiB without newline was not emitted (got %d lines)", len(u.lines))
	}
	w.Write([]byte("\n"))
	w.flush()
	// Nothing is lost or duplicated (the newline ending the forced line may
	// give one empty line).
	if len(u.lines) > 2 || (len(u.lines) == 2 && u.lines[1] != "") {
		t.Errorf("lines after the long one: %q", u.lines[1:])
	}
	short := strings.Repeat("z", 64<<10) // exactly the limit: kept until newline
	w2, u2 := uLineWriter(2)
	w2.Write([]byte(short))
	if len(u2.lines) != 0 {
		t.Errorf("a 64 KiB partial line was emitted early")
	}
	w2.Write([]byte("\n"))
	if len(u2.lines) != 1 || u2.lines[0] != short {
		t.Errorf("64 KiB line not emitted whole")
	}
}

func TestLineWriterConcurrent(t *testing.T) {
	w, u := uLineWriter(5)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				fmt.Fprintf(w, "g%d-%d\n", g, i)
			}
		}(g)
	}
	wg.Wait()
	w.flush()
	if len(u.lines) != 800 {
		t.Fatalf("%d lines, want 800", len(u.lines))
	}
	seen := map[string]bool{}
	for _, l := range u.lines {
		seen[l] = true
	}
	if len(seen) != 800 {
		t.Errorf("%d distinct lines, want 800 (lines were mixed)", len(seen))
	}
	if len(w.lastLines()) != 5 {
		t.Errorf("tail has %d lines, want 5", len(w.lastLines()))
	}
}

// uEntryEvents is a build of two entries as Builder sends them: a
// debian_slim whose bootstrap prints a phase and a detail line and is
// silent long enough for a heartbeat, and an apt_install whose first RUN is
// cached.
func uEntryEvents() []Event {
	slim := Event{Entry: 1, Entries: 2, Total: 4, Method: "debian_slim"}
	apt := Event{Entry: 2, Entries: 2, Total: 4, Method: "apt_install"}
	with := func(e Event, f func(*Event)) Event { f(&e); return e }
	return []Event{
		with(slim, func(e *Event) {
			e.Kind, e.Label = EventEntryStart, `debian_slim(python_version="3.11"): Debian bookworm base with Python 3.11 (bootstrapped)`
		}),
		with(slim, func(e *Event) { e.Kind, e.Step, e.Instruction = EventStart, 1, "FROM python:3.11-slim-bookworm" }),
		with(slim, func(e *Event) { e.Kind, e.Step, e.Line = EventOutput, 1, "debian: updating package lists" }),
		with(slim, func(e *Event) {
			e.Kind, e.Step, e.Line, e.Detail = EventOutput, 1, "I: running apt-get update...", true
		}),
		with(slim, func(e *Event) { e.Kind, e.Step, e.Duration = EventHeartbeat, 1, 90*time.Second }),
		with(slim, func(e *Event) { e.Kind, e.Step, e.Duration = EventDone, 1, 100*time.Second }),
		with(slim, func(e *Event) { e.Kind, e.Step, e.Instruction = EventStart, 2, `CMD ["sleep", "172800"]` }),
		with(slim, func(e *Event) { e.Kind, e.Step = EventDone, 2 }),
		with(slim, func(e *Event) { e.Kind, e.Duration = EventEntryDone, 100500*time.Millisecond }),
		with(apt, func(e *Event) { e.Kind, e.Label = EventEntryStart, `apt_install(["git"])` }),
		with(apt, func(e *Event) { e.Kind, e.Step, e.Instruction = EventStart, 3, "RUN apt-get update" }),
		with(apt, func(e *Event) { e.Kind, e.Step, e.Cached = EventDone, 3, true }),
		with(apt, func(e *Event) { e.Kind, e.Step, e.Instruction = EventStart, 4, "RUN apt-get install -y git" }),
		with(apt, func(e *Event) { e.Kind, e.Step, e.Line = EventOutput, 4, "Setting up git (1:2.39.5-0+deb12u2) ..." }),
		with(apt, func(e *Event) { e.Kind, e.Step, e.Duration = EventDone, 4, 2600*time.Millisecond }),
		with(apt, func(e *Event) { e.Kind, e.Duration = EventEntryDone, 2610*time.Millisecond }),
	}
}

func TestPlainProgressEntries(t *testing.T) {
	var buf bytes.Buffer
	p := NewPlainProgress(&buf)
	for _, e := range uEntryEvents() {
		p.Event(e)
	}
	want := `#1 [1/2] debian_slim(python_version="3.11"): Debian bookworm base with Python 3.11 (bootstrapped)` + "\n" +
		"#1 FROM python:3.11-slim-bookworm\n" +
		"#1 debian: updating package lists\n" +
		"#1 I: running apt-get update...\n" +
		"#1 still running, 1m30s\n" +
		`#1 CMD ["sleep", "172800"]` + "\n" +
		"#1 DONE 100.50s\n" +
		`#2 [2/2] apt_install(["git"])` + "\n" +
		"#2 RUN apt-get update\n" +
		"#2 RUN apt-get install -y git\n" +
		"#2 Setting up git (1:2.39.5-0+deb12u2) ...\n" +
		"#2 DONE 2.61s (1 of 2 instructions cached)\n"
	if buf.String() != want {
		t.Errorf("plain progress:\n got  %q\n want %q", buf.String(), want)
	}
}

// A Dockerfile entry is its one instruction: it is not printed twice.
func TestPlainProgressDockerfileEntry(t *testing.T) {
	var buf bytes.Buffer
	p := NewPlainProgress(&buf)
	e := Event{Entry: 3, Entries: 9, Step: 5, Total: 9, Method: "dockerfile_commands", Instruction: "RUN make"}
	for _, ev := range []Event{
		{Kind: EventEntryStart, Entry: 3, Entries: 9, Method: e.Method, Label: "RUN make"},
		func() Event { s := e; s.Kind = EventStart; return s }(),
		func() Event { s := e; s.Kind, s.Cached = EventDone, true; return s }(),
		{Kind: EventEntryDone, Entry: 3, Entries: 9, Method: e.Method, Label: "RUN make", Cached: true},
	} {
		p.Event(ev)
	}
	if want := "#3 [3/9] RUN make\n#3 CACHED\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

// uSafeBuffer is a bytes.Buffer that the tty ticker may write concurrently.
type uSafeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	n   int // writes
}

func (b *uSafeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	return b.buf.Write(p)
}

func (b *uSafeBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

// uClock is a clock the test moves.
type uClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *uClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *uClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func uTTY(w *uSafeBuffer, c *uClock) Progress {
	return &textProgress{w: w, color: true, live: true, redraw: 2 * time.Millisecond, width: func() int { return 60 }, now: c.now}
}

// waitFor polls until cond holds, failing the test after 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// The terminal view: detail lines and heartbeats are left out, a status
// line with the entry's elapsed time is redrawn in place (erased before
// any other line prints), and nothing is written once the entry is done.
func TestTTYProgressStatusLine(t *testing.T) {
	var w uSafeBuffer
	clock := &uClock{t: time.Unix(1000, 0)}
	p := uTTY(&w, clock)
	ev := uEntryEvents()
	p.Event(ev[0]) // entry start
	p.Event(ev[1]) // FROM
	clock.add(12300 * time.Millisecond)
	status := "\r\x1b[K\x1b[2m#1 [1/2] 12.3s FROM python:3.11-slim-bookworm\x1b[0m"
	waitFor(t, "a redraw at 12.3s", func() bool { return strings.HasSuffix(w.String(), status) })
	clock.add(78 * time.Second) // 1m30.3s
	waitFor(t, "a redraw at 1m30s", func() bool {
		return strings.HasSuffix(w.String(), "\r\x1b[K\x1b[2m#1 [1/2] 1m30s FROM python:3.11-slim-bookworm\x1b[0m")
	})
	p.Event(ev[2]) // a bootstrap phase: the status line shows it
	waitFor(t, "a redraw with the phase", func() bool {
		return strings.HasSuffix(w.String(), "\r\x1b[K\x1b[2m#1 [1/2] 1m30s debian: updating package lists\x1b[0m")
	})
	// A later phase replaces it.
	later := ev[2]
	later.Line = "debian: unpacking 108 packages"
	p.Event(later)
	waitFor(t, "a redraw with the later phase", func() bool {
		return strings.HasSuffix(w.String(), "\r\x1b[K\x1b[2m#1 [1/2] 1m30s debian: unpacking 108 packages\x1b[0m")
	})
	for _, e := range ev[3:9] {
		p.Event(e)
	}
	out := w.String()
	// Lines print after the status line is erased, and it comes back.
	if !strings.Contains(out, "\r\x1b[K#1 debian: updating package lists\n\x1b[2m#1 [1/2] 1m30s") {
		t.Errorf("phase line not printed over an erased status line:\n%q", out)
	}
	if strings.Contains(out, "I: running apt-get update") || strings.Contains(out, "still running") {
		t.Errorf("detail or heartbeat line on the terminal:\n%q", out)
	}
	if !strings.HasSuffix(out, "\r\x1b[K#1 \x1b[32mDONE\x1b[0m 100.50s\n") {
		t.Errorf("the entry does not end with its DONE line on an erased status line:\n%q", out[max(0, len(out)-200):])
	}
	// The ticker stopped with the entry (its goroutine has returned): no
	// more writes.
	if tp := p.(*textProgress); tp.stop != nil || tp.stopped != nil {
		t.Error("the redraw ticker still runs after the entry ended")
	}
	w.mu.Lock()
	n := w.n
	w.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	if w.mu.Lock(); w.n != n {
		t.Errorf("%d writes after the entry ended", w.n-n)
	}
	w.mu.Unlock()
	// The status line is cut to the terminal's width (60 columns).
	p.Event(Event{Kind: EventEntryStart, Entry: 2, Entries: 2, Label: strings.Repeat("x", 200)})
	waitFor(t, "a status line", func() bool { return strings.HasSuffix(w.String(), "…\x1b[0m") })
	out = w.String()
	last := out[strings.LastIndex(out, "\x1b[2m")+len("\x1b[2m") : len(out)-len("\x1b[0m")]
	if n := utf8.RuneCountInString(last); n != 59 {
		t.Errorf("status line %q has %d columns, want 59", last, n)
	}
	p.Event(Event{Kind: EventEntryDone, Entry: 2, Entries: 2, Error: "boom", Duration: time.Second})
	if out := w.String(); !strings.HasSuffix(out, "\r\x1b[K#2 \x1b[1;31mERROR\x1b[0m 1.00s\n") {
		t.Errorf("failed entry: %q", out[max(0, len(out)-100):])
	}
}

func TestFormatElapsed(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                     "0.0s",
		12345 * time.Millisecond:              "12.3s",
		59900 * time.Millisecond:              "59.9s",
		time.Minute:                           "1m00s",
		90*time.Second + 999*time.Millisecond: "1m30s",
		61 * time.Minute:                      "61m00s",
	} {
		if got := formatElapsed(d); got != want {
			t.Errorf("formatElapsed(%v) = %q, want %q", d, got, want)
		}
	}
}

// uRecorder records events with the time they arrived.
type uRecorder struct {
	mu     sync.Mutex
	events []Event
	at     []time.Time
}

func (r *uRecorder) Event(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	r.at = append(r.at, time.Now())
}

func (r *uRecorder) snapshot() ([]Event, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...), append([]time.Time(nil), r.at...)
}

// The heartbeat fires after every silent interval, not while events flow,
// carries the entry's elapsed time, and sends nothing once stopped.
func TestHeartbeat(t *testing.T) {
	rec := &uRecorder{}
	sp := &syncProgress{p: rec}
	const every = 20 * time.Millisecond
	start := time.Now()
	ev := Event{Kind: EventEntryStart, Entry: 4, Entries: 7, Label: "run_commands(...)", Method: "run_commands"}
	sp.Event(ev)
	stop := sp.heartbeat(ev, start, every)
	// Silent: heartbeats come.
	waitFor(t, "3 heartbeats", func() bool { e, _ := rec.snapshot(); return len(e) >= 4 })
	// Busy: an event every 2ms for 200ms keeps it quiet.
	busy := time.Now()
	var sent []time.Time
	for time.Since(busy) < 200*time.Millisecond {
		sent = append(sent, time.Now())
		sp.Event(Event{Kind: EventOutput, Entry: 4, Line: "working"})
		time.Sleep(2 * time.Millisecond)
	}
	stop()
	stop() // idempotent
	stopped := time.Now()
	events, at := rec.snapshot()
	time.Sleep(3 * every)
	if later, _ := rec.snapshot(); len(later) != len(events) {
		t.Errorf("%d events after stop", len(later)-len(events))
	}
	var beats []Event
	var prev time.Duration
	for i, e := range events {
		if e.Kind != EventHeartbeat {
			continue
		}
		beats = append(beats, e)
		if e.Entry != 4 || e.Entries != 7 || e.Method != "run_commands" || e.Label != "" {
			t.Errorf("heartbeat %+v: want entry 4/7 of run_commands, no label", e)
		}
		if e.Duration < prev {
			t.Errorf("heartbeat durations go back: %v after %v", e.Duration, prev)
		}
		prev = e.Duration
		// Heartbeats only while silent: not in the busy window (a late
		// one may still land at its very start), unless the sender
		// itself stalled for an interval (a loaded machine).
		if at[i].After(busy.Add(every)) && at[i].Before(stopped) {
			var last time.Time
			for _, s := range sent {
				if s.Before(at[i]) {
					last = s
				}
			}
			if at[i].Sub(last) < every/2 {
				t.Errorf("heartbeat at %v while events flowed (the last event %v before it)", at[i].Sub(busy), at[i].Sub(last))
			}
		}
	}
	if len(beats) < 3 {
		t.Errorf("%d heartbeats, want >= 3", len(beats))
	}
}
