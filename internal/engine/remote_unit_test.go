package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"

	"github.com/snapbuild/snapbuild/internal/build"

	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/remote"
	"github.com/snapbuild/snapbuild/sandbox"
)

// TestRemoteRefusal: what a BuildKit builder cannot give a step is refused
// with an error naming the method and saying what to do.
func TestRemoteRefusal(t *testing.T) {
	host := &Engine{network: sandbox.NetworkHost}
	for _, c := range []struct {
		b    *Engine
		l    *modal.Layer
		want string
	}{
		{host, &modal.Layer{Method: "run_commands", GPU: "A100"}, "gpu= steps need the host's GPUs"},
		{host, &modal.Layer{Method: "run_commands", Volumes: map[string]modal.Volume{"/data": {Name: "data"}}}, "volumes= are directories of this machine"},
		{&Engine{network: sandbox.NetworkPrivate}, &modal.Layer{Method: "apt_install"}, "--network private"},
		{host, &modal.Layer{Method: "apt_install"}, ""},
		{&Engine{network: sandbox.NetworkNone}, &modal.Layer{Method: "apt_install"}, ""},
	} {
		why := c.b.remoteRefusal(c.l)
		if c.want == "" {
			if why != "" {
				t.Errorf("%s on network %s: refused: %s", c.l.Method, c.b.network, why)
			}
			continue
		}
		if !strings.Contains(why, c.want) {
			t.Errorf("%s: refusal %q, want %q", c.l.Method, why, c.want)
		}
		err := remoteLayer(c.l, why)
		var ie *modal.InvalidError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.l.Method) || !strings.Contains(err.Error(), "--builder") {
			t.Errorf("remoteLayer = %v; want an InvalidError naming %s and --builder", err, c.l.Method)
		}
	}
}

// TestRemoteEnv: the site's step environment reaches an op on a BuildKit
// builder where the op does not set the variable itself.
func TestRemoteEnv(t *testing.T) {
	e := &pb.ExecOp{Meta: &pb.Meta{Env: []string{"PATH=/usr/bin", "PIP_INDEX_URL=http://own/simple"}}}
	remoteEnv(e, []string{"PIP_INDEX_URL=http://site/simple", "SOURCE_DATE_EPOCH=315532800"})
	want := []string{"PATH=/usr/bin", "PIP_INDEX_URL=http://own/simple", "SOURCE_DATE_EPOCH=315532800"}
	if !slices.Equal(e.Meta.Env, want) {
		t.Errorf("env = %q, want %q", e.Meta.Env, want)
	}
}

// TestWithBuilderBadAddress: a builder address snapbuild cannot use fails
// New, before anything is opened, saying which forms are accepted.
func TestWithBuilderBadAddress(t *testing.T) {
	_, err := New(WithRoot(t.TempDir()), WithoutSandbox(), WithBuilder("buildkit://docker-container://bk", BuilderTLS{}))
	if err == nil || !strings.Contains(err.Error(), "buildkit://unix:///PATH/buildkitd.sock") {
		t.Errorf("New with a bad builder address: %v", err)
	}
	b, err := New(WithRoot(t.TempDir()), WithoutSandbox(), WithBuilder("buildkit://unix:///nonexistent/buildkitd.sock", BuilderTLS{}))
	if err != nil {
		t.Fatalf("New with a builder not running yet: %v (the connection is made by the first build)", err)
	}
	if b.buildkit == nil || b.buildkit.Addr() != "unix:///nonexistent/buildkitd.sock" {
		t.Errorf("remote = %v", b.buildkit)
	}
	b.Close()
}

// TestWithBuilderAndCaches: the registry step cache is the local
// worker's; with a BuildKit builder New refuses it, naming both.
func TestWithBuilderAndCaches(t *testing.T) {
	_, err := New(WithRoot(t.TempDir()), WithoutSandbox(), WithBuilder("buildkit://unix:///nonexistent/buildkitd.sock", BuilderTLS{}), WithCacheTo("oci:"+t.TempDir()+":c"))
	if err == nil || !strings.Contains(err.Error(), "--cache-from and --cache-to work with local builds only") || !strings.Contains(err.Error(), "unix:///nonexistent/buildkitd.sock") {
		t.Errorf("New with a builder and --cache-to: %v", err)
	}
}

