package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/snapbuild/snapbuild"
)

// keepBuildLogs is how many build logs a store keeps: opening one removes
// the oldest beyond it.
const keepBuildLogs = 20

// buildLog is the Progress that build installs in front of the one the
// user sees: it writes every event, as plain progress prints it but
// unclipped (every line of every step), to a file of the store's logs
// directory, <root>/logs/<UTC time>-<random>.log, and passes the event on.
type buildLog struct {
	view snapbuild.Progress

	mu   sync.Mutex
	path string
	f    *os.File
	w    *bufio.Writer
	log  snapbuild.Progress
	err  error // the first write error; the log stops there
}

// Event writes e to the log, then passes it to the view.
func (l *buildLog) Event(e snapbuild.Event) {
	l.mu.Lock()
	if l.log != nil && l.err == nil {
		l.log.Event(e)
		if e.Kind == snapbuild.EventDone || e.Kind == snapbuild.EventEntryDone || e.Kind == snapbuild.EventWarn {
			l.err = l.w.Flush()
		}
	}
	l.mu.Unlock()
	l.view.Event(e)
}

// open creates the log file under root (the store) and removes the oldest
// logs beyond keepBuildLogs. Events before open are not logged.
func (l *buildLog) open(root string) error {
	dir := filepath.Join(root, "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	var b [4]byte
	rand.Read(b[:])
	name := time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]) + ".log"
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	l.mu.Lock()
	l.path, l.f = f.Name(), f
	l.w = bufio.NewWriterSize(f, 256<<10)
	l.log = snapbuild.NewPlainProgress(l.w, snapbuild.StepLogLimit(-1))
	l.mu.Unlock()
	pruneBuildLogs(dir, name)
	return nil
}

// close flushes and closes the log file; it returns the file's path, or
// "" when none was opened or writing it failed (err says why).
func (l *buildLog) close() (path string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return "", nil
	}
	if l.err == nil {
		l.err = l.w.Flush()
	}
	if cerr := l.f.Close(); l.err == nil {
		l.err = cerr
	}
	l.f, l.log = nil, nil
	if l.err != nil {
		return "", fmt.Errorf("build log %s: %w", l.path, l.err)
	}
	return l.path, nil
}

// pruneBuildLogs removes the oldest *.log files of dir beyond
// keepBuildLogs, never keep (the one just made). Names start with their
// UTC time, so that their order is their age.
func pruneBuildLogs(dir, keep string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var logs []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".log") && e.Name() != keep {
			logs = append(logs, e.Name())
		}
	}
	sort.Strings(logs)
	for len(logs) > keepBuildLogs-1 {
		if err := os.Remove(filepath.Join(dir, logs[0])); err != nil && !errors.Is(err, os.ErrNotExist) {
			return
		}
		logs = logs[1:]
	}
}

// heldProgress keeps the events of a build that may have to start over in
// the build namespace (snapbuild.ErrNeedsSandbox), so that none is shown
// twice: replay passes them on once the build is known to stand.
type heldProgress struct {
	mu     sync.Mutex
	events []snapbuild.Event
}

// Event keeps e.
func (h *heldProgress) Event(e snapbuild.Event) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
}

// replay passes the events kept so far to p, in order, and forgets them.
func (h *heldProgress) replay(p snapbuild.Progress) {
	h.mu.Lock()
	evs := h.events
	h.events = nil
	h.mu.Unlock()
	for _, e := range evs {
		p.Event(e)
	}
}
