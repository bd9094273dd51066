package snapbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/snapbuild/snapbuild/internal/idmap"
	"github.com/snapbuild/snapbuild/snapshot"
)

// copyItem is one file a COPY writes: a context file and its path in the
// image.
type copyItem struct {
	dest string // absolute path in the image
	file contextFile
}

// planCopy selects the build-context files that "COPY srcs... dest" copies,
// with Docker's rules: a source is a path in the context ("/" or "." is its
// root; a leading "/" is the context root too), possibly with wildcards; a
// directory source copies its contents; a file source lands at dest, or
// under dest when dest ends in "/" or there are several sources. dest is
// absolute (resolved against WORKDIR by the caller).
func planCopy(files []contextFile, srcs []string, dest string) ([]copyItem, error) {
	intoDir := strings.HasSuffix(dest, "/") || len(srcs) > 1
	dest = path.Clean(dest)
	var items []copyItem
	for _, src := range srcs {
		p := strings.Trim(path.Clean("/"+src), "/")
		n := len(items)
		for _, f := range files {
			switch rel, ok := underPattern(f.path, p); {
			case !ok:
			case rel == "": // the source is this file
				d := dest
				if intoDir {
					d = path.Join(dest, path.Base(f.path))
				}
				items = append(items, copyItem{dest: d, file: f})
			default: // a file below a source directory
				items = append(items, copyItem{dest: path.Join(dest, rel), file: f})
			}
		}
		if len(items) == n {
			return nil, fmt.Errorf("COPY source %q: no such file or directory in the build context", src)
		}
	}
	return items, nil
}

// underPattern matches the context path f against the source pattern p
// ("" for the whole context). It reports whether f is selected and, when f
// lies below a matched directory, its path relative to that directory.
func underPattern(f, p string) (rel string, ok bool) {
	if p == "" {
		return f, true
	}
	pn := strings.Count(p, "/") + 1
	parts := strings.Split(f, "/")
	if len(parts) < pn {
		return "", false
	}
	head := strings.Join(parts[:pn], "/")
	if m, err := path.Match(p, head); err != nil || !m {
		return "", false
	}
	return strings.Join(parts[pn:], "/"), true
}

// ownership is a COPY --chown/--chmod override.
type ownership struct {
	uid, gid int // -1: keep (root for context files)
	mode     os.FileMode
	setMode  bool
}

// parseOwnership resolves --chown (user[:group], names looked up in the
// image) and --chmod (octal).
func parseOwnership(rootfs, chown, chmod string) (ownership, error) {
	o := ownership{uid: -1, gid: -1}
	if chown != "" {
		u, g, err := resolveUser(rootfs, chown)
		if err != nil {
			return o, fmt.Errorf("--chown=%s: %w", chown, err)
		}
		o.uid, o.gid = u, g
		if !strings.Contains(chown, ":") {
			o.gid = u // Docker: --chown=user sets the group to the same ID
			if _, id, pg, ok := lookupDB(rootfs, "/etc/passwd", chown, -1); ok && id == u {
				o.gid = pg
			}
		}
	}
	if chmod != "" {
		m, err := strconv.ParseUint(chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return o, fmt.Errorf("--chmod=%s: want an octal mode such as 0755", chmod)
		}
		o.mode, o.setMode = os.FileMode(m&0o777)|modeBits(m), true
	}
	return o, nil
}

// modeBits turns the setuid/setgid/sticky bits of a numeric mode into Go's.
func modeBits(m uint64) os.FileMode {
	var b os.FileMode
	if m&0o4000 != 0 {
		b |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		b |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		b |= os.ModeSticky
	}
	return b
}

// copyFromContext executes a COPY from the layer's build context.
func (b *Builder) copyFromContext(ctx context.Context, st *buildState, l *layer, in instruction, c *instructions.CopyCommand, files []contextFile, force bool) (bool, error) {
	return b.contextCopy(ctx, st, l, in, c.SourcePaths, c.DestPath, c.Chown, c.Chmod, files, force, false)
}

// destIn resolves a COPY/ADD destination against WORKDIR, keeping a
// trailing "/" (which means "into this directory").
func destIn(st *buildState, dest string) string {
	if path.IsAbs(dest) {
		return dest
	}
	abs := path.Join("/", st.config.WorkingDir, dest)
	if strings.HasSuffix(dest, "/") {
		abs += "/"
	}
	return abs
}

// contextCopy copies build-context sources to dest (COPY, and ADD with
// unpack: local tar archives are extracted into dest).
func (b *Builder) contextCopy(ctx context.Context, st *buildState, l *layer, in instruction, srcs []string, dest, chown, chmod string, files []contextFile, force, unpack bool) (bool, error) {
	dest = destIn(st, dest)
	items, err := planCopy(files, srcs, dest)
	if err != nil {
		return false, &InvalidError{Method: l.method, Message: fmt.Sprintf("%s: %v", in.text, err)}
	}
	var inputs strings.Builder
	fmt.Fprintf(&inputs, "unpack=%v chown=%s chmod=%s\n", unpack, chown, chmod)
	for _, it := range items {
		fmt.Fprintf(&inputs, "%s %s %o\n", it.dest, it.file.digest, it.file.mode)
	}
	key := stepKey(st, l, in, inputs.String(), b.epoch)
	return b.layerStep(ctx, st, key, in.text, force, func(a *snapshot.Active) error {
		own, err := parseOwnership(a.Rootfs, chown, chmod)
		if err != nil {
			return &InvalidError{Method: l.method, Message: fmt.Sprintf("%s: %v", in.text, err)}
		}
		for _, it := range items {
			if err := ctx.Err(); err != nil {
				return err
			}
			if unpack && isArchive(it.file.path) {
				if err := extractTar(ctx, it.file.source, a.Rootfs, path.Clean(dest), own); err != nil {
					return fmt.Errorf("%s: %s: %w", in.text, it.file.source, err)
				}
				continue
			}
			if err := copyInto(a.Rootfs, it.dest, it.file); err != nil {
				return fmt.Errorf("%s: %s: %w", in.text, it.file.source, err)
			}
			if err := own.apply(a.Rootfs, it.dest); err != nil {
				return fmt.Errorf("%s: %s: %w", in.text, it.dest, err)
			}
		}
		return nil
	})
}

