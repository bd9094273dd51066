package snapbuild

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// EventKind says what a progress Event reports.
type EventKind string

const (
	EventStart  EventKind = "start"   // a step begins
	EventOutput EventKind = "output"  // one line of a step's output
	EventDone   EventKind = "done"    // a step ended (Cached, Duration, Error)
	EventWarn   EventKind = "warning" // something the user should know (Line)
)

// Event is one progress report from a build.
type Event struct {
	Kind        EventKind     `json:"kind"`
	Step        int           `json:"step"`  // 1-based, across the whole build
	Total       int           `json:"total"` // steps in the build
	Instruction string        `json:"instruction"`
	Line        string        `json:"line,omitempty"`     // EventOutput
	Cached      bool          `json:"cached,omitempty"`   // EventDone: no work was done
	Duration    time.Duration `json:"duration,omitempty"` // EventDone, nanoseconds
	// Commit is the part of Duration spent capturing the layer (diff, tar,
	// zstd, hashes, fsync, snapshot commit), nanoseconds; 0 when none.
	Commit time.Duration `json:"commit,omitempty"`
	Error  string        `json:"error,omitempty"` // EventDone of a failed step
}

// Progress receives build events. Calls come from one goroutine at a time.
type Progress interface {
	Event(Event)
}

// ProgressFunc adapts a function to Progress.
type ProgressFunc func(Event)

// Event calls f(e).
func (f ProgressFunc) Event(e Event) { f(e) }

// NewPlainProgress writes one line per step start and end and the steps'
// output, prefixed by the step number:
//
//	#2 [2/5] RUN apt-get update
//	#2 Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]
//	#2 DONE 2.41s
//	#3 [3/5] ENV GREETING=hello
//	#3 CACHED
func NewPlainProgress(w io.Writer) Progress { return &textProgress{w: w} }

// NewTTYProgress is NewPlainProgress with colour, for terminals.
func NewTTYProgress(w io.Writer) Progress { return &textProgress{w: w, color: true} }

// NewJSONProgress writes each Event as one JSON object per line.
func NewJSONProgress(w io.Writer) Progress {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return ProgressFunc(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e)
	})
}

type textProgress struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
}

func (p *textProgress) paint(code, s string) string {
	if !p.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p *textProgress) Event(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Kind {
	case EventStart:
		fmt.Fprintf(p.w, "%s %s\n", p.paint("1;34", fmt.Sprintf("#%d [%d/%d]", e.Step, e.Step, e.Total)), e.Instruction)
	case EventOutput:
		fmt.Fprintf(p.w, "#%d %s\n", e.Step, e.Line)
	case EventWarn:
		fmt.Fprintf(p.w, "%s %s\n", p.paint("1;33", "WARNING:"), e.Line)
	case EventDone:
		switch {
		case e.Error != "":
			fmt.Fprintf(p.w, "#%d %s %.2fs\n", e.Step, p.paint("1;31", "ERROR"), e.Duration.Seconds())
		case e.Cached:
			fmt.Fprintf(p.w, "#%d %s\n", e.Step, p.paint("36", "CACHED"))
		default:
			fmt.Fprintf(p.w, "#%d %s %.2fs\n", e.Step, p.paint("32", "DONE"), e.Duration.Seconds())
		}
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
	if n := len(s); n > 0 && s[n-1] == '\r' {
		s = s[:n-1]
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
