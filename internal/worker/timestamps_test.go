package worker

import (
	"archive/tar"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/solver/pb"
)

// TestKeepTimestamps writes one file op's layer with the default clamp and
// with WithKeepTimestamps: the mtime after the epoch becomes the epoch, or
// stays as the op set it, to the nanosecond; the two Workers' key salts
// differ, so neither reuses the other's layers.
func TestKeepTimestamps(t *testing.T) {
	ts := time.Unix(1_700_000_000, 123456789)
	op := &pb.FileOp{Actions: []*pb.FileAction{
		fileAction(-1, -1, -1, &pb.FileActionMkDir{Path: "/app", Mode: 0o755, Timestamp: ts.UnixNano()}),
		fileAction(0, -1, 0, &pb.FileActionMkFile{Path: "/app/f", Data: []byte("hi"), Mode: 0o644, Timestamp: ts.UnixNano()}),
	}}
	salts := map[string]bool{}
	for _, tc := range []struct {
		name string
		opts []Option
		want time.Time
	}{
		{"clamp", nil, defaultEpoch},
		{"clamp to another epoch", []Option{WithEpoch(time.Unix(1_600_000_000, 0))}, time.Unix(1_600_000_000, 0)},
		{"keep", []Option{WithKeepTimestamps()}, ts},
		{"keep with an epoch", []Option{WithEpoch(time.Unix(1_600_000_000, 0)), WithKeepTimestamps()}, ts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorker(t, tc.opts...)
			start := time.Now().Add(-time.Second) // file times come from a coarser clock
			salts[w.KeySalt()] = true
			outs, err := w.File(context.Background(), op, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := outs[0].(*Ref)
			rc, err := w.blobs.OpenLayer(r.Layers[0])
			must(t, err)
			defer rc.Close()
			tr := tar.NewReader(rc)
			n := 0
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				must(t, err)
				n++
				want := tc.want
				if h.Name == "app/" && tc.want == ts {
					// Writing app/f moved the directory's mtime to now.
					if h.ModTime.Before(start) {
						t.Errorf("app/: mtime %s, want the time app/f was written", h.ModTime.UTC().Format(time.RFC3339Nano))
					}
					continue
				}
				if !h.ModTime.Equal(want) {
					t.Errorf("%s: mtime %s, want %s", h.Name, h.ModTime.UTC().Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
				}
			}
			if n != 2 {
				t.Errorf("layer has %d entries, want app/ and app/f", n)
			}
			if keep := strings.Contains(w.KeySalt(), "timestamps=keep"); keep != (tc.want == ts) {
				t.Errorf("KeySalt() = %q: it must say whether mtimes are kept", w.KeySalt())
			}
		})
	}
	// keep, with or without an epoch, is one salt; each clamp epoch another.
	if len(salts) != 3 {
		t.Errorf("key salts %v: want 3 different ones", salts)
	}
}
