package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapbuild/snapbuild"
)

// TestBuildLog: the log has every line of a step that the view clips, and
// a store keeps the last keepBuildLogs logs.
func TestBuildLog(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < keepBuildLogs+5; i++ {
		name := filepath.Join(dir, "20200101T0000"+string(rune('a'+i))+"Z-00000000.log")
		if err := os.WriteFile(name, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var view bytes.Buffer
	l := &buildLog{view: snapbuild.NewPlainProgress(&view, snapbuild.StepLogLimit(1000))}
	if err := l.open(root); err != nil {
		t.Fatal(err)
	}
	step := snapbuild.Event{Step: 1, Total: 1, Instruction: "RUN yes"}
	start, done := step, step
	start.Kind, done.Kind = snapbuild.EventStart, snapbuild.EventDone
	l.Event(start)
	line := strings.Repeat("y", 99)
	for i := 0; i < 100; i++ {
		out := step
		out.Kind, out.Line = snapbuild.EventOutput, line
		l.Event(out)
	}
	l.Event(done)
	path, err := l.close()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != dir || !strings.HasSuffix(path, ".log") {
		t.Errorf("log at %s, want a .log file in %s", path, dir)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "#1 "+line+"\n"); n != 100 || strings.Contains(string(data), "clipped") {
		t.Errorf("the log holds %d of the 100 lines (clipped: %v)", n, strings.Contains(string(data), "clipped"))
	}
	if n := strings.Count(view.String(), "#1 "+line+"\n"); n != 10 || !strings.Contains(view.String(), "[output clipped, log limit 1000B reached]") {
		t.Errorf("the view shows %d lines, want 10 and the clip line:\n%s", n, view.String())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != keepBuildLogs {
		t.Errorf("%d logs kept, want %d", len(ents), keepBuildLogs)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the new log was pruned: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "20200101T0000aZ-00000000.log")); err == nil {
		t.Error("the oldest log was kept")
	}
}
