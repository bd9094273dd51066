// Package registry pulls, pushes and exports container images with the
// registry protocol and the OCI and Docker archive formats, on top of
// go-containerregistry (ggcr): images are ggcr v1.Image values, so ggcr's
// mutate, layout, tarball and remote packages work on them directly.
//
// # Locations
//
// ParseReference reads an image location as skopeo writes it: docker://REF or
// a bare REF ("ubuntu:22.04", normalized to docker.io/library/ubuntu:22.04 as
// ggcr's name package does), oci:DIR[:TAG], oci-archive:FILE[:TAG] and
// docker-archive:FILE[:REF]. Reference.String gives it back in a form that
// parses to the same Reference.
//
// # Pulling
//
//	ref, err := registry.ParseReference("ubuntu:22.04")
//	img, err := registry.Pull(ctx, ref,
//		registry.WithCredentials(user, password),          // else DefaultKeychain
//		registry.WithRegistriesConfig(conf),               // mirrors, insecure, blocked
//		registry.WithInsecureRegistries("localhost:5000")) // --insecure-registry
//	layers, err := img.Layers() // base layer first
//	for _, l := range layers {
//		rc, err := l.Uncompressed() // the tar; Compressed() is the blob as stored
//		... read rc to io.EOF: a blob that does not match its digest, size or
//		    diff ID fails the last Read with a *DigestError
//		rc.Close()
//	}
//
// Pull picks linux/amd64 from a multi-platform index (WithPlatform to choose
// another; the error lists the platforms the index has), accepts Docker
// schema 2 and OCI manifests and gzip, zstd and uncompressed layers, and
// verifies the manifest and config before it returns. The returned image
// reads its layers lazily, from the registry or file it came from, under
// the ctx given to Pull.
//
// # Writing
//
//	err = registry.Push(ctx, img, dest)  // dest: docker://REF
//	err = registry.Write(ctx, img, dest) // any transport
//
// Push sends only the blobs the repository lacks (ggcr's remote.Write asks
// with HEAD first). Write also writes OCI layouts (adding to an existing one),
// OCI archives and docker-archive tarballs (gzip layers, loadable by
// `docker load` and `podman load`). WithCompression(Zstd) or (Gzip)
// recompresses the layers that differ; diff IDs and the config stay the same.
// WithImageName records the image's full name in an OCI layout's or
// archive's index.json (see IndexAnnotations), so that `podman load` and
// `ctr images import` name it.
//
// # Credentials
//
// WithCredentials gives a user name and password (Modal's REGISTRY_USERNAME
// and REGISTRY_PASSWORD); without it DefaultKeychain reads
// $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json,
// ~/.config/containers/auth.json and docker's config.json, with credential
// helpers. ECRLogin and GCPLogin turn Modal's from_aws_ecr and
// from_gcp_artifact_registry secrets into a user name and password.
// Passwords and tokens never appear in errors or log lines.
//
// # Trust
//
// TLS is verified against the system roots ($SSL_CERT_FILE and
// $SSL_CERT_DIR replace them, as Go reads them) plus WithCAFile. Plain HTTP
// and unverified TLS are used only for registries named by
// WithInsecureRegistries or marked insecure = true in registries.conf,
// loopback addresses included; otherwise the error matches ErrUntrusted and
// says how to opt in.
//
// # Registries configuration
//
// Config is the subset of containers-registries.conf(5) version 2 that
// applies to pulls: [[registry]] prefix, location, insecure, blocked,
// mirror-by-digest-only and [[registry.mirror]] location, insecure,
// pull-from-mirror. Mirrors are tried in order, then the location; when all
// fail the error is a *PullError listing each. Pushes go where the reference
// says. DefaultConfigPaths and LoadFirstConfig find the file as podman does;
// the library reads no configuration unless given one.
package registry
