package snapbuild

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
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
	for _, chunk := range []string{"he", "llo\nwor", "ld\n", "\n", "a\r\nb\r\n", "c\rd\n", "partial"} {
		n, err := w.Write([]byte(chunk))
		if err != nil || n != len(chunk) {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	want := []string{"hello", "world", "", "a", "b", "c\rd"}
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
