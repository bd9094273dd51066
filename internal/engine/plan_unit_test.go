package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/snapbuild/snapbuild/internal/build"
	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/internal/worker"
)

// storeFiles lists the files under root with their sizes and times, to show
// that a dry run writes nothing.
func storeFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fi.ModTime().String() + " " + fi.Mode().String()
		if !d.IsDir() {
			out[p] += " " + string(rune(fi.Size()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPlan(t *testing.T) {
	b := uBuilder(t)
	base := uExecLayer(t, b, &buildState{}, FromScratch().Env(map[string]string{"PATH": "/bin"}).last())
	if err := b.Tag("base", base.ID); err != nil {
		t.Fatal(err)
	}
	img := FromID("base").Env(map[string]string{"A": "1"}).RunCommands([]string{"echo one", "echo two"}).
		Env(map[string]string{"B": "2"}).AddLocalFile("plan.go", "/plan.go", false)
	before := storeFiles(t, b.Root())
	p, err := b.Plan(context.Background(), img.layers)
	if err != nil {
		t.Fatal(err)
	}
	if after := storeFiles(t, b.Root()); !reflect.DeepEqual(before, after) {
		t.Errorf("Plan changed the store:\nbefore %v\nafter  %v", before, after)
	}
	type step struct {
		instr string
		state PlanState
	}
	flat := func(p Plan) (methods []string, steps []step, keys []string) {
		for _, l := range p.Layers {
			methods = append(methods, l.Method)
			for _, s := range l.Steps {
				steps = append(steps, step{s.Instruction, s.State})
				keys = append(keys, s.Key)
			}
		}
		return
	}
	methods, steps, keys := flat(p)
	if want := []string{"from_id", "env", "run_commands", "env", "add_local_file"}; !reflect.DeepEqual(methods, want) {
		t.Errorf("methods = %q, want %q", methods, want)
	}
	want := []step{
		{"FROM base", PlanConfig},
		{"ENV A=1", PlanConfig},
		{"RUN echo one", PlanRun},
		{"RUN echo two", PlanPending},
		{"ENV B=2", PlanPending},
	}
	if !reflect.DeepEqual(steps, want) {
		t.Errorf("steps = %v, want %v", steps, want)
	}
	if len(keys[2]) != 64 || keys[3] != "" || keys[0] != "" {
		t.Errorf("keys = %q: want a key for the first step that would run only", keys)
	}
	if !p.Layers[4].Runtime || p.Layers[2].Commands[1] != "RUN echo one" {
		t.Errorf("layers = %+v", p.Layers)
	}
	if n := p.Steps(); n[PlanRun] != 1 || n[PlanPending] != 2 || n[PlanConfig] != 2 {
		t.Errorf("Steps() = %v", n)
	}

	// Once the first RUN is cached (it changed nothing), the plan goes on
	// to the second, whose key is now known, and it is the same key again.
	w, err := worker.New(b.store.Blobs(), b.store.Snapshots(), filepath.Join(b.Root(), "worker"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Cache().Put(context.Background(), digest.NewDigestFromEncoded(digest.SHA256, keys[2]), []build.Ref{&worker.Ref{}}); err != nil {
		t.Fatal(err)
	}
	p2, err := b.Plan(context.Background(), img.layers)
	if err != nil {
		t.Fatal(err)
	}
	_, steps2, keys2 := flat(p2)
	if steps2[2].state != PlanCached || steps2[3].state != PlanRun || keys2[2] != keys[2] || len(keys2[3]) != 64 {
		t.Errorf("after caching step 3: %v %q", steps2, keys2)
	}

	// force_build: every filesystem step would run again.
	b.forceAll = true
	p3, err := b.Plan(context.Background(), img.layers)
	b.forceAll = false
	if err != nil {
		t.Fatal(err)
	}
	if _, steps3, _ := flat(p3); steps3[2].state != PlanRun || p3.Layers[2].Steps[0].Note != "run again: force_build" {
		t.Errorf("forced: %+v", p3.Layers[2])
	}

	// Errors found before any step runs are Build's.
	_, err = b.Plan(context.Background(), FromID("nope").RunCommands([]string{"true"}).layers)
	var inv *modal.InvalidError
	if err == nil || errors.As(err, &inv) && inv.Method != "from_id" {
		t.Errorf("plan of a missing base: %v", err)
	}
}

func TestTagResultWith(t *testing.T) {
	b := uBuilder(t)
	st := uRootState(t, b)
	one := uExecLayer(t, b, st, DebianSlim("3.11").last())
	two := uExecLayer(t, b, st, DebianSlim("3.11").Env(map[string]string{"X": "1"}).last())
	if one.ID == two.ID {
		t.Fatal("test images are the same")
	}
	tag := func(name string, res Result, o TagOptions) (Tagged, error) {
		t.Helper()
		return b.TagResultWith(name, res, o)
	}
	if got, err := tag("p:image", one, TagOptions{Source: "/a/app.py"}); err != nil || got != (Tagged{}) {
		t.Fatalf("new name: %+v, %v", got, err)
	}
	// The same source moves its own name, and says so.
	if got, err := tag("p:image", two, TagOptions{Source: "/a/app.py"}); err != nil || got.Previous != one.ID || got.PreviousSource != "/a/app.py" {
		t.Fatalf("same source: %+v, %v", got, err)
	}
	// Another source may not.
	_, err := tag("p:image", one, TagOptions{Source: "/b/app.py"})
	var taken *NameTakenError
	if !errors.As(err, &taken) || taken.ID != two.ID || taken.Source != "/a/app.py" || taken.NewSource != "/b/app.py" {
		t.Fatalf("other source: %v", err)
	}
	if info, _ := b.Inspect("p:image"); info.ID != two.ID {
		t.Errorf("a refused tag moved the name to %s", info.ID)
	}
	// Unless asked to.
	if got, err := tag("p:image", one, TagOptions{Source: "/b/app.py", Replace: true}); err != nil || got.Previous != two.ID {
		t.Fatalf("replace: %+v, %v", got, err)
	}
	// The same image again is no move; a name with no recorded source
	// (given by Tag, pull or load) is not taken over silently either.
	if got, err := tag("p:image", one, TagOptions{Source: "/c/app.py"}); err != nil || got != (Tagged{}) {
		t.Fatalf("same image: %+v, %v", got, err)
	}
	if err := b.Tag("pulled", one.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tag("pulled", two, TagOptions{Source: "/a/app.py"}); !errors.As(err, &taken) || taken.Source != "" {
		t.Fatalf("untracked name: %v", err)
	}
	// Remove forgets the source with the name.
	if err := b.Remove("p:image"); err != nil {
		t.Fatal(err)
	}
	if src, _ := b.store.Sources(); src["p:image"] != "" {
		t.Errorf("source kept after Remove: %q", src)
	}
}

func TestCheckName(t *testing.T) {
	b := uBuilder(t)
	one := uExecLayer(t, b, &buildState{}, FromScratch().Env(map[string]string{"A": "1"}).last())
	if err := b.CheckName("p:image", TagOptions{Source: "/a/app.py"}); err != nil {
		t.Errorf("a new name: %v", err)
	}
	if _, err := b.TagResultWith("p:image", one, TagOptions{Source: "/a/app.py"}); err != nil {
		t.Fatal(err)
	}
	var taken *NameTakenError
	for _, c := range []struct {
		o    TagOptions
		fail bool
	}{
		{TagOptions{Source: "/a/app.py"}, false},
		{TagOptions{Source: "/b/app.py"}, true},
		{TagOptions{Source: "/b/app.py", Replace: true}, false},
		{TagOptions{}, true},
	} {
		err := b.CheckName("p:image", c.o)
		if c.fail != errors.As(err, &taken) || (!c.fail && err != nil) {
			t.Errorf("CheckName(%+v) = %v", c.o, err)
		}
	}
	if err := b.CheckName("im-x", TagOptions{}); err == nil {
		t.Error("CheckName of an invalid name: no error")
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"hello", "myapp:v1", "a/b:c", "registry.local:5000/team/app:v1", "example-hello:image", "pkg.images:image",
		"ubuntu@sha256:" + strings.Repeat("a", 64)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "UPPER", "Foo:Bar", "../../../tmp/evil", "a b", "im-abc", "x:", ":tag", "a//b"} {
		if err := ValidateName(bad); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("image name %q", bad)) {
			t.Errorf("ValidateName(%q) = %v, want an error naming it", bad, err)
		}
	}
}
