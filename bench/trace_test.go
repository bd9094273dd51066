package main

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
)

// TestTraced counts a real strace run: bash starts true (two execve) and
// opens a TCP connection to a listener on 127.0.0.1 (one inet connect).
func TestTraced(t *testing.T) {
	st, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	b := &bench{dir: t.TempDir(), strace: st}
	c, err := b.traced(context.Background(), nil, "bash", "-c", "/bin/true; exec 3<>/dev/tcp/127.0.0.1/"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	if c.execs != 2 || c.inet != 1 {
		t.Errorf("traced(bash -c 'true; /dev/tcp') = %+v, want 2 execve and 1 inet connect", c)
	}
}