// apply sets the overridden owner and mode on dest (in the image).
func (o ownership) apply(rootfs, dest string) error {
	if o.uid < 0 && !o.setMode {
		return nil
	}
	p, err := securejoin.SecureJoin(rootfs, dest)
	if err != nil {
		return err
	}
	if o.uid >= 0 {
		if err := idmap.Lchown(p, o.uid, o.gid); err != nil {
			return err
		}
	}
	if o.setMode {
		return os.Chmod(p, o.mode)
	}
	return nil
}

// copyFromImage executes "COPY --from=IMAGE srcs... dest": the sources are
// paths in a stored image, mounted read-only. IMAGE is an image ID or a name
// in the store, or a reference pulled when the store lacks it (see
// sourceImage).
func (b *Builder) copyFromImage(ctx context.Context, st *buildState, l *layer, in instruction, c *instructions.CopyCommand, force bool, ev Event) (bool, error) {
	var rec imageRecord
	if s, ok := b.stage(c.From); ok {
		// A stage of this Dockerfile: its chain is its content.
		rec = imageRecord{ChainID: s.state.chain, Manifest: ocispec.Descriptor{Digest: digest.Digest(s.state.chain)}}
		if s.state.chain == "" {
			return false, &InvalidError{Method: l.method, Message: fmt.Sprintf("%s: stage %q has no files", in.text, c.From)}
		}
	} else {
		var err error
		if strings.HasPrefix(c.From, "im-") {
			if rec, err = b.store.resolve(c.From); err != nil {
				return false, &InvalidError{Method: l.method, Message: err.Error()}
			}
		} else if rec, _, err = b.sourceImage(ctx, l.method, ev, c.From); err != nil {
			return false, err
		}
	}
	dest := destIn(st, c.DestPath)
	inputs := fmt.Sprintf("from=%s srcs=%q chown=%s chmod=%s", rec.Manifest.Digest, c.SourcePaths, c.Chown, c.Chmod)
	key := stepKey(st, l, in, inputs, b.epoch)
	return b.layerStep(ctx, st, key, in.text, force, func(a *snapshot.Active) error {
		src, err := b.store.snaps.View(rec.ChainID)
		if err != nil {
			return err
		}
		defer src.Remove()
		own, err := parseOwnership(a.Rootfs, c.Chown, c.Chmod)
		if err != nil {
			return &InvalidError{Method: l.method, Message: fmt.Sprintf("%s: %v", in.text, err)}
		}
		intoDir := strings.HasSuffix(dest, "/") || len(c.SourcePaths) > 1
		for _, s := range c.SourcePaths {
			from, err := securejoin.SecureJoin(src.Rootfs, s)
			if err != nil {
				return err
			}
			fi, err := os.Lstat(from)
			if err != nil {
				return &InvalidError{Method: l.method, Message: fmt.Sprintf("%s: %s is not in image %s", in.text, s, c.From)}
			}
			to := path.Clean(dest)
			if !fi.IsDir() && intoDir {
				to = path.Join(to, path.Base(s))
			}
			if err := copyTree(ctx, from, a.Rootfs, to, own); err != nil {
				return fmt.Errorf("%s: %w", in.text, err)
			}
		}
		return nil
	})
}

// missingSource explains what to do when a COPY --from image or a base is
// not in the store.
func missingSource(method, instr, ref string, err error) error {
	return &InvalidError{Method: method, Message: fmt.Sprintf(
		"%s: image %q is not in the store, and snapbuild does not pull images: provide it first, "+
			"e.g. build a recipe that makes it and name it with -t %q (see README, \"Tool images\"): %v", instr, ref, ref, err)}
}

// copyTree copies the file, symlink or directory tree at host path from into
// the image at dest, keeping modes, owners, symlinks and mtimes (own
// overrides owner and mode).
func copyTree(ctx context.Context, from, rootfs, dest string, own ownership) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		target := path.Join(dest, filepath.ToSlash(rel))
		parent, err := mkdirAllIn(rootfs, path.Dir(target))
		if err != nil {
			return err
		}
		to := filepath.Join(parent, path.Base(target))
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.IsDir():
			if err := os.Mkdir(to, fi.Mode().Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case fi.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			os.Remove(to)
			if err := os.Symlink(link, to); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := copyRegular(p, to); err != nil {
				return err
			}
		default:
			return nil // devices, fifos, sockets: not copied
		}
		uid, gid := int(st.Uid), int(st.Gid)
		if own.uid >= 0 {
			uid, gid = own.uid, own.gid
		}
		if err := idmap.Lchown(to, uid, gid); err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			mode := fi.Mode().Perm() | fi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)
			if own.setMode {
				mode = own.mode
			}
			if err := os.Chmod(to, mode); err != nil {
				return err
			}
			_ = os.Chtimes(to, fi.ModTime(), fi.ModTime())
		}
		return nil
	})
}

func copyRegular(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	os.Remove(to)
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
