package snapbuild

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

// EventKind says what a progress Event reports.
type EventKind string

const (
	// EventEntryStart: a recipe entry begins (Entry, Entries, Method,
	// Label). Its instructions follow as EventStart/EventDone pairs.
	EventEntryStart EventKind = "entry-start"
	EventStart      EventKind = "start"   // an instruction (Step) begins
	EventOutput     EventKind = "output"  // one line of the instruction's output (Line)
	EventDone       EventKind = "done"    // an instruction ended (Cached, Duration, Error)
	EventWarn       EventKind = "warning" // something the user should know (Line)
	// EventHeartbeat: the running entry has reported nothing for the
	// Builder's heartbeat interval (see WithHeartbeat); Duration is the
	// time since the entry began.
	EventHeartbeat EventKind = "heartbeat"
	// EventEntryDone: the entry ended. Duration is its whole time; Cached
	// is true when it was taken from the cache: nothing ran, and at least
	// one instruction was cached (the others changed only the image
	// config); Error is set when one of its instructions failed.
	EventEntryDone EventKind = "entry-done"
)

// Event is one progress report from a build.
//
// Two counters run through a build. Entry/Entries count what the user
// wrote: recipe entries or Modal methods (debian_slim, apt_install, ...),
// and one entry per instruction for from_dockerfile and dockerfile_commands,
// whose instructions are what the user wrote there. Step/Total count the
// Dockerfile instructions the entries lower to (apt_install is two RUN
// instructions), one per image history entry. A base's instruction is
// Modal's FROM line (debian_slim's "FROM python:3.11-slim-bookworm"), which
// stays the image's history even where the base is bootstrapped; its
// entry's Label says what it is made of.
type Event struct {
	Kind        EventKind `json:"kind"`
	Step        int       `json:"step"`  // instruction, 1-based, across the whole build
	Total       int       `json:"total"` // instructions in the build
	Instruction string    `json:"instruction"`
	// Entry is the recipe entry (Modal method call) the event belongs to,
	// 1-based; Entries is how many the build has. 0 for events from
	// outside a build's entries.
	Entry   int    `json:"entry,omitempty"`
	Entries int    `json:"entries,omitempty"`
	Method  string `json:"method,omitempty"` // the entry's Modal method, e.g. "apt_install"
	// Label is the entry as written, e.g. `apt_install(["git"])`, or the
	// instruction for a Dockerfile entry; set on EventEntryStart and
	// EventEntryDone.
	Label string `json:"label,omitempty"`
	Line  string `json:"line,omitempty"` // EventOutput, EventWarn
	// Detail marks an EventOutput line that terminals leave out: the raw
	// messages of a Debian bootstrap (mmdebstrap's I: and W: lines, apt and
	// dpkg output), which the bootstrap's phase lines summarize. Plain and
	// JSON progress keep them.
	Detail   bool          `json:"detail,omitempty"`
	Cached   bool          `json:"cached,omitempty"`   // EventDone, EventEntryDone: taken from the cache
	Duration time.Duration `json:"duration,omitempty"` // EventDone, EventEntryDone, EventHeartbeat; nanoseconds
	// Commit is the part of Duration spent capturing the layer (diff, tar,
	// zstd, hashes, fsync, snapshot commit), nanoseconds; 0 when none.
	Commit time.Duration `json:"commit,omitempty"`
	Error  string        `json:"error,omitempty"` // EventDone, EventEntryDone of a failed step
}

// output is e as the EventOutput carrying line.
func (e Event) output(line string) Event {
	e.Kind, e.Line, e.Label = EventOutput, line, ""
	return e
}

// Progress receives build events. Calls come from one goroutine at a time.
type Progress interface {
	Event(Event)
}

// ProgressFunc adapts a function to Progress.
type ProgressFunc func(Event)

// Event calls f(e).
func (f ProgressFunc) Event(e Event) { f(e) }

// NewPlainProgress writes one line per entry start and end, the
// instructions of an entry, their output and heartbeats, prefixed by the
// entry number, as BuildKit's plain progress (docker build --progress=plain):
//
//	#2 [2/5] apt_install(["git"])
//	#2 RUN apt-get update
//	#2 Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]
//	#2 still running, 30s
//	#2 RUN apt-get install -y git
//	#2 DONE 2.41s
//	#3 [3/5] env({"GREETING": "hello"})
//	#3 ENV GREETING=hello
//	#3 CACHED
//
// An entry whose instructions were partly cached ends "DONE 2.41s (1 of 2
// instructions cached)". It keeps Detail lines. Events without an Entry
// (from other producers) print per instruction: "#4 [4/7] RUN ...",
// "#4 DONE 0.50s".
func NewPlainProgress(w io.Writer) Progress { return &textProgress{w: w, details: true} }

