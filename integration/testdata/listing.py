# Prints one line per filesystem entry under the roots given as arguments
# (default /t), sorted, for comparing one image as seen through different
# unpackers. Run with "python3 - [ROOT...] < listing.py".
#
# Each line: path type mode uid:gid size/target/device nlink mtime xattrs,
# where mtime is clamped to $EPOCH (layers clamp it) and directory sizes and
# link counts are left out (overlayfs reports them differently).
import hashlib
import os
import stat
import sys

epoch = int(os.environ.get("EPOCH", "315532800"))
roots = [a.encode() for a in sys.argv[1:]] or [b"/t"]


def describe(p):
    st = os.lstat(p)
    m = st.st_mode
    if stat.S_ISDIR(m):
        kind, extra, nlink = "dir", "", ""
    elif stat.S_ISREG(m):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        kind, extra, nlink = "file", "%d:%s" % (st.st_size, h.hexdigest()[:16]), str(st.st_nlink)
    elif stat.S_ISLNK(m):
        kind, extra, nlink = "symlink", "->" + os.fsdecode(os.readlink(p)), ""
    elif stat.S_ISFIFO(m):
        kind, extra, nlink = "fifo", "", ""
    elif stat.S_ISSOCK(m):
        kind, extra, nlink = "socket", "", ""
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        kind = "chr" if stat.S_ISCHR(m) else "blk"
        extra, nlink = "%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)), ""
    else:
        kind, extra, nlink = "other", "", ""
    xattrs = []
    try:
        for name in sorted(os.listxattr(p, follow_symlinks=False)):
            if name.startswith(("security.selinux", "trusted.overlay.", "user.overlay.")):
                continue
            xattrs.append("%s=%s" % (name, os.getxattr(p, name, follow_symlinks=False).hex()))
    except OSError:
        pass
    mtime = min(int(st.st_mtime), epoch)
    return "%s %s %o %d:%d %s %s %d %s" % (
        ascii(os.fsdecode(p)), kind, stat.S_IMODE(m), st.st_uid, st.st_gid,
        extra, nlink, mtime, ",".join(xattrs))


lines = []
for root in roots:
    if not os.path.lexists(root):
        continue
    lines.append(describe(root))
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            lines.append(describe(os.path.join(dirpath, n)))
for line in sorted(lines):
    print(line)
