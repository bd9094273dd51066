package main

// Process and connection counts of one build, from strace (README.md,
// "processes and connections").

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// traceCounts is what one traced command did, over its whole process tree.
type traceCounts struct {
	execs   int      // successful execve calls: programs started, re-executions included
	inet    int      // connect calls to AF_INET or AF_INET6 addresses, failed ones included
	unix    int      // connect calls to AF_UNIX sockets (a daemon, the journal, nscd)
	targets []string // the AF_INET/AF_INET6 addresses, first few
}

// traced runs name args under `strace -f -e trace=execve,connect` with the
// environment env (nil: the bench's own), untimed (strace slows every
// syscall), and counts what the whole process tree did.
func (b *bench) traced(ctx context.Context, env []string, name string, args ...string) (traceCounts, error) {
	out := filepath.Join(b.dir, fmt.Sprintf("strace-%d.txt", time.Now().UnixNano()))
	defer os.Remove(out)
	targs := append([]string{"-f", "-qq", "-e", "trace=execve,connect", "-o", out, "--", name}, args...)
	if _, err := b.commandEnv(ctx, 10*time.Minute, env, b.strace, targs...); err != nil {
		return traceCounts{}, err
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return traceCounts{}, err
	}
	return parseTrace(string(data)), nil
}

// parseTrace counts an `strace -f` log: each line starts with the PID.
func parseTrace(log string) traceCounts {
	var c traceCounts
	for _, l := range strings.Split(log, "\n") {
		_, call, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		call = strings.TrimSpace(call)
		switch {
		case strings.HasPrefix(call, "execve(") && strings.Contains(call, ") = 0"):
			c.execs++
		case strings.HasPrefix(call, "connect("):
			switch {
			case strings.Contains(call, "AF_INET"): // AF_INET and AF_INET6
				c.inet++
				if len(c.targets) < 3 {
					c.targets = append(c.targets, connectAddr(call))
				}
			case strings.Contains(call, "AF_UNIX"):
				c.unix++
			}
		}
	}
	return c
}

// connectAddr cuts the address out of a traced connect call.
func connectAddr(call string) string {
	if i := strings.Index(call, "sin"); i >= 0 {
		call = call[i:]
	}
	if i := strings.Index(call, "}"); i >= 0 {
		call = call[:i]
	}
	return call
}

func (c traceCounts) String() string {
	s := fmt.Sprintf("%d execve, %d network connects", c.execs, c.inet)
	if c.inet > 0 {
		s += " (" + strings.Join(c.targets, "; ") + ")"
	}
	return s
}
