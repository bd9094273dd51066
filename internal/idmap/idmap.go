// Package idmap reads the user namespace ID mappings of the running process
// (/proc/self/uid_map and gid_map) and explains a chown they do not allow.
//
// Rootless, snapbuild runs in a user namespace that maps 0 to the invoking
// user and 1..N to the user's /etc/subuid and /etc/subgid ranges (see
// package sandbox). The kernel refuses a chown to an ID outside that map
// with EINVAL ("invalid argument"), which names neither the ID nor the
// map; Lchown's error names both. As real root the map is the identity over
// all IDs and nothing changes.
package idmap

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Range is one line of a uid_map or gid_map: Count IDs from Inside, in the
// namespace, are Outside.. in the parent namespace (user_namespaces(7)).
type Range struct {
	Inside, Outside, Count uint32
}

// Map is a uid_map or gid_map, in file order.
type Map []Range

// Parse reads a map in the format of /proc/PID/uid_map: lines of three
// decimal numbers (inside, outside, count) separated by blanks.
func Parse(r io.Reader) (Map, error) {
	var m Map
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("ID map line %q: want three numbers (inside, outside, count)", sc.Text())
		}
		var n [3]uint32
		for i, s := range f {
			v, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("ID map line %q: %w", sc.Text(), err)
			}
			n[i] = uint32(v)
		}
		m = append(m, Range{Inside: n[0], Outside: n[1], Count: n[2]})
	}
	return m, sc.Err()
}

// Current returns the uid and gid maps of the running process.
func Current() (uids, gids Map, err error) {
	if uids, err = readMap("/proc/self/uid_map"); err != nil {
		return nil, nil, err
	}
	if gids, err = readMap("/proc/self/gid_map"); err != nil {
		return nil, nil, err
	}
	return uids, gids, nil
}

func readMap(file string) (Map, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

// Contains reports whether id (an ID inside the namespace) is mapped.
func (m Map) Contains(id int) bool {
	if id < 0 {
		return false
	}
	for _, r := range m {
		if uint64(id) >= uint64(r.Inside) && uint64(id) < uint64(r.Inside)+uint64(r.Count) {
			return true
		}
	}
	return false
}

// String lists the mapped IDs inside the namespace as ranges from the first
// to the last ID included, adjacent ranges joined: "0-65536" for the
// rootless map (0, then 1-65536), "0, 1000-1999"; "none" for an empty map.
func (m Map) String() string {
	if len(m) == 0 {
		return "none"
	}
	rs := slices.Clone(m)
	slices.SortFunc(rs, func(a, b Range) int { return cmp.Compare(a.Inside, b.Inside) })
	var parts []string
	first, next := uint64(rs[0].Inside), uint64(rs[0].Inside)
	flush := func() {
		if next-first == 1 {
			parts = append(parts, strconv.FormatUint(first, 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", first, next-1))
		}
	}
	for _, r := range rs {
		if uint64(r.Inside) != next {
			flush()
			first = uint64(r.Inside)
		}
		next = uint64(r.Inside) + uint64(r.Count)
	}
	flush()
	return strings.Join(parts, ", ")
}

// Lchown is os.Lchown. When the kernel refuses the IDs (EINVAL) and the
// running process's maps do not hold uid or gid, the error names the ID and
// the mapped range, says how to widen the range, and wraps the original
// error (errors.Is(err, syscall.EINVAL) still holds).
func Lchown(path string, uid, gid int) error {
	err := os.Lchown(path, uid, gid)
	if err == nil || !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return Explain(err, uid, gid)
}

// Explain returns err, an error of giving an entry uid and gid, with the ID
// the running process's maps do not hold named as Lchown names it; err
// itself when it is not EINVAL, when both IDs are mapped, or when the maps
// cannot be read. A uid or gid of -1 is left out.
func Explain(err error, uid, gid int) error {
	if err == nil || !errors.Is(err, syscall.EINVAL) {
		return err
	}
	uids, gids, merr := Current()
	if merr != nil {
		return err
	}
	return explain(err, uid, gid, uids, gids)
}

// explain returns err with the ID that uids or gids does not map named, or
// err itself when both are mapped (or -1, left unchanged).
func explain(err error, uid, gid int, uids, gids Map) error {
	switch {
	case uid >= 0 && !uids.Contains(uid):
		return fmt.Errorf("uid %d is outside the user namespace's mapped uids (%s); rootless, these are 0 and the invoking user's /etc/subuid range: give the file an ID in that range, or widen the range (usermod --add-subuids): %w", uid, uids, err)
	case gid >= 0 && !gids.Contains(gid):
		return fmt.Errorf("gid %d is outside the user namespace's mapped gids (%s); rootless, these are 0 and the invoking user's /etc/subgid range: give the file an ID in that range, or widen the range (usermod --add-subgids): %w", gid, gids, err)
	}
	return err
}
