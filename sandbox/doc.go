// Package sandbox runs one build step in a libcontainer (runc) container on a
// prepared rootfs.
//
// The model is the buildah one: the whole snapbuild process first enters a user
// namespace of its own (see EnterNamespace), mapped 0 -> the invoking user and
// 1..N -> the user's /etc/subuid and /etc/subgid ranges, or, where those
// cannot be used (no range, no newuidmap, no_new_privs in an unprivileged
// container), 0 -> the invoking user alone (UserNSSingle, chosen by
// SNAPBUILD_USERNS). Inside it the process is
// "root": it mounts the overlay snapshot and asks libcontainer for a container
// with pid, ipc, uts and mount namespaces (no user namespace of its own, no
// network namespace unless asked), with cgroup errors ignored. As real root the
// same code runs without the user namespace; Init then re-executes the process
// into a private mount namespace so that a killed build never leaks a mount.
//
// In a container that refuses part of that (a /proc with masked paths,
// where the kernel refuses a new procfs; a seccomp profile that refuses
// sethostname), Run falls back once per process, with a warning: the
// container shares the builder's PID namespace and /proc, or its UTS
// namespace (BuildKit's --oci-worker-no-process-sandbox).
//
// Every process gets Docker's defaults (Spec.Security, SecuritySandbox):
// its seccomp profile (moby's, converted by runc's specconv and applied by
// libcontainer, which needs the "seccomp" build tag and libseccomp),
// no_new_privs, and its default capabilities, less CAP_NET_RAW and
// CAP_NET_ADMIN when the process shares the host's network namespace.
// SecurityInsecure, BuildKit's security.insecure, lifts all three.
//
// Spec.Network picks the network: the host's (NetworkHost, the default), a
// namespace with loopback only (NetworkNone), or a namespace of its own with
// outbound access through slirp4netns (NetworkPrivate). For the last, Run
// starts the container, which waits at libcontainer's exec fifo with its
// namespaces made; starts slirp4netns against the init's pid, which joins
// its network namespace and brings up tap0; waits for slirp4netns to report
// the network ready; and only then lets the process run. slirp4netns is
// stopped (its exit fd closed, then SIGKILL) when the process ends, on every
// path, and is killed with the builder if it dies (parent-death signal).
//
// A Spec describes the process, its environment, the rootfs, extra bind
// mounts, device nodes (bound, never created) and OCI hooks (e.g. from a CDI
// spec); Run starts it, streams its output and waits for it. Mount targets that
// the runtime had to create in the rootfs (for example /etc/resolv.conf) are
// reported in Result.Stubs so that the caller can keep them out of the layer.
// With hooks and Spec.UpperDir, Run starts the container, records what the
// runtime and the hooks made in the upper dir before the process runs (the
// process waits at libcontainer's exec fifo meanwhile), and adds to
// Result.Stubs whatever of it the process left unchanged.
//
// With Spec.Terminal the process gets a pseudo-terminal, as with `runc run
// -t`: the container's init allocates it on the container's own devpts and
// sends the master over libcontainer's console socket; Run copies the
// caller's stdin and stdout through it and applies window sizes.
package sandbox
