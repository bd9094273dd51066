package engine

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// StepError is snapbuild.StepError.
type StepError struct {
	Step int // 1-based instruction number in the build (Event.Step)
	// Entry is the 1-based entry (recipe entry, Modal method call) the
	// instruction belongs to, as the progress numbers it (Event.Entry),
	// and Method its Modal method; 0 and "" when not known.
	Entry       int
	Method      string
	Instruction string // e.g. "RUN apt-get install -y git"
	ExitCode    int
	// TimedOut is the step's timeout when it was killed for running
	// longer (run_function's timeout=); 0 otherwise.
	TimedOut time.Duration
	Tail     []string // the last lines of the step's output
	// Cause is why the step failed where the builder can tell better
	// than the exit code (worker.ExitError.Cause); nil otherwise.
	Cause error
}

// Unwrap returns e.Cause.
func (e *StepError) Unwrap() error { return e.Cause }

func (e *StepError) Error() string {
	var b strings.Builder
	// "step 2 (run_commands) failed", numbered as the progress's [2/N].
	step := fmt.Sprint(e.Step)
	if e.Entry > 0 {
		step = fmt.Sprintf("%d (%s)", e.Entry, e.Method)
	}
	if e.TimedOut > 0 {
		fmt.Fprintf(&b, "step %s failed: %s: timed out after %s and was killed", step, e.Instruction, e.TimedOut)
	} else {
		fmt.Fprintf(&b, "step %s failed: %s: exit code %d", step, e.Instruction, e.ExitCode)
	}
	if e.Cause != nil {
		fmt.Fprintf(&b, ": %v", e.Cause)
	}
	if len(e.Tail) > 0 {
		b.WriteString("\nlast lines of output:\n")
		for _, l := range e.Tail {
			b.WriteString("  | ")
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// ErrNeedsSandbox is snapbuild.ErrNeedsSandbox.
var ErrNeedsSandbox = errors.New("this needs the build namespace: call sandbox.EnterNamespace (snapbuild.Init does) and try again")

// needsSandbox is the error of an Engine made WithoutSandbox at the point
// where it would do what (an instruction, "pulling REF"): it wraps
// ErrNeedsSandbox. It also marks the run, so that a build reports
// ErrNeedsSandbox however a caller on the way wrapped or reworded the
// error (a COPY --from image that "could not be pulled" was only not
// pulled here).
func (b *Engine) needsSandbox(what string) error {
	if b.sandboxNeeded != nil {
		b.sandboxNeeded.Store(true)
	}
	return fmt.Errorf("%s: %w", what, ErrNeedsSandbox)
}
