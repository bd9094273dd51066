package remote

import (
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// EventKind is what happened to a vertex of a remote solve.
type EventKind int

const (
	// VertexStarted: the vertex's op started (it was not cached).
	VertexStarted EventKind = iota
	// VertexCached: buildkitd had the vertex's result in its cache.
	VertexCached
	// VertexDone: the vertex's op ran and succeeded.
	VertexDone
	// VertexFailed: the vertex's op ran and failed; Event.Err says why.
	VertexFailed
	// VertexLog: the vertex's process wrote Event.Data to Event.Stream
	// (1 standard output, 2 standard error).
	VertexLog
)

// Event is one change of a vertex of a remote solve, named by the op
// digest the definition gives it.
type Event struct {
	Kind   EventKind
	Vertex digest.Digest
	Name   string // BuildKit's name of the vertex ("[2/3] RUN make")
	Err    string // for VertexFailed
	Data   []byte // for VertexLog
	Stream int    // for VertexLog
}

// statusMapper turns BuildKit's solve status updates into Events. BuildKit
// sends a vertex again on each change of its state (started, completed,
// cached); the mapper reports each state of a vertex once: started before
// done or failed, and a cached vertex as cached only. Logs are passed on
// as they come. It is used by one goroutine.
type statusMapper struct {
	started map[digest.Digest]bool
	ended   map[digest.Digest]bool
}

func newStatusMapper() *statusMapper {
	return &statusMapper{started: map[digest.Digest]bool{}, ended: map[digest.Digest]bool{}}
}

// Map returns the events status adds to what the mapper has seen.
func (m *statusMapper) Map(status *client.SolveStatus) []Event {
	var evs []Event
	for _, v := range status.Vertexes {
		if v == nil || m.ended[v.Digest] {
			continue
		}
		if v.Cached {
			m.ended[v.Digest] = true
			evs = append(evs, Event{Kind: VertexCached, Vertex: v.Digest, Name: v.Name})
			continue
		}
		if v.Started != nil && !m.started[v.Digest] {
			m.started[v.Digest] = true
			evs = append(evs, Event{Kind: VertexStarted, Vertex: v.Digest, Name: v.Name})
		}
		if v.Completed == nil {
			continue
		}
		m.ended[v.Digest] = true
		if !m.started[v.Digest] {
			// Completed without a start: a failure before the op ran.
			m.started[v.Digest] = true
			evs = append(evs, Event{Kind: VertexStarted, Vertex: v.Digest, Name: v.Name})
		}
		if v.Error != "" {
			evs = append(evs, Event{Kind: VertexFailed, Vertex: v.Digest, Name: v.Name, Err: v.Error})
		} else {
			evs = append(evs, Event{Kind: VertexDone, Vertex: v.Digest, Name: v.Name})
		}
	}
	for _, l := range status.Logs {
		if l == nil || len(l.Data) == 0 {
			continue
		}
		evs = append(evs, Event{Kind: VertexLog, Vertex: l.Vertex, Data: l.Data, Stream: l.Stream})
	}
	return evs
}
