package snapbuild

import (
	"io"

	"github.com/snapbuild/snapbuild/internal/engine"
)

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
//
// Entries that run at once (independent stages of a Dockerfile) print
// their lines as they come, interleaved; every line keeps its entry's
// number, so the lines starting "#3 " are entry 3's whole log, in order:
//
//	#3 [3/9] RUN make -C a
//	#4 [4/9] RUN make -C b
//	#3 cc -c a1.c
//	#4 cc -c b1.c
//	#4 DONE 1.20s
//	#3 DONE 1.45s
//
// When one of them fails, the others are stopped and end CANCELED, as
// BuildKit prints them; only the failure ends ERROR (its message is the
// build's error):
//
//	#4 ERROR 0.31s
//	#3 CANCELED 0.32s
//
// An instruction's output is clipped at DefaultStepLogLimit (see
// StepLogLimit), as BuildKit clips it:
//
//	#2 [output clipped, log limit 2MiB reached]
//	#2 [output clipped: 97.69MiB in 1005678 lines not shown]
//	#2 DONE 4.10s
func NewPlainProgress(w io.Writer, opts ...ProgressOption) Progress {
	return engine.NewPlainProgress(w, opts...)
}

// NewTTYProgress is NewPlainProgress for terminals: colour, no Detail
// lines and no heartbeat lines, and below the printed lines a status line
// per running entry with its elapsed time and the instruction it runs,
// redrawn every 200ms in place (each line is cut to the terminal's width
// so that it never wraps), as BuildKit's tty view lists its running
// vertices:
//
//	#3 [3/9] 12.3s RUN make -C a
//	#4 [4/9] 2.1s RUN make -C b
//
// The entries are listed in the order they began; of more than 4, the
// first 3 are listed and a last line counts the others ("+2 more: #6 #7").
// The status lines are erased ("\r", erase-line, cursor-up) before other
// lines print and when the last entry ends. The redraws run in a goroutine
// from an EventEntryStart while any entry runs, until the EventEntryDone
// that leaves none running, which a Builder always sends before Build
// returns; whoever sends events of their own must send it too. Output is
// clipped as NewPlainProgress clips it.
func NewTTYProgress(w io.Writer, opts ...ProgressOption) Progress {
	return engine.NewTTYProgress(w, opts...)
}

// NewJSONProgress writes each Event as one JSON object per line, every
// kind included: entry-start, start, output (Detail lines too), heartbeat,
// done, entry-done, warning. An instruction's output is clipped as
// NewPlainProgress clips it: the notes are output events of the
// instruction.
func NewJSONProgress(w io.Writer, opts ...ProgressOption) Progress {
	return engine.NewJSONProgress(w, opts...)
}

// DefaultStepLogLimit is how many bytes of one instruction's output the
// progress writers show, as BuildKit's progress shows at most 2 MiB of a
// vertex's log (BUILDKIT_STEP_LOG_MAX_SIZE). A line counts its length plus
// its newline.
const DefaultStepLogLimit = engine.DefaultStepLogLimit

// A ProgressOption tunes NewPlainProgress, NewTTYProgress and
// NewJSONProgress.
type ProgressOption = engine.ProgressOption

// StepLogLimit sets how many bytes of one instruction's output (its
// EventOutput lines, each counted with its newline) a progress writer
// shows. The first line past the limit is replaced by BuildKit's
//
//	[output clipped, log limit 2MiB reached]
//
// and the instruction's other lines are dropped; when it ends, one more
// line says how much was not shown:
//
//	[output clipped: 97.69MiB in 1005678 lines not shown]
//
// Lines outside any instruction (Step 0) are counted together. n <= 0
// shows everything. The default is DefaultStepLogLimit.
func StepLogLimit(n int) ProgressOption {
	return engine.StepLogLimit(n)
}

// EventKind says what a progress Event reports.
type EventKind = engine.EventKind

// EventEntryStart: a recipe entry begins (Entry, Entries, Method,
// Label). Its instructions follow as EventStart/EventDone pairs.
const EventEntryStart = engine.EventEntryStart

const EventStart = engine.EventStart

const EventOutput = engine.EventOutput

const EventDone = engine.EventDone

const EventWarn = engine.EventWarn

// EventHeartbeat: a running entry has reported nothing for the
// Builder's heartbeat interval (see WithHeartbeat), whatever other
// entries running at the same time report; Duration is the time
// since the entry began.
const EventHeartbeat = engine.EventHeartbeat

// EventEntryDone: the entry ended. Duration is its whole time; Cached
// is true when it was taken from the cache: nothing ran, and at least
// one instruction was cached (the others changed only the image
// config); Error is set when one of its instructions failed; Canceled
// when it was stopped unfinished, by another entry's failure or by
// the build's context.
const EventEntryDone = engine.EventEntryDone

// Event is one progress report from a build. Its fields: Kind; Image (the
// build's BuildLabel, "" without one); Step, Total and Instruction; Entry, Entries, Method and Label; Line (output and
// warnings) and Detail; Cached, Duration, Commit, Error and Canceled when a
// step or entry ends. As JSON (NewJSONProgress) they are named in lower
// case.
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
type Event = engine.Event

// Progress receives build events: its one method is Event(Event). Calls
// come from one goroutine at a time, also when several builds of one Builder
// run at once (their events interleave; Image tells them apart).
// Entries may overlap: where a build runs independent Dockerfile stages at
// once, the events of several entries interleave between their
// EventEntryStart and EventEntryDone; each event names its Entry.
type Progress = engine.Progress

// ProgressFunc adapts a function to Progress.
type ProgressFunc = engine.ProgressFunc
