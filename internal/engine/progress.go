package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

// EventKind is snapbuild.EventKind.
type EventKind string

const (
	// EventEntryStart: a recipe entry begins (Entry, Entries, Method,
	// Label). Its instructions follow as EventStart/EventDone pairs.
	EventEntryStart EventKind = "entry-start"
	EventStart      EventKind = "start"   // an instruction (Step) begins
	EventOutput     EventKind = "output"  // one line of the instruction's output (Line)
	EventDone       EventKind = "done"    // an instruction ended (Cached, Canceled, Duration, Error)
	EventWarn       EventKind = "warning" // something the user should know (Line)
	// EventHeartbeat: a running entry has reported nothing for the
	// Builder's heartbeat interval (see WithHeartbeat), whatever other
	// entries running at the same time report; Duration is the time
	// since the entry began.
	EventHeartbeat EventKind = "heartbeat"
	// EventEntryDone: the entry ended. Duration is its whole time; Cached
	// is true when it was taken from the cache: nothing ran, and at least
	// one instruction was cached (the others changed only the image
	// config); Error is set when one of its instructions failed; Canceled
	// when it was stopped unfinished, by another entry's failure or by
	// the build's context.
	EventEntryDone EventKind = "entry-done"
)

// Event is snapbuild.Event.
type Event struct {
	Kind EventKind `json:"kind"`
	// Image names the build the event belongs to when several run at
	// once (snapbuild.BuildLabel): the CLI gives each image of a recipe its
	// name. "" for a build given no label.
	Image       string `json:"image,omitempty"`
	Step        int    `json:"step"`  // instruction, 1-based, across the whole build
	Total       int    `json:"total"` // instructions in the build
	Instruction string `json:"instruction"`
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
	// Canceled marks an EventDone or EventEntryDone of a step stopped
	// unfinished, as BuildKit's progress marks a vertex CANCELED: steps
	// that ran beside a step that failed (independent stages of a
	// Dockerfile), or every running step when the build's context was
	// cancelled. Error is then empty: the build's error is the failure
	// that stopped it.
	Canceled bool `json:"canceled,omitempty"`
}

// canceledError is the error a step ends with when the build stopped it
// unfinished: another step failed (cause) while it ran. Progress shows the
// step CANCELED instead of its own failure.
type canceledError struct{ cause error }

func (e *canceledError) Error() string { return "canceled: " + e.cause.Error() }
func (e *canceledError) Unwrap() error { return e.cause }

// canceled marks err, the failure that stopped a step, as the cause of
// the step's cancellation; nil stays nil.
func canceled(err error) error {
	if err == nil {
		return nil
	}
	return &canceledError{cause: err}
}

// setError records how the step or entry e reports ended: nothing for
// nil, Canceled for a step stopped unfinished (a canceledError, or the
// build's context cancelled: context.Canceled), else the failure in Error.
func (e *Event) setError(err error) {
	switch {
	case err == nil:
	case errors.As(err, new(*canceledError)) || errors.Is(err, context.Canceled):
		e.Canceled = true
	default:
		e.Error = err.Error()
	}
}

// output is e as the EventOutput carrying line.
func (e Event) output(line string) Event {
	e.Kind, e.Line, e.Label = EventOutput, line, ""
	return e
}

// Progress is snapbuild.Progress.
type Progress interface {
	Event(Event)
}

// ProgressFunc is snapbuild.ProgressFunc.
type ProgressFunc func(Event)

// Event calls f(e).
func (f ProgressFunc) Event(e Event) { f(e) }

// DefaultStepLogLimit is how many bytes of one instruction's output the
// progress writers show, as BuildKit's progress shows at most 2 MiB of a
// vertex's log (BUILDKIT_STEP_LOG_MAX_SIZE). A line counts its length plus
// its newline.
const DefaultStepLogLimit = 2 << 20

// ProgressOption is snapbuild.ProgressOption.
type ProgressOption func(*progressOptions)

type progressOptions struct {
	logLimit int
}

