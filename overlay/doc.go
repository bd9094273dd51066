// Package overlay mounts overlayfs snapshots and turns an overlayfs upper
// directory into an OCI layer tar stream.
//
// # The model
//
// A build step runs in a rootfs that is an overlay mount: the layers of the
// parent image are the read-only lower directories (top-most first, as in the
// kernel's lowerdir option) and a fresh, empty upper directory receives every
// change the step makes. After the step, the overlay is unmounted and the upper
// directory alone describes the change:
//
//   - A new or modified file, directory, symlink, device or FIFO is present in
//     the upper dir with its full content and metadata. Overlayfs copies a
//     lower entry up before changing it, even when the change turns out to be
//     a no-op (chmod to the same mode, `mv a b && mv b a`), so an upper entry
//     is only a candidate change: Diff compares it with the lower entry it
//     shadows and drops it when type, mode, owner, mtime, size, link target,
//     device number, xattrs and content are all identical.
//   - A deleted entry is a whiteout: a character device with device number
//     0/0. Diff writes it as the OCI whiteout `dir/.wh.NAME`, an empty regular
//     file. Overlayfs gives all whiteouts of a filesystem one shared inode, so
//     they show nlink > 1 and must never be mistaken for hardlinks.
//   - A directory whose lower contents are hidden (it was deleted and created
//     again) is opaque: it carries the xattr trusted.overlay.opaque=y, or
//     user.overlay.opaque=y when the overlay was mounted with the userxattr
//     option (as it must be inside an unprivileged user namespace). The
//     same happens to a lower directory renamed away and back: overlayfs
//     refuses to rename it (see Mount options), mv copies it and deletes
//     the original, and the copy that takes the old name again is opaque.
//     Diff writes an opaque directory over a lower directory in whichever
//     of two forms is smaller: the directory, the OCI opaque whiteout
//     `dir/.wh..wh..opq` and its whole upper subtree; or, comparing the
//     subtree with the lower one entry by entry, only what differs plus a
//     whiteout for each name that is gone. A directory renamed away and
//     back unchanged thus writes nothing.
//
// The layer must only delete what exists: containerd, for example, rejects
// whiteouts for paths that exist in no lower layer. Diff therefore checks each
// whiteout and opaque directory against the merged view of the lowers. It does
// so without mounting them and without walking them: for each directory of
// the upper dir it keeps the list of lower directories that contribute to the
// same path in the merged view (the same rule overlayfs applies in
// ovl_lookup: a whiteout in a lower ends the search, a non-directory hides
// everything below it, an opaque directory hides the lowers below it), and
// looks up only the names the upper dir holds. The cost of a diff is
// therefore proportional to the number of entries in the upper dir times the
// number of lowers, never to the size of the image.
//
// Each lower is expected to be the upper dir of an earlier step, written with
// the same xattr namespace (DiffOptions.UserXattr), so lowers may themselves
// contain whiteouts and opaque directories.
//
// # Mount options
//
// Mount never enables redirect_dir, metacopy or index: with them the upper
// dir no longer describes the change on its own (a renamed directory would
// point into a lower layer, a metadata-only copy-up would lack its data). It
// asks for index=off, metacopy=off and redirect_dir=nofollow; "nofollow"
// rather than "off" because the kernel refuses "off" together with userxattr,
// and inside a user namespace. Renaming a lower directory through the mount
// therefore fails with EXDEV, and tools such as mv fall back to copying.
//
// # Ownership and capabilities
//
// Diff records numeric uids and gids exactly as lstat reports them, so in
// rootless mode it must run inside the builder's user namespace: from outside,
// ids appear shifted and security.capability appears in its version 3 form
// tagged with the host uid of the namespace root. Diff writes
// security.capability in version 2 form in any case, as OCI layers require.
package overlay
