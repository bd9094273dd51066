package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/snapbuild/snapbuild/internal/worker"
)

// Timestamps is snapbuild.Timestamps.
type Timestamps string

const (
	// TimestampsClamp writes every mtime later than the build's epoch
	// (SOURCE_DATE_EPOCH, WithEpoch; DefaultEpoch when neither is set) as
	// the epoch and keeps earlier ones, so that a step that writes the same
	// files gives the same layer digest whenever it runs: BuildKit's
	// rewrite-timestamp=true exporter option with SOURCE_DATE_EPOCH set.
	TimestampsClamp Timestamps = "clamp"
	// TimestampsKeep writes mtimes as the steps left them, to the
	// nanosecond: what docker build does when SOURCE_DATE_EPOCH is unset
	// (BuildKit's rewrite-timestamp=false), for tools that compare mtimes
	// (make, the mtime-checked .pyc files of a Python that does not see
	// SOURCE_DATE_EPOCH). Layers then change with the time they are built
	// at: rebuilding a step without its cache gives another digest.
	// Whiteouts carry the Unix epoch. RUN steps and Debian bootstraps still
	// see SOURCE_DATE_EPOCH, as with a build arg of that name and
	// rewrite-timestamp=false. Bases are as they come: a pulled image's
	// mtimes are its own, and a Debian bootstrap is clamped in both modes
	// (as Debian's own images are), so both share it.
	TimestampsKeep Timestamps = "keep"
)

// ParseTimestamps is snapbuild.ParseTimestamps.
func ParseTimestamps(s string) (Timestamps, error) {
	switch t := Timestamps(s); t {
	case TimestampsClamp, TimestampsKeep:
		return t, nil
	}
	return "", fmt.Errorf("timestamps %q: use %q (mtimes clamped to SOURCE_DATE_EPOCH, reproducible) or %q (mtimes as the steps left them)",
		s, TimestampsClamp, TimestampsKeep)
}

// WithTimestamps is snapbuild.WithTimestamps.
func WithTimestamps(t Timestamps) Option {
	return func(b *Engine) error {
		t, err := ParseTimestamps(string(t))
		if err != nil {
			return err
		}
		b.timestamps = t
		return nil
	}
}

// keepTimestamps reports whether layers keep real mtimes.
func (b *Engine) keepTimestamps() bool { return b.timestamps == TimestampsKeep }

// layerEpoch is overlay.DiffOptions.Epoch for the layers b writes: nil when
// real mtimes are kept.
func (b *Engine) layerEpoch() *time.Time {
	if b.keepTimestamps() {
		return nil
	}
	return &b.epoch
}

// timestampsKey returns the cache key of a step under b's Timestamps: key
// itself when mtimes are clamped (so that stores made before the choice
// existed keep their cache), a key derived from it when they are kept.
func (b *Engine) timestampsKey(key string) string {
	if !b.keepTimestamps() {
		return key
	}
	sum := sha256.Sum256([]byte("snapbuild-timestamps/1 keep\n" + key))
	return hex.EncodeToString(sum[:])
}

// timestampsWorkerOptions are the worker options for b's Timestamps.
func (b *Engine) timestampsWorkerOptions() []worker.Option {
	if b.keepTimestamps() {
		return []worker.Option{worker.WithKeepTimestamps()}
	}
	return nil
}