func makeProgressOptions(opts []ProgressOption) progressOptions {
	o := progressOptions{logLimit: DefaultStepLogLimit}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// StepLogLimit is snapbuild.StepLogLimit.
func StepLogLimit(n int) ProgressOption {
	return func(o *progressOptions) { o.logLimit = n }
}

// clipper applies StepLogLimit to a stream of events. It is not safe for
// concurrent use.
type clipper struct {
	limit int
	steps map[clipKey]*clipState
}

type clipKey struct {
	image       string
	entry, step int
}

type clipState struct {
	shown, dropped int // bytes
	droppedLines   int
}

// output reports whether the EventOutput e is to be shown; when it is the
// first line dropped, note is the line to show instead.
func (c *clipper) output(e Event) (show bool, note string) {
	if c.limit <= 0 {
		return true, ""
	}
	k := clipKey{e.Image, e.Entry, e.Step}
	st := c.steps[k]
	if st == nil {
		if c.steps == nil {
			c.steps = map[clipKey]*clipState{}
		}
		st = &clipState{}
		c.steps[k] = st
	}
	n := len(e.Line) + 1
	if st.dropped == 0 && st.shown+n <= c.limit {
		st.shown += n
		return true, ""
	}
	st.dropped += n
	st.droppedLines++
	if st.droppedLines == 1 {
		return false, fmt.Sprintf("[output clipped, log limit %s reached]", formatBytes(c.limit))
	}
	return false, ""
}

// done ends the instruction of the EventDone e; note, when lines of it
// were dropped, says how much.
func (c *clipper) done(e Event) (note string) {
	k := clipKey{e.Image, e.Entry, e.Step}
	st := c.steps[k]
	delete(c.steps, k)
	if st == nil || st.droppedLines == 0 {
		return ""
	}
	return fmt.Sprintf("[output clipped: %s in %d lines not shown]", formatBytes(st.dropped), st.droppedLines)
}

// formatBytes formats n bytes in binary units, as BuildKit's units
// package does: "2MiB", "97.69MiB", "512B".
func formatBytes(n int) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + units[i]
}

// NewPlainProgress is snapbuild.NewPlainProgress.
func NewPlainProgress(w io.Writer, opts ...ProgressOption) Progress {
	o := makeProgressOptions(opts)
	return &textProgress{w: w, details: true, clip: clipper{limit: o.logLimit}}
}

// NewTTYProgress is snapbuild.NewTTYProgress.
func NewTTYProgress(w io.Writer, opts ...ProgressOption) Progress {
	o := makeProgressOptions(opts)
	return &textProgress{w: w, color: true, live: true, redraw: 200 * time.Millisecond, width: func() int { return termWidth(w) },
		clip: clipper{limit: o.logLimit}}
}

