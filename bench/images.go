package main

// The images part of parallel: a recipe of two independent images, built
// together, against each built alone (README.md, "two images").

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// imagesTarget: the two images built by one command, over the sum of each
// built alone.
const imagesTarget = 0.60

// imagesRecipe has two images, left and right, on the base, each with one
// RUN that writes token and compresses its own range of numbers (as the
// parallel Dockerfile's stages do).
func imagesRecipe(token string) string {
	var sb strings.Builder
	for i, name := range []string{"left", "right"} {
		first := i*stageNumbers + 1
		fmt.Fprintf(&sb, "%s:\n  %s  - run_commands: [\"echo %s > /token && seq %d %d | gzip -9 >/%s.gz\"]\n",
			name, baseStep, token, first, first+stageNumbers-1, name)
	}
	return sb.String()
}

// imagesRun is one round: both images by one command, and each alone.
type imagesRun struct {
	together, left, right run
}

// images times, -n rounds, cold: `snapbuild build images.yaml` (both
// images), then `snapbuild build images.yaml left` and `... right` on a
// fresh token each, the order changing per round.
func (b *bench) images(ctx context.Context) error {
	logf("images: a recipe of two independent images, together and one at a time")
	file := filepath.Join(b.dir, "images.yaml")
	var rounds []imagesRun
	var invalid []string
	build := func(token string, images ...string) (run, error) {
		if err := os.WriteFile(file, []byte(imagesRecipe(token)), 0o644); err != nil {
			return run{}, err
		}
		args := append([]string{"build", file}, images...)
		r, err := b.command(ctx, 10*time.Minute, b.bin, append(args, "--root", b.store, "--progress=json")...)
		if err != nil {
			return r, err
		}
		// One summary line per image, each with one container started.
		n := 0
		for _, l := range strings.Split(r.stdout, "\n") {
			var out struct {
				Kind  string
				Stats stats
			}
			if json.Unmarshal([]byte(l), &out) == nil && out.Kind == "image" {
				n++
				if out.Stats.ContainersStarted != 1 {
					invalid = append(invalid, fmt.Sprintf("%v: an image started %d containers, want 1", images, out.Stats.ContainersStarted))
				}
			}
		}
		want := len(images)
		if want == 0 {
			want = 2
		}
		if n != want {
			invalid = append(invalid, fmt.Sprintf("%v: %d image summaries, want %d", images, n, want))
		}
		return r, nil
	}
	if _, err := build(fmt.Sprintf("warm-%x", time.Now().UnixNano())); err != nil { // untimed warm-up
		return err
	}
	for i := 1; i <= b.n; i++ {
		token := fmt.Sprintf("%x", time.Now().UnixNano())
		var ir imagesRun
		steps := []func() error{
			func() (err error) { ir.together, err = build(token + "-t"); return err },
			func() (err error) { ir.left, err = build(token+"-a", "left"); return err },
			func() (err error) { ir.right, err = build(token+"-a", "right"); return err },
		}
		if i%2 == 0 {
			steps = append(steps[1:], steps[0])
		}
		for _, f := range steps {
			if err := f(); err != nil {
				return err
			}
		}
		rounds = append(rounds, ir)
		if b.verbose {
			logf("images %d/%d: together %s, left %s, right %s", i, b.n, secs(ir.together.wall), secs(ir.left.wall), secs(ir.right.wall))
		}
	}

	var together, sum []time.Duration
	var ratios []float64
	for _, r := range rounds {
		together = append(together, r.together.wall)
		s := r.left.wall + r.right.wall
		sum = append(sum, s)
		ratios = append(ratios, r.together.wall.Seconds()/s.Seconds())
	}
	ratio := medianFloat(ratios)
	fmt.Printf("\ntwo independent images of one recipe (seq | gzip -9 of %d numbers each), cold, median of %d\n\n", stageNumbers, b.n)
	row := "%-34s  %s\n"
	fmt.Printf(row, "both, one command", secs(medianOf(together)))
	fmt.Printf(row, "each alone, sum", secs(medianOf(sum)))
	fmt.Printf(row, "both / sum (median per round)", fmt.Sprintf("%.2fx (target <= %.2fx)", ratio, imagesTarget))
	b.verdict(ratio <= imagesTarget, fmt.Sprintf("two images %.2fx their sequential sum <= %.2fx", ratio, imagesTarget))
	if len(invalid) > 0 {
		b.notes = append(b.notes, "INVALID two images: "+invalid[0])
	}
	return nil
}