// TestRemoteEvents: buildkitd's vertex events become the progress of the
// instructions the vertices belong to, as the local solver's do: output
// under its instruction, secrets masked, a cached vertex CACHED, a failed
// RUN a StepError with BuildKit's exit code and the last lines.
func TestRemoteEvents(t *testing.T) {
	ctx := context.Background()
	first := llb.Image("docker.io/library/debian:bookworm@" + digest.FromString("m").String()).Run(llb.Shlex("echo hi")).Root()
	second := first.Run(llb.Shlex("false")).Root()
	d, err := second.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g, err := build.Load(d.ToPB())
	if err != nil {
		t.Fatal(err)
	}
	run2 := g.Target.Vertex
	run1 := run2.Inputs[0].Vertex
	x := llbSteps(t, "FROM debian:bookworm", "RUN echo hi", "RUN false")
	var evs []Event
	x.b = &Engine{progress: ProgressFunc(func(e Event) { evs = append(evs, e) })}
	x.mask = newRedactor(map[string]string{"TOKEN": "s3cr3t"})
	x.l = &modal.Layer{Method: "from_dockerfile", Root: &modal.RootSpec{Dockerfile: true}}
	for i, v := range []*build.Vertex{run1, run2} {
		s := x.steps[i+1]
		s.ev = Event{Step: i + 2, Total: 3, Instruction: s.in.Text}
		s.vtx[v.Digest], s.final, x.byVtx = true, v.Digest, map[digest.Digest]*llbStep{run1.Digest: x.steps[1], run2.Digest: x.steps[2]}
	}
	x.steps[0].skip = true
	for _, e := range []remote.Event{
		{Kind: remote.VertexCached, Vertex: run1.Digest},
		{Kind: remote.VertexStarted, Vertex: run2.Digest},
		{Kind: remote.VertexLog, Vertex: run2.Digest, Data: []byte("token s3cr3t\nlast li")},
		{Kind: remote.VertexLog, Vertex: run2.Digest, Data: []byte("ne")},
		{Kind: remote.VertexStarted, Vertex: digest.FromString("exporting")}, // BuildKit's own: ignored
	} {
		if ve := x.remoteEvent(g, e); ve != nil {
			t.Fatalf("event %+v: failure %v", e, ve)
		}
	}
	ve := x.remoteEvent(g, remote.Event{Kind: remote.VertexFailed, Vertex: run2.Digest, Err: `process "/bin/sh -c false" did not complete successfully: exit code: 3`})
	if ve == nil || ve.Digest != run2.Digest {
		t.Fatalf("failed vertex: %v", ve)
	}
	var se *StepError
	if err := x.stepError(ve); !errors.As(err, &se) || se.ExitCode != 3 || se.Instruction != "RUN false" || !slices.Equal(se.Tail, []string{"token [secret TOKEN]", "last line"}) {
		t.Errorf("stepError = %#v; want RUN false, exit code 3 and the masked last lines", err)
	}
	var got []string
	for _, e := range evs {
		switch e.Kind {
		case EventDone:
			got = append(got, fmt.Sprintf("%d done cached=%v err=%v", e.Step, e.Cached, e.Error != ""))
		case EventOutput:
			got = append(got, fmt.Sprintf("%d output %s", e.Step, e.Line))
		case EventStart:
			got = append(got, fmt.Sprintf("%d start", e.Step))
		}
	}
	want := []string{"2 start", "2 done cached=true err=false", "3 start", "3 output token [secret TOKEN]", "3 output last line", "3 done cached=false err=true"}
	if !slices.Equal(got, want) {
		t.Errorf("progress:\n got %q\nwant %q", got, want)
	}
}
