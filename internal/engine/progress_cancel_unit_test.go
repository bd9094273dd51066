package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/snapbuild/snapbuild/internal/build"
)

// fanOut sends each event to every Progress in it.
type fanOut []Progress

func (f fanOut) Event(e Event) {
	for _, p := range f {
		p.Event(e)
	}
}

// uCancelLayer is a from_dockerfile layer of three independent stages and
// the solver's vertices of their instructions: stage a sleeps, stage b
// fails, stage c's heredoc RUN is two vertices (the script's file, then the
// exec), of which only the first has run when b fails.
func uCancelLayer(t *testing.T, p Progress) (x *llbLayer, sleep, fail, script, heredoc *build.Vertex) {
	t.Helper()
	x = llbSteps(t,
		"FROM base AS a", "RUN sleep 60",
		"FROM base AS b", "RUN false",
		"FROM base AS c", "RUN <<EOF\nmake\nEOF",
		"FROM base", "COPY --from=a /x /x")
	x.b = &Engine{progress: p}
	x.byVtx = map[digest.Digest]*llbStep{}
	n := len(x.steps)
	for i, s := range x.steps {
		s.ev = Event{Step: i + 1, Total: n, Entry: i + 1, Entries: n, Method: "from_dockerfile", Instruction: s.in.Text}
	}
	vertex := func(name string, kind build.OpKind, step int, final bool) *build.Vertex {
		v := &build.Vertex{Digest: digest.FromString(name), Kind: kind, Name: name}
		s := x.steps[step]
		s.vtx[v.Digest] = true
		x.byVtx[v.Digest] = s
		if final {
			s.final = v.Digest
		}
		return v
	}
	sleep = vertex("sleep 60", build.KindExec, 1, true)
	fail = vertex("false", build.KindExec, 3, true)
	script = vertex("mkfile /dev/pipes/EOF", build.KindFile, 5, false)
	heredoc = vertex("make", build.KindExec, 5, true)
	vertex("copy /x /x", build.KindFile, 7, true)
	return x, sleep, fail, script, heredoc
}

// When one of the stages running at once fails, the solver cancels the
// others: their entries end CANCELED, as BuildKit prints them, in plain, tty
// and JSON progress; only the failed one ends ERROR and carries the error.
func TestProgressCanceledSiblings(t *testing.T) {
	var plain, tty, js bytes.Buffer
	x, sleep, fail, script, heredoc := uCancelLayer(t, fanOut{
		NewPlainProgress(&plain),
		&textProgress{w: &tty, color: true},
		NewJSONProgress(&js),
	})

	// As solveLayer reports a solve in which b fails while a and c run.
	x.advance()
	for _, v := range []*build.Vertex{sleep, fail, script} {
		x.event(build.Event{Kind: build.VertexStarted, Vertex: v})
	}
	x.event(build.Event{Kind: build.VertexDone, Vertex: script})
	x.event(build.Event{Kind: build.VertexStarted, Vertex: heredoc})
	failure := &build.VertexError{Digest: fail.Digest, Kind: fail.Kind, Name: fail.Name, Err: errors.New("exit status 1")}
	x.event(build.Event{Kind: build.VertexFailed, Vertex: fail, Err: failure})
	x.event(build.Event{Kind: build.VertexCanceled, Vertex: sleep, Err: failure})
	// The heredoc's exec was stopped too; its step is ended by abort,
	// with the solve's error, as a step canceled by that failure.
	x.abort(failure)

	// Entries 2 (RUN sleep 60), 4 (RUN false), 6 (the heredoc).
	for _, want := range []string{"#2 CANCELED ", "#4 ERROR ", "#6 CANCELED "} {
		if !strings.Contains(plain.String(), "\n"+want) {
			t.Errorf("plain progress has no line starting %q:\n%s", want, plain.String())
		}
	}
	if n := strings.Count(plain.String(), "ERROR"); n != 1 {
		t.Errorf("plain progress has %d ERROR lines, want only the failure's:\n%s", n, plain.String())
	}
	if strings.Contains(plain.String(), "#8 ") {
		t.Errorf("the COPY --from=a of the last stage, which never started, is reported:\n%s", plain.String())
	}
	for _, want := range []string{"#2 \x1b[1;33mCANCELED\x1b[0m ", "#4 \x1b[1;31mERROR\x1b[0m ", "#6 \x1b[1;33mCANCELED\x1b[0m "} {
		if !strings.Contains(tty.String(), want) {
			t.Errorf("tty progress has no %q:\n%q", want, tty.String())
		}
	}

	// JSON: each instruction's done and its entry's entry-done say
	// canceled, with no error; the failure's carry the error.
	ends := map[string]Event{}
	for _, line := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("JSON progress line %q: %v", line, err)
		}
		if e.Kind == EventDone || e.Kind == EventEntryDone {
			ends[fmt.Sprintf("%s %d", e.Kind, e.Entry)] = e
		}
		if e.Canceled && !strings.Contains(line, `"canceled":true`) {
			t.Errorf("a canceled event is written without \"canceled\":true: %s", line)
		}
	}
	for _, n := range []int{2, 6} {
		for _, kind := range []EventKind{EventDone, EventEntryDone} {
			e, ok := ends[fmt.Sprintf("%s %d", kind, n)]
			if !ok || !e.Canceled || e.Error != "" || e.Cached {
				t.Errorf("%s of entry %d = %+v (found %v), want canceled with no error", kind, n, e, ok)
			}
		}
	}
	for _, kind := range []EventKind{EventDone, EventEntryDone} {
		e := ends[fmt.Sprintf("%s %d", kind, 4)]
		if e.Canceled || e.Error != failure.Error() {
			t.Errorf("%s of the failed entry 4 = %+v, want error %q", kind, e, failure.Error())
		}
	}
}

// When the build's context is cancelled (Ctrl-C), every running entry
// ends CANCELED and none ERROR.
func TestProgressCanceledBuild(t *testing.T) {
	var plain bytes.Buffer
	x, sleep, _, _, _ := uCancelLayer(t, NewPlainProgress(&plain))
	x.advance()
	x.event(build.Event{Kind: build.VertexStarted, Vertex: sleep})
	x.event(build.Event{Kind: build.VertexCanceled, Vertex: sleep, Err: errors.Join(errors.New("interrupted"), context.Canceled)})
	x.abort(context.Canceled)
	if !strings.Contains(plain.String(), "\n#2 CANCELED ") || strings.Contains(plain.String(), "ERROR") {
		t.Errorf("plain progress after a cancelled build:\n%s", plain.String())
	}
}

// Event.setError: a step's end is canceled for a canceledError or the
// build's context's cancellation, failed for anything else.
func TestEventSetError(t *testing.T) {
	boom := errors.New("exit status 2")
	for _, c := range []struct {
		err      error
		canceled bool
		msg      string
	}{
		{nil, false, ""},
		{boom, false, "exit status 2"},
		{canceled(boom), true, ""},
		{fmt.Errorf("step: %w", canceled(boom)), true, ""},
		{context.Canceled, true, ""},
		{fmt.Errorf("exec: %w", context.Canceled), true, ""},
	} {
		var e Event
		e.setError(c.err)
		if e.Canceled != c.canceled || e.Error != c.msg {
			t.Errorf("setError(%v): Canceled %v, Error %q; want %v, %q", c.err, e.Canceled, e.Error, c.canceled, c.msg)
		}
	}
	if canceled(nil) != nil {
		t.Error("canceled(nil) is not nil")
	}
	if err := canceled(boom); !errors.Is(err, boom) {
		t.Errorf("canceled(boom) = %v does not wrap boom", err)
	}
}
