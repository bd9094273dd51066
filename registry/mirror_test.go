package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestMirrors(t *testing.T) {
	f := registries(t)
	isolateCredentials(t)
	ctx := context.Background()
	// The plain registry plays a Docker Hub mirror: docker.io/test/gzip:1 is
	// test/gzip:1 there.
	dead, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	deadHost := fmt.Sprintf("127.0.0.1:%d", dead)
	want := digestOf(t, f.images["gzip"])
	ref := mustRef(t, "docker.io/test/gzip:1")

	t.Run("mirror serves, origin never contacted", func(t *testing.T) {
		conf, err := ParseConfig([]byte(`
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "` + f.plain.host + `"
insecure = true
`))
		if err != nil {
			t.Fatal(err)
		}
		guard := newGuard()
		var logs []string
		img, err := Pull(ctx, ref, WithRegistriesConfig(conf), WithTransport(guard), WithLogf(func(format string, args ...any) {
			logs = append(logs, fmt.Sprintf(format, args...))
		}))
		if err != nil {
			t.Fatalf("Pull(%s) through the mirror = %v", ref, err)
		}
		if got := digestOf(t, img); got != want {
			t.Errorf("Pull(%s) = %s, want %s", ref, got, want)
		}
		if err := readAllLayers(img); err != nil {
			t.Fatal(err)
		}
		hosts := guard.seen()
		if len(hosts) == 0 {
			t.Fatal("the guard saw no request")
		}
		for _, h := range hosts {
			if h != f.plain.host {
				t.Errorf("a request went to %s; only the mirror %s should be contacted (all: %v)", h, f.plain.host, hosts)
			}
		}
		t.Logf("%d requests, all to the mirror; log: %v", len(hosts), logs)
		if !slices.ContainsFunc(logs, func(s string) bool { return strings.Contains(s, "from "+f.plain.host+"/test/gzip:1") }) {
			t.Errorf("log %v does not say which mirror served the pull", logs)
		}
	})

	t.Run("mirrors in order, then the location", func(t *testing.T) {
		// First mirror down, second mirror lacks the image, location has it.
		conf, err := ParseConfig([]byte(`
[[registry]]
prefix = "docker.io/test"
location = "` + f.plain.host + `/test"
insecure = true
[[registry.mirror]]
location = "` + deadHost + `/test"
insecure = true
[[registry.mirror]]
location = "` + f.plain.host + `/empty"
`))
		if err != nil {
			t.Fatal(err)
		}
		guard := newGuard()
		img, err := Pull(ctx, ref, WithRegistriesConfig(conf), WithTransport(guard))
		if err != nil {
			t.Fatalf("Pull(%s) = %v", ref, err)
		}
		if got := digestOf(t, img); got != want {
			t.Errorf("Pull(%s) = %s, want %s", ref, got, want)
		}
		hosts := guard.seen()
		first := slices.Index(hosts, deadHost)
		if first != 0 {
			t.Errorf("requests went to %v; the dead mirror %s should be tried first", hosts, deadHost)
		}
	})

	t.Run("all candidates fail: one error listing each", func(t *testing.T) {
		conf, err := ParseConfig([]byte(`
[[registry]]
prefix = "docker.io"
location = "` + f.plain.host + `/nothing-here"
insecure = true
[[registry.mirror]]
location = "` + deadHost + `"
insecure = true
[[registry.mirror]]
location = "` + f.secure.host + `"
`))
		if err != nil {
			t.Fatal(err)
		}
		guard := newGuard()
		_, err = Pull(ctx, ref, WithRegistriesConfig(conf), WithTransport(guard))
		t.Logf("all fail: %v", err)
		var pe *PullError
		if !errors.As(err, &pe) || len(pe.Candidates) != 3 {
			t.Fatalf("Pull(%s) = %v, want a *PullError with 3 candidates", ref, err)
		}
		msg := err.Error()
		for _, c := range []string{deadHost + "/test/gzip:1", f.secure.host + "/test/gzip:1", f.plain.host + "/nothing-here/test/gzip:1", "connection refused", "registry not trusted", "image not found"} {
			if !strings.Contains(msg, c) {
				t.Errorf("error does not mention %q: %s", c, msg)
			}
		}
		if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrUntrusted) {
			t.Errorf("error should match ErrNotFound and ErrUntrusted: %v", err)
		}
		if i, j := strings.Index(msg, deadHost), strings.Index(msg, "nothing-here"); i > j {
			t.Errorf("mirrors should be listed before the location: %s", msg)
		}
	})

	t.Run("blocked", func(t *testing.T) {
		conf, err := ParseConfig([]byte(`
[[registry]]
prefix = "docker.io"
blocked = true
[[registry.mirror]]
location = "` + f.plain.host + `"
insecure = true
`))
		if err != nil {
			t.Fatal(err)
		}
		guard := newGuard()
		_, err = Pull(ctx, ref, WithRegistriesConfig(conf), WithTransport(guard))
		if !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), `"docker.io"`) {
			t.Errorf("Pull(%s) = %v, want ErrBlocked naming the prefix", ref, err)
		}
		if hosts := guard.seen(); len(hosts) != 0 {
			t.Errorf("a blocked pull sent requests to %v", hosts)
		}
	})

	t.Run("digest-only mirror skipped for tags", func(t *testing.T) {
		conf, err := ParseConfig([]byte(`
[[registry]]
prefix = "docker.io/test"
location = "` + f.plain.host + `/test"
insecure = true
[[registry.mirror]]
location = "` + deadHost + `/test"
pull-from-mirror = "digest-only"
`))
		if err != nil {
			t.Fatal(err)
		}
		guard := newGuard()
		if _, err := Pull(ctx, ref, WithRegistriesConfig(conf), WithTransport(guard)); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(guard.seen(), deadHost) {
			t.Errorf("the digest-only mirror was tried for a tag: %v", guard.seen())
		}
		byDigest := mustRef(t, "docker.io/test/gzip@"+want.String())
		guard = newGuard()
		if _, err := Pull(ctx, byDigest, WithRegistriesConfig(conf), WithTransport(guard)); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(guard.seen(), deadHost) {
			t.Errorf("the digest-only mirror was not tried for a digest: %v", guard.seen())
		}
	})
}
