package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount describes one overlay mount. Lowers are ordered top-most first (as in the kernel's lowerdir option).
type Mount struct {
	Lowers    []string // absolute paths, top-most first; may be empty only if Upper is set
	Upper     string   // upperdir; "" = read-only mount of Lowers
	Work      string   // workdir, same filesystem as Upper; required when Upper != ""
	UserXattr bool     // add the userxattr option (required inside an unprivileged user namespace)
}

// errNoLowerdirPlus reports that the kernel cannot take lower layers one at a
// time through fsconfig "lowerdir+" (Linux < 6.8), so mount(2) must be used.
var errNoLowerdirPlus = errors.New("kernel lacks fsconfig lowerdir+")

// Mount mounts m at target, an existing directory.
//
// It prefers the new mount API (fsopen/fsconfig with one "lowerdir+" per
// layer, Linux 6.8 and later), which has no limit on the number of layers
// beyond the kernel's own (500 lowers). fsconfig takes strings of at most 255
// bytes; longer layer paths are passed as O_PATH descriptors (Linux 6.13+).
// Where the kernel can do neither, Mount falls back to mount(2) with a
// lowerdir=a:b:c option string; that string must fit in one page (4096 bytes
// on most machines), and Mount returns an error naming the layer count when
// it does not. Paths may hold any character: ':', ',' and '\' are escaped.
//
// Special cases, where overlayfs would refuse the mount:
//   - no Upper and a single lower: the lower is bind-mounted read-only;
//   - no Lowers: Upper is bind-mounted read-write (a base layer: every change
//     lands in Upper directly, and Work is not used).
//
// Mount asks for index=off, redirect_dir=nofollow and metacopy=off, so that
// the upper dir alone describes the change; options the kernel does not know
// are left out. A mount without Upper is read-only. Inside a user namespace
// set UserXattr: without it the mount may succeed, but removing a directory
// that exists in a lower then fails with EIO (overlayfs cannot write its
// trusted.* xattrs there).
//
// Errors wrap the kernel's errno (errors.Is(err, unix.EPERM) works) and, with
// the new mount API, include the kernel's own message.
func (m Mount) Mount(target string) error {
	if err := m.validate(target); err != nil {
		return fmt.Errorf("overlay mount %s: %w", target, err)
	}
	var err error
	switch {
	case len(m.Lowers) == 0:
		err = bindMount(m.Upper, target, false)
	case m.Upper == "" && len(m.Lowers) == 1:
		err = bindMount(m.Lowers[0], target, true)
	default:
		err = m.mountNew(target)
		if errors.Is(err, errNoLowerdirPlus) {
			err = m.mountLegacy(target)
		}
	}
	if err != nil {
		return fmt.Errorf("overlay mount %s: %w", target, err)
	}
	return nil
}

func (m Mount) validate(target string) error {
	if target == "" {
		return errors.New("empty target")
	}
	if len(m.Lowers) == 0 && m.Upper == "" {
		return errors.New("no lower and no upper dir")
	}
	for i, l := range m.Lowers {
		if !filepath.IsAbs(l) {
			return fmt.Errorf("lower %d: path %q is not absolute", i, l)
		}
	}
	if m.Upper != "" {
		if !filepath.IsAbs(m.Upper) {
			return fmt.Errorf("upper dir %q is not absolute", m.Upper)
		}
		if m.Work == "" {
			return errors.New("upper dir given without a work dir")
		}
		if !filepath.IsAbs(m.Work) {
			return fmt.Errorf("work dir %q is not absolute", m.Work)
		}
	}
	return nil
}

// extraOptions keeps redirect_dir, metacopy and index off, so that the upper
// dir alone describes the change. redirect_dir=nofollow (neither create nor
// follow redirects) rather than "off": the kernel refuses "off" with
// userxattr, and with EPERM inside a user namespace without it.
var extraOptions = [...][2]string{{"index", "off"}, {"redirect_dir", "nofollow"}, {"metacopy", "off"}}

// mountNew mounts with fsopen/fsconfig/fsmount/move_mount. It returns
// errNoLowerdirPlus when the kernel cannot do that for overlay.
func (m Mount) mountNew(target string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if err == unix.ENOSYS {
			return errNoLowerdirPlus
		}
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)

	// Before Linux 6.5 overlay sits behind the kernel's legacy fs_context
	// wrapper, which accepts any key and only fails at FSCONFIG_CMD_CREATE.
	// A native parser rejects an unknown key at once.
	if err := unix.FsconfigSetFlag(fd, "snapbuild_probe_unknown_option"); err == nil {
		return errNoLowerdirPlus
	}
	fsLog(fd)

	if err := unix.FsconfigSetString(fd, "source", "overlay"); err != nil {
		return fmt.Errorf("option source: %w%s", err, fsLog(fd))
	}
	for i, l := range m.Lowers {
		if err := fsconfigPath(fd, "lowerdir+", l, l); err != nil {
			if i == 0 && errors.Is(err, errUnknownParameter) {
				return errNoLowerdirPlus // Linux 6.5 to 6.7
			}
			if errors.Is(err, errNoLongPath) {
				return errNoLowerdirPlus // mount(2) takes long paths
			}
			return fmt.Errorf("lower %d of %d (%s): %w", i, len(m.Lowers), l, err)
		}
	}
	if m.Upper != "" {
		// The kernel unescapes upperdir and workdir strings (not lowerdir+).
		for _, kv := range [...][2]string{{"upperdir", m.Upper}, {"workdir", m.Work}} {
			if err := fsconfigPath(fd, kv[0], kv[1], escapeOption(kv[1])); err != nil {
				if errors.Is(err, errNoLongPath) {
					return errNoLowerdirPlus
				}
				return fmt.Errorf("%s %s: %w", kv[0], kv[1], err)
			}
		}
	}
	if m.UserXattr {
		if err := unix.FsconfigSetFlag(fd, "userxattr"); err != nil {
			return fmt.Errorf("option userxattr: %w%s", err, fsLog(fd))
		}
	}
	for _, kv := range extraOptions {
		if err := unix.FsconfigSetString(fd, kv[0], kv[1]); err != nil {
			if err == unix.EINVAL {
				fsLog(fd) // unknown to this kernel: leave it at the default
				continue
			}
			return fmt.Errorf("option %s=%s: %w%s", kv[0], kv[1], err, fsLog(fd))
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("creating overlay with %d lowers: %w%s", len(m.Lowers), err, fsLog(fd))
	}
	var attr int
	if m.Upper == "" {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount: %w%s", err, fsLog(fd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// mountLegacy mounts with mount(2) and a lowerdir=a:b:c option string.
func (m Mount) mountLegacy(target string) error {
	lowers := make([]string, len(m.Lowers))
	for i, l := range m.Lowers {
		lowers[i] = escapeOption(l)
	}
	opts := []string{"lowerdir=" + strings.Join(lowers, ":")}
	var flags uintptr
	if m.Upper != "" {
		opts = append(opts, "upperdir="+escapeOption(m.Upper), "workdir="+escapeOption(m.Work))
	} else {
		flags |= unix.MS_RDONLY
	}
	if m.UserXattr {
		opts = append(opts, "userxattr")
	}
	base := strings.Join(opts, ",")
	for _, kv := range extraOptions {
		opts = append(opts, kv[0]+"="+kv[1])
	}
	full := strings.Join(opts, ",")

	// mount(2) copies one page of options, and the last byte is the NUL.
	limit := os.Getpagesize() - 1
	if len(base) > limit {
		return fmt.Errorf("mount(2) option string for %d lower layers is %d bytes, over the kernel's limit of %d bytes (one page), "+
			"and this kernel lacks fsconfig \"lowerdir+\" (Linux 6.8+): use shorter layer paths or flatten old layers",
			len(m.Lowers), len(base), limit)
	}
	var err error
	if len(full) <= limit {
		err = unix.Mount("overlay", target, "overlay", flags, full)
		if err == nil {
			return nil
		}
		if err != unix.EINVAL {
			return fmt.Errorf("mount(2) with %d lowers: %w", len(m.Lowers), err)
		}
	}
	// Maybe an option the kernel does not know: retry with the kernel's defaults.
	if err := unix.Mount("overlay", target, "overlay", flags, base); err != nil {
		return fmt.Errorf("mount(2) with %d lowers: %w", len(m.Lowers), err)
	}
	return nil
}

var (
	errUnknownParameter = errors.New("unknown parameter")
	errNoLongPath       = errors.New("path too long for fsconfig")
)

// fsconfigMaxString is the longest string value fsconfig takes, NUL included.
const fsconfigMaxString = 256

// fsconfigPath sets the path parameter key of the fs_context fd: as the
// string value (path as the kernel should parse it) when it fits, else as an
// O_PATH file descriptor (Linux 6.13+ for overlay). It returns an error
// wrapping errUnknownParameter when the kernel does not know key, and
// errNoLongPath when value is too long and the kernel takes no descriptor.
func fsconfigPath(fd int, key, path, value string) error {
	if len(value) < fsconfigMaxString {
		err := unix.FsconfigSetString(fd, key, value)
		if err == nil {
			return nil
		}
		msg := fsLog(fd)
		if err == unix.EINVAL && strings.Contains(msg, "nknown parameter") {
			return fmt.Errorf("%w %q%s", errUnknownParameter, key, msg)
		}
		return fmt.Errorf("%w%s", err, msg)
	}
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(pfd)
	if err := unix.FsconfigSetFd(fd, key, pfd); err != nil {
		msg := fsLog(fd)
		if err == unix.EINVAL {
			return fmt.Errorf("%w: %d bytes%s", errNoLongPath, len(value), msg)
		}
		return fmt.Errorf("%w%s", err, msg)
	}
	return nil
}

// escapeOption escapes the characters overlayfs splits option strings at.
// The kernel removes a backslash and keeps the character after it.
func escapeOption(s string) string {
	if !strings.ContainsAny(s, `\:,`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\', ':', ',':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// fsLog drains the message log of an fs_context file descriptor and returns
// it formatted as " (msg; msg)", or "" when it is empty.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 32 {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msg := strings.TrimSpace(string(buf[:n]))
		// Messages start with a severity: "e ", "w " or "i ".
		if len(msg) > 2 && msg[1] == ' ' {
			msg = msg[2:]
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (kernel: " + strings.Join(msgs, "; ") + ")"
}

// bindMount bind-mounts src (not recursively) at target, read-only if ro.
func bindMount(src, target string, ro bool) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.O_CLOEXEC)
	if err == unix.ENOSYS {
		return bindMountLegacy(src, target, ro)
	}
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(fd)
	if ro {
		err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
		if err == unix.ENOSYS { // Linux 5.2 to 5.11
			return bindMountLegacy(src, target, ro)
		}
		if err != nil {
			return fmt.Errorf("making bind mount of %s read-only: %w", src, err)
		}
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("bind-mounting %s: move_mount: %w", src, err)
	}
	return nil
}

// bindMountLegacy is bindMount for kernels without open_tree or mount_setattr.
func bindMountLegacy(src, target string, ro bool) error {
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s: %w", src, err)
	}
	if !ro {
		return nil
	}
	// A read-only remount must repeat the flags the kernel locks in a user
	// namespace (nosuid, nodev, noexec, atime), or it fails with EPERM.
	var st unix.Statfs_t
	err := unix.Statfs(target, &st)
	if err == nil {
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
		for _, f := range [...]struct{ st, ms uintptr }{
			{unix.ST_NOSUID, unix.MS_NOSUID},
			{unix.ST_NODEV, unix.MS_NODEV},
			{unix.ST_NOEXEC, unix.MS_NOEXEC},
			{unix.ST_NOATIME, unix.MS_NOATIME},
			{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
			{unix.ST_RELATIME, unix.MS_RELATIME},
		} {
			if uintptr(st.Flags)&f.st != 0 {
				flags |= f.ms
			}
		}
		err = unix.Mount("", target, "", flags, "")
	}
	if err != nil {
		_ = unix.Unmount(target, unix.MNT_DETACH)
		return fmt.Errorf("making bind mount of %s read-only: %w", src, err)
	}
	return nil
}

// Unmount unmounts the mount at target. When the mount is busy it detaches it
// lazily (MNT_DETACH) instead; the kernel then frees it once unused. A target
// that is not a mount point (EINVAL) or does not exist (ENOENT) is not an
// error, so Unmount is idempotent.
func Unmount(target string) error {
	err := unmount(target, 0)
	if err == unix.EBUSY {
		err = unmount(target, unix.MNT_DETACH)
	}
	switch err {
	case nil, unix.EINVAL, unix.ENOENT:
		return nil
	}
	return fmt.Errorf("overlay unmount %s: %w", target, err)
}

func unmount(target string, flags int) error {
	for {
		err := unix.Unmount(target, flags)
		if err != unix.EINTR {
			return err
		}
	}
}