// NewJSONProgress is snapbuild.NewJSONProgress.
func NewJSONProgress(w io.Writer, opts ...ProgressOption) Progress {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	clip := clipper{limit: makeProgressOptions(opts).logLimit}
	return ProgressFunc(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case EventOutput:
			show, note := clip.output(e)
			if note != "" {
				_ = enc.Encode(e.output(note))
			}
			if !show {
				return
			}
		case EventDone:
			if note := clip.done(e); note != "" {
				_ = enc.Encode(e.output(note))
			}
		}
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

// liveLines bounds the status lines of a terminal: of more running entries,
// liveLines-1 are listed and the last line counts the others.
const liveLines = 4

type textProgress struct {
	mu      sync.Mutex
	w       io.Writer
	out     bytes.Buffer // what one event or redraw writes, sent to w in one Write
	color   bool
	details bool // print Detail lines and heartbeats
	clip    clipper

	// live: keep a status line per running entry, with a timer, below
	// the output (tty).
	live   bool
	redraw time.Duration
	width  func() int       // columns of the terminal, asked at each redraw (it may be resized)
	now    func() time.Time // nil: time.Now

	// The entries started and not yet ended, in the order they began.
	open []*openEntry
	// nums numbers the entries of labelled builds (Event.Image), which
	// run at once, in the order they start: each has its own entry
	// numbers, the output one sequence, as BuildKit numbers the vertices
	// of the targets of a bake.
	nums map[entryKey]int

	// live only
	shown   int // status lines on screen; the cursor ends the last one
	stop    chan struct{}
	stopped chan struct{}
}

// entryKey is an entry, or an instruction outside entries, of a build.
type entryKey struct {
	image string
	n     int // Entry, or -Step outside entries
}

func keyOf(e Event) entryKey {
	if e.Entry != 0 {
		return entryKey{e.Image, e.Entry}
	}
	return entryKey{e.Image, -e.Step}
}

// number is the number the lines of e are prefixed with: its entry, or its
// instruction for events outside entries; for a labelled build, the entry's
// place in the order entries started. mu is held.
func (p *textProgress) number(e Event) int {
	if e.Image == "" {
		return numberOf(e)
	}
	k := keyOf(e)
	n, ok := p.nums[k]
	if !ok {
		if p.nums == nil {
			p.nums = map[entryKey]int{}
		}
		n = len(p.nums) + 1
		p.nums[k] = n
	}
	return n
}

// position is e's entry (or instruction) of its build, "[3/5]", with the
// build's label for labelled builds, "[web 3/5]".
func position(e Event) string {
	n, total := e.Entry, e.Entries
	if n == 0 {
		n, total = e.Step, e.Total
	}
	if e.Image != "" {
		return fmt.Sprintf("[%s %d/%d]", e.Image, n, total)
	}
	return fmt.Sprintf("[%d/%d]", n, total)
}

// openEntry is an entry between its EventEntryStart and EventEntryDone.
type openEntry struct {
	ev                Event // its EventEntryStart
	stepsIn, cachedIn int   // its instructions that ended, and were cached
	current           string
	since             time.Time // when it began
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

// find is the open entry of e, or nil. mu is held.
func (p *textProgress) find(e Event) *openEntry {
	for _, o := range p.open {
		if o.ev.Entry == e.Entry && o.ev.Image == e.Image {
			return o
		}
	}
	return nil
}

// remove takes the open entry of e out of p.open and returns it, or nil.
// mu is held.
func (p *textProgress) remove(e Event) *openEntry {
	for i, o := range p.open {
		if o.ev.Entry == e.Entry && o.ev.Image == e.Image {
			p.open = append(p.open[:i], p.open[i+1:]...)
			return o
		}
	}
	return nil
}

func (p *textProgress) Event(e Event) {
	if wait := p.event(e); wait != nil {
		wait() // outside mu: the ticker takes it
	}
}

// event prints e. It returns, when the last running entry ended, a func
// that waits for the redraws to stop, to be called without mu.
func (p *textProgress) event(e Event) (wait func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if (e.Kind == EventOutput && e.Detail && !p.details) || (e.Kind == EventHeartbeat && !p.details) {
		return nil // nothing to print; a terminal shows the time on the status line
	}
	if e.Kind == EventOutput {
		show, note := p.clip.output(e)
		if note != "" {
			e.Line = note
		} else if !show {
			return nil // clipped: not even a redraw
		}
	}
	defer p.flush()
	if p.live {
		p.erase()
		defer p.draw()
	}
	switch e.Kind {
	case EventEntryStart:
		fmt.Fprintf(&p.out, "%s %s\n", p.paint("1;34", fmt.Sprintf("#%d %s", p.number(e), position(e))), e.Label)
		p.remove(e) // started again: it starts over
		p.open = append(p.open, &openEntry{ev: e, current: e.Label, since: p.clock()})
		if p.live && p.stop == nil {
			p.startTicker()
		}
	case EventStart:
		if e.Entry == 0 {
			fmt.Fprintf(&p.out, "%s %s\n", p.paint("1;34", fmt.Sprintf("#%d %s", p.number(e), position(e))), e.Instruction)
			return nil
		}
		label := ""
		if o := p.find(e); o != nil {
			o.current, label = e.Instruction, o.ev.Label
		}
		if e.Instruction != label {
			fmt.Fprintf(&p.out, "#%d %s\n", p.number(e), p.paint("1", e.Instruction))
		}
	case EventOutput:
		if numberOf(e) > 0 {
			fmt.Fprintf(&p.out, "#%d %s\n", p.number(e), e.Line)
		} else {
			// Outside any step (snapbuild pull): no "#0".
			fmt.Fprintf(&p.out, "%s\n", e.Line)
		}
		if o := p.find(e); o != nil && strings.HasPrefix(e.Line, "debian: ") &&
			(strings.HasPrefix(o.current, "FROM ") || strings.HasPrefix(o.current, "debian: ")) {
			// A bootstrap's status line shows its phase, not the FROM
			// line Modal would pull.
			o.current = e.Line
		}
	case EventHeartbeat:
		fmt.Fprintf(&p.out, "#%d still running, %s\n", p.number(e), e.Duration.Round(time.Second))
	case EventWarn:
		fmt.Fprintf(&p.out, "%s %s\n", p.paint("1;33", "WARNING:"), e.Line)
	case EventDone:
		if note := p.clip.done(e); note != "" {
			if numberOf(e) > 0 {
				fmt.Fprintf(&p.out, "#%d %s\n", p.number(e), note)
			} else {
				fmt.Fprintf(&p.out, "%s\n", note)
			}
		}
		if e.Entry == 0 {
			p.result(p.number(e), e, nil)
			return nil
		}
		if o := p.find(e); o != nil {
			o.stepsIn++
			if e.Cached {
				o.cachedIn++
			}
		}
	case EventEntryDone:
		p.result(p.number(e), e, p.remove(e))
		if len(p.open) == 0 {
			return p.stopTicker()
		}
	}
	return nil
}

// flush sends what was printed to w in one Write. mu is held.
func (p *textProgress) flush() {
	if p.out.Len() > 0 {
		_, _ = p.w.Write(p.out.Bytes())
		p.out.Reset()
	}
}

// result prints how entry or instruction n ended; o is the entry, nil for
// an instruction.
func (p *textProgress) result(n int, e Event, o *openEntry) {
	note := ""
	if e.Kind == EventEntryDone && !e.Cached && o != nil && o.cachedIn > 0 {
		note = fmt.Sprintf(" (%d of %d instructions cached)", o.cachedIn, o.stepsIn)
	}
	switch {
	case e.Error != "":
		fmt.Fprintf(&p.out, "#%d %s %.2fs\n", n, p.paint("1;31", "ERROR"), e.Duration.Seconds())
	case e.Canceled:
		fmt.Fprintf(&p.out, "#%d %s %.2fs\n", n, p.paint("1;33", "CANCELED"), e.Duration.Seconds())
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

// status is the live status lines: a line per running entry with its
// elapsed time and what it runs, at most liveLines, each cut to the
// terminal's width. mu is held.
func (p *textProgress) status() []string {
	max := p.width() - 1
	cut := func(s string) string {
		if max > 0 && utf8.RuneCountInString(s) > max {
			r := []rune(s)
			s = string(r[:max-1]) + "…"
		}
		return s
	}
	list := p.open
	if len(list) > liveLines {
		list = list[:liveLines-1]
	}
	now := p.clock()
	lines := make([]string, 0, liveLines)
	for _, o := range list {
		e := o.ev
		lines = append(lines, cut(fmt.Sprintf("#%d %s %s %s", p.number(e), position(e), formatElapsed(now.Sub(o.since)), o.current)))
	}
	if more := p.open[len(list):]; len(more) > 0 {
		nums := make([]string, len(more))
		for i, o := range more {
			nums[i] = fmt.Sprintf("#%d", p.number(o.ev))
		}
		lines = append(lines, cut(fmt.Sprintf("+%d more: %s", len(more), strings.Join(nums, " "))))
	}
	return lines
}

// draw shows the status lines of the running entries, if any; the cursor
// ends the last one. mu is held.
func (p *textProgress) draw() {
	if len(p.open) == 0 {
		return
	}
	// erase left the cursor at the start of the first line
	for i, l := range p.status() {
		if i > 0 {
			p.out.WriteByte('\n')
		}
		p.out.WriteString(p.paint("2", l))
		p.shown = i + 1
	}
}

// erase removes the status lines, if shown, and leaves the cursor at the
// start of the first. mu is held.
func (p *textProgress) erase() {
	if p.shown == 0 {
		return
	}
	p.out.WriteString("\r\x1b[K")
	for ; p.shown > 1; p.shown-- {
		p.out.WriteString("\x1b[1A\x1b[K") // up one line, erase it
	}
	p.shown = 0
}

// startTicker redraws the status lines every p.redraw until stopTicker.
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

// stopTicker ends the redraws. mu is held; it returns a func, to be called
// without mu (the ticker may be waiting for it), that returns when the
// ticker has made its last write; nil when no ticker runs.
func (p *textProgress) stopTicker() func() {
	stop, stopped := p.stop, p.stopped
	if stop == nil {
		return nil
	}
	p.stop, p.stopped = nil, nil
	close(stop)
	return func() { <-stopped }
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

// syncProgress passes events to p one at a time (a build's goroutines,
// its processes' output and the heartbeats all send) and notes, per
// entry, when the last event of that entry was sent.
type syncProgress struct {
	mu   sync.Mutex
	p    Progress
	last map[int]time.Time // by Entry; an entry leaves at its EventEntryDone
}

func (s *syncProgress) Event(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Kind == EventEntryDone {
		delete(s.last, e.Entry)
	} else {
		if s.last == nil {
			s.last = map[int]time.Time{}
		}
		s.last[e.Entry] = time.Now()
	}
	s.p.Event(e)
}

// heartbeat sends an EventHeartbeat for the entry of ev (started at since)
// whenever no event of that entry was sent for every, until stop is called:
// each running entry has its own, and another entry's output does not keep
// a silent one quiet. When stop returns, no heartbeat is being sent or will
// be.
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
			last, ok := s.last[ev.Entry]
			if !ok {
				last = since
			}
			due := last.Add(every)
			if !now.Before(due) {
				ev.Duration = now.Sub(since).Round(time.Second)
				if s.last == nil {
					s.last = map[int]time.Time{}
				}
				s.last[ev.Entry] = now
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
