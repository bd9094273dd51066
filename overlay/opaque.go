package overlay

import (
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// An opaque upper directory at a path where the merged lowers have a
// directory too can be written in two ways that unpack to the same tree:
//
//   - whole: the directory, its opaque marker dir/.wh..wh..opq and every
//     entry of its upper subtree (what a directory deleted and made again
//     needs);
//   - per entry: only the entries that differ from the lower entry they
//     replace, plus a whiteout for each lower name the upper directory no
//     longer holds, recursively (what a directory renamed away and back
//     needs: overlayfs refuses to rename a lower directory without
//     redirect_dir, mv falls back to copy and delete, and the directory that
//     returns is an opaque copy of the one that left).
//
// Diff plans both and writes the smaller one, the whole form on a tie. The
// size counted is that of the tar stream: a 512-byte header per entry plus
// file data in 512-byte blocks. Planning reads the names of the lower
// directories at the paths the opaque subtree holds, and compares file
// contents only where all metadata match, so its cost is of the order of
// the subtree's own.

const blockSize = 512

// dirPlan is what Diff writes for one opaque directory (or, inside one, for
// a directory that both the upper subtree and the merged lowers hold).
type dirPlan struct {
	whole  bool       // the whole form; the fields below are unused then
	header bool       // the directory's own entry differs from the lower's
	items  []planItem // per-entry form: the children to write, in tar order
	cost   int64      // tar bytes the chosen form writes
}

type planKind int

const (
	planWhiteout planKind = iota // a lower name the upper dir does not hold
	planEntry                    // an upper entry written as it is; a directory with its whole subtree
	planDir                      // a directory in both: written as its own plan
)

type planItem struct {
	kind   planKind
	name   string
	st     unix.Stat_t
	xattrs []xattr
	sub    *dirPlan
}

// dataCost is the tar size of a header plus size bytes of data.
func dataCost(size int64) int64 {
	return blockSize + (size+blockSize-1)/blockSize*blockSize
}

// subtreeCosts returns the tar size of everything below the upper directory
// full when written without lowers, and records that size for full and
// every directory below it in costs.
func (d *differ) subtreeCosts(full string, costs map[string]int64) (int64, error) {
	f, err := os.OpenFile(full, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range ents {
		if err := d.ctx.Err(); err != nil {
			return 0, err
		}
		cfull := full + "/" + e.Name()
		switch t := e.Type(); {
		case t&fs.ModeSocket != 0:
		case t.IsDir():
			c, err := d.subtreeCosts(cfull, costs)
			if err != nil {
				return 0, err
			}
			total += blockSize + c
		case t.IsRegular():
			var st unix.Stat_t
			if err := unix.Lstat(cfull, &st); err != nil {
				return 0, err
			}
			total += dataCost(st.Size)
		case t&fs.ModeCharDevice != 0:
			var st unix.Stat_t
			if err := unix.Lstat(cfull, &st); err != nil {
				return 0, err
			}
			if !isWhiteout(&st) {
				total += blockSize
			}
		default:
			total += blockSize
		}
	}
	costs[full] = total
	return total, nil
}

// mergedNames returns the sorted names that the directory with the given
// lower stack holds in the merged lowers (whited-out names left out).
func mergedNames(stack []string) ([]string, error) {
	seen := map[string]bool{} // name -> present
	for _, dir := range stack {
		f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return nil, err
		}
		ents, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			name := e.Name()
			if _, ok := seen[name]; ok {
				continue
			}
			present := true
			if e.Type()&fs.ModeCharDevice != 0 {
				var st unix.Stat_t
				if err := unix.Lstat(dir+"/"+name, &st); err != nil {
					return nil, fmt.Errorf("lstat %s/%s: %w", dir, name, err)
				}
				present = !isWhiteout(&st)
			}
			seen[name] = present
		}
	}
	var out []string
	for name, present := range seen {
		if present {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// planOpaque plans the opaque upper directory full (tar name rel, stat st,
// layer xattrs xattrs) whose path is the directory lower, with lower stack
// stack, in the merged lowers.
func (d *differ) planOpaque(rel, full string, st *unix.Stat_t, xattrs []xattr, lower *lowerEntry, stack []string) (*dirPlan, error) {
	costs := map[string]int64{}
	if _, err := d.subtreeCosts(full, costs); err != nil {
		return nil, pathErr(rel, err)
	}
	return d.planDir(rel, full, st, xattrs, lower, stack, costs)
}

// planDir plans the upper directory full, which replaces the merged lower
// directory lower (stack: its lower stack) entirely: the upper holds all of
// its content. costs holds subtreeCosts of full and every directory below.
func (d *differ) planDir(rel, full string, st *unix.Stat_t, xattrs []xattr, lower *lowerEntry, stack []string, costs map[string]int64) (*dirPlan, error) {
	wholeCost := 2*blockSize + costs[full] // the directory, its marker, its subtree
	whole := &dirPlan{whole: true, cost: wholeCost}

	same, err := d.unchanged(full, st, xattrs, lower)
	if err != nil {
		return nil, pathErr(rel, err)
	}
	p := &dirPlan{header: !same}
	if p.header {
		p.cost = blockSize
	}
	upperNames, err := readDirNames(full)
	if err != nil {
		return nil, pathErr(rel, err)
	}
	lowerNames, err := mergedNames(stack)
	if err != nil {
		return nil, pathErr(rel, err)
	}
	for i, j := 0, 0; i < len(upperNames) || j < len(lowerNames); {
		if p.cost >= wholeCost {
			return whole, nil
		}
		var name string
		inUpper, inLower := false, false
		switch {
		case j == len(lowerNames) || i < len(upperNames) && upperNames[i] < lowerNames[j]:
			name, inUpper = upperNames[i], true
			i++
		case i == len(upperNames) || lowerNames[j] < upperNames[i]:
			name, inLower = lowerNames[j], true
			j++
		default:
			name, inUpper, inLower = upperNames[i], true, true
			i++
			j++
		}
		crel, cfull := rel+"/"+name, full+"/"+name
		if err := d.ctx.Err(); err != nil {
			return nil, pathErr(crel, err)
		}
		it := planItem{name: name}
		if inUpper {
			if err := unix.Lstat(cfull, &it.st); err != nil {
				return nil, pathErr(crel, err)
			}
			// A whiteout or a socket leaves the name absent from the layer.
			if typ := it.st.Mode & unix.S_IFMT; isWhiteout(&it.st) || typ == unix.S_IFSOCK {
				inUpper = false
			}
		}
		if !inUpper {
			if inLower {
				if err := notWhiteoutName(name); err != nil {
					return nil, pathErr(crel, err)
				}
				p.items = append(p.items, planItem{kind: planWhiteout, name: name})
				p.cost += blockSize
			}
			continue
		}
		if err := notWhiteoutName(name); err != nil {
			return nil, pathErr(crel, err)
		}
		if it.xattrs, _, err = readXattrs(cfull, d.opaqueName); err != nil {
			return nil, pathErr(crel, err)
		}
		if isDir(&it.st) {
			var (
				clower *lowerEntry
				sub    []string
			)
			if inLower {
				if clower, sub, err = descendLower(stack, name, d.opaqueName); err != nil {
					return nil, pathErr(crel, err)
				}
			}
			if clower != nil && isDir(&clower.st) {
				it.kind = planDir
				if it.sub, err = d.planDir(crel, cfull, &it.st, it.xattrs, clower, sub, costs); err != nil {
					return nil, err
				}
				p.cost += it.sub.cost
			} else {
				it.kind = planEntry
				p.cost += blockSize + costs[cfull]
			}
			p.items = append(p.items, it)
			continue
		}
		// As in entry: files with several links are always written.
		if inLower && (it.st.Mode&unix.S_IFMT != unix.S_IFREG || it.st.Nlink <= 1) {
			clower, err := lookupLower(stack, name)
			if err != nil {
				return nil, pathErr(crel, err)
			}
			if clower != nil {
				same, err := d.unchanged(cfull, &it.st, it.xattrs, clower)
				if err != nil {
					return nil, pathErr(crel, err)
				}
				if same {
					continue
				}
			}
		}
		it.kind = planEntry
		if it.st.Mode&unix.S_IFMT == unix.S_IFREG {
			p.cost += dataCost(it.st.Size)
		} else {
			p.cost += blockSize
		}
		p.items = append(p.items, it)
	}
	if p.cost >= wholeCost {
		return whole, nil
	}
	return p, nil
}

// notWhiteoutName returns an error wrapping ErrNotRepresentable for a name
// an OCI layer reserves for whiteouts.
func notWhiteoutName(name string) error {
	if strings.HasPrefix(name, whiteoutPrefix) {
		return fmt.Errorf("name starts with %q: %w", whiteoutPrefix, ErrNotRepresentable)
	}
	return nil
}

// writePlan writes the directory full (tar name rel) as planned.
func (d *differ) writePlan(rel, full string, st *unix.Stat_t, xattrs []xattr, p *dirPlan) error {
	if p.whole {
		if err := d.writeHeader(rel+"/", full, st, xattrs); err != nil {
			return pathErr(rel, err)
		}
		if err := d.writeWhiteout(rel + "/" + opaqueMarker); err != nil {
			return pathErr(rel, err)
		}
		return d.walkDir(rel, full, nil)
	}
	if p.header {
		if err := d.writeHeader(rel+"/", full, st, xattrs); err != nil {
			return pathErr(rel, err)
		}
	}
	for i := range p.items {
		it := &p.items[i]
		crel, cfull := rel+"/"+it.name, full+"/"+it.name
		if err := d.ctx.Err(); err != nil {
			return pathErr(crel, err)
		}
		switch it.kind {
		case planWhiteout:
			if err := d.writeWhiteout(rel + "/" + whiteoutPrefix + it.name); err != nil {
				return pathErr(crel, err)
			}
		case planDir:
			if err := d.writePlan(crel, cfull, &it.st, it.xattrs, it.sub); err != nil {
				return err
			}
		case planEntry:
			name := crel
			if isDir(&it.st) {
				name += "/"
			}
			if err := d.writeHeader(name, cfull, &it.st, it.xattrs); err != nil {
				return pathErr(crel, err)
			}
			if isDir(&it.st) {
				if err := d.walkDir(crel, cfull, nil); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