// NewTTYProgress is NewPlainProgress for terminals: colour, no Detail
// lines and no heartbeat lines, and below the printed lines a status line
// of the running entry with its elapsed time, redrawn every 200ms in place
// ("\r" and erase-line; the status line is cut to the terminal's width so
// that it never wraps). The status line is erased before other lines print
// and when the entry ends. The redraws run in a goroutine from an
// EventEntryStart to its EventEntryDone, which a Builder always sends
// before Build returns; whoever sends events of their own must send it too.
func NewTTYProgress(w io.Writer) Progress {
	return &textProgress{w: w, color: true, live: true, redraw: 200 * time.Millisecond, width: func() int { return termWidth(w) }}
}

// NewJSONProgress writes each Event as one JSON object per line, every
// kind included: entry-start, start, output (Detail lines too), heartbeat,
// done, entry-done, warning.
func NewJSONProgress(w io.Writer) Progress {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return ProgressFunc(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e)
	})
}

// termWidth is the width of the terminal w writes to, or 80.
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	return 80
}

type textProgress struct {
	mu      sync.Mutex
	w       io.Writer
	out     bytes.Buffer // what one event or redraw writes, sent to w in one Write
	color   bool
	details bool // print Detail lines and heartbeats

	// live: keep a status line with a timer below the output (tty).
	live   bool
	redraw time.Duration
	width  func() int       // columns of the terminal, asked at each redraw (it may be resized)
	now    func() time.Time // nil: time.Now

	// The entry being printed: its label, and how many of its
	// instructions ended and were cached.
	label             string
	stepsIn, cachedIn int

	// The running entry (live only).
	entry   *Event    // its EventEntryStart; nil when none runs
	current string    // the instruction it runs
	since   time.Time // when it began
	shown   bool      // the status line is on screen
	stop    chan struct{}
	stopped chan struct{}
}

func (p *textProgress) paint(code, s string) string {
	if !p.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p *textProgress) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

func (p *textProgress) Event(e Event) {
	if p.live && (e.Kind == EventEntryStart || e.Kind == EventEntryDone) {
		p.stopTicker() // outside mu: the ticker takes it
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if (e.Kind == EventOutput && e.Detail && !p.details) || (e.Kind == EventHeartbeat && !p.details) {
		return // nothing to print; a terminal shows the time on the status line
	}
	defer p.flush()
	if p.live {
		p.erase()
		defer p.draw()
	}
	switch e.Kind {
	case EventEntryStart:
		fmt.Fprintf(&p.out, "%s %s\n", p.paint("1;34", fmt.Sprintf("#%d [%d/%d]", e.Entry, e.Entry, e.Entries)), e.Label)
		p.label, p.stepsIn, p.cachedIn = e.Label, 0, 0
		if p.live {
			ent := e
			p.entry, p.current, p.since = &ent, e.Label, p.clock()
			p.startTicker()
		}
	case EventStart:
		if e.Entry == 0 {
			fmt.Fprintf(&p.out, "%s %s\n", p.paint("1;34", fmt.Sprintf("#%d [%d/%d]", e.Step, e.Step, e.Total)), e.Instruction)
			return
		}
		p.current = e.Instruction
		if e.Instruction != p.label {
			fmt.Fprintf(&p.out, "#%d %s\n", e.Entry, p.paint("1", e.Instruction))
		}
	case EventOutput:
		if n := numberOf(e); n > 0 {
			fmt.Fprintf(&p.out, "#%d %s\n", n, e.Line)
		} else {
			// Outside any step (snapbuild pull): no "#0".
			fmt.Fprintf(&p.out, "%s\n", e.Line)
		}
		if p.live && strings.HasPrefix(e.Line, "debian: ") && (strings.HasPrefix(p.current, "FROM ") || strings.HasPrefix(p.current, "debian: ")) {
			// A bootstrap's status line shows its phase, not the FROM
			// line Modal would pull.
			p.current = e.Line
		}
	case EventHeartbeat:
		fmt.Fprintf(&p.out, "#%d still running, %s\n", numberOf(e), e.Duration.Round(time.Second))
	case EventWarn:
		fmt.Fprintf(&p.out, "%s %s\n", p.paint("1;33", "WARNING:"), e.Line)
	case EventDone:
		if e.Entry == 0 {
			p.result(e.Step, e)
			return
		}
		p.stepsIn++
		if e.Cached {
			p.cachedIn++
		}
	case EventEntryDone:
		p.entry = nil
		p.result(e.Entry, e)
	}
}

// flush sends what was printed to w in one Write. mu is held.
func (p *textProgress) flush() {
	if p.out.Len() > 0 {
		_, _ = p.w.Write(p.out.Bytes())
		p.out.Reset()
	}
}

// result prints how entry or instruction n ended.
func (p *textProgress) result(n int, e Event) {
	note := ""
	if e.Kind == EventEntryDone && !e.Cached && p.cachedIn > 0 {
		note = fmt.Sprintf(" (%d of %d instructions cached)", p.cachedIn, p.stepsIn)
	}
	switch {
	case e.Error != "":
		fmt.Fprintf(&p.out, "#%d %s %.2fs\n", n, p.paint("1;31", "ERROR"), e.Duration.Seconds())
	case e.Cached:
		fmt.Fprintf(&p.out, "#%d %s\n", n, p.paint("36", "CACHED"))
	default:
		fmt.Fprintf(&p.out, "#%d %s %.2fs%s\n", n, p.paint("32", "DONE"), e.Duration.Seconds(), note)
	}
}

// numberOf is the number a line of e is prefixed with: its entry, or its
// instruction for events outside entries.
func numberOf(e Event) int {
	if e.Entry != 0 {
		return e.Entry
	}
	return e.Step
}

// formatElapsed formats d as "12.3s" below a minute and "1m30s" above.
func formatElapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	d = d.Truncate(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
}

// status is the live status line: the running entry, its elapsed time and
// what it runs, cut to the terminal's width.
func (p *textProgress) status() string {
	e := p.entry
	s := fmt.Sprintf("#%d [%d/%d] %s %s", e.Entry, e.Entry, e.Entries, formatElapsed(p.clock().Sub(p.since)), p.current)
	if max := p.width() - 1; max > 0 && utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max-1]) + "…"
	}
	return s
}

// draw shows the status line of the running entry, if any. mu is held.
func (p *textProgress) draw() {
	if p.entry == nil {
		return
	}
	fmt.Fprint(&p.out, p.paint("2", p.status())) // erase left the cursor at the line start
	p.shown = true
}

// erase removes the status line, if shown. mu is held.
func (p *textProgress) erase() {
	if p.shown {
		fmt.Fprint(&p.out, "\r\x1b[K")
		p.shown = false
	}
}

// startTicker redraws the status line every p.redraw until stopTicker.
// mu is held.
func (p *textProgress) startTicker() {
	stop, stopped := make(chan struct{}), make(chan struct{})
	p.stop, p.stopped = stop, stopped
	go func() {
		defer close(stopped)
		t := time.NewTicker(p.redraw)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			p.mu.Lock()
			p.erase()
			p.draw()
			p.flush()
			p.mu.Unlock()
		}
	}()
}

// stopTicker ends the redraws and returns when the ticker has made its
// last write. mu is not held (the ticker may be waiting for it).
func (p *textProgress) stopTicker() {
	p.mu.Lock()
	stop, stopped := p.stop, p.stopped
	p.stop, p.stopped = nil, nil
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped
	}
}

// lineWriter splits a process's output into lines for progress events and keeps
// the last few lines for error messages. It is safe for concurrent writers.
type lineWriter struct {
	mu   sync.Mutex
	mask func(string) string // nil: none; masks secrets before a line leaves
	emit func(string)
	buf  []byte
	tail []string
	keep int
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := indexNL(w.buf)
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a very long line without newline
		w.line(string(w.buf))
		w.buf = nil
	}
	return len(p), nil
}

func (w *lineWriter) line(s string) {
	// A carriage return redraws the line on a terminal (dpkg's and pip's
	// progress counters): keep what a terminal would end up showing, the
	// last non-empty segment.
	s = strings.TrimRight(s, "\r")
	if i := strings.LastIndexByte(s, '\r'); i >= 0 {
		s = s[i+1:]
	}
	if w.mask != nil {
		s = w.mask(s)
	}
	w.emit(s)
	w.tail = append(w.tail, s)
	if len(w.tail) > w.keep {
		w.tail = w.tail[len(w.tail)-w.keep:]
	}
}

// flush emits a final unterminated line.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) lastLines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.tail...)
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// syncProgress passes events to p one at a time (a build's goroutine, its
// processes' output and the heartbeat all send) and notes when the last
// one was sent.
type syncProgress struct {
	mu   sync.Mutex
	p    Progress
	last time.Time
}

func (s *syncProgress) Event(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = time.Now()
	s.p.Event(e)
}

// heartbeat sends an EventHeartbeat for the entry of ev (started at since)
// whenever no event was sent for every, until stop is called. When stop
// returns, no heartbeat is being sent or will be.
func (s *syncProgress) heartbeat(ev Event, since time.Time, every time.Duration) (stop func()) {
	ev.Kind, ev.Label = EventHeartbeat, ""
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTimer(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			s.mu.Lock()
			now := time.Now()
			due := s.last.Add(every)
			if !now.Before(due) {
				ev.Duration = now.Sub(since).Round(time.Second)
				s.last = now
				s.p.Event(ev)
				due = now.Add(every)
			}
			s.mu.Unlock()
			t.Reset(due.Sub(now))
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-exited
		})
	}
}
