// Package oci stores and writes OCI image content: a content-addressed blob
// store laid out like an OCI image layout's blobs/ directory, a streaming layer
// writer (tar -> diffID -> zstd -> digest, one pass, no temporary uncompressed
// copy), image config and manifest assembly, and export to the transports users
// know from skopeo: oci:DIR[:TAG] and oci-archive:FILE[:TAG].
//
// Media types follow the OCI image spec v1.1: layers are
// application/vnd.oci.image.layer.v1.tar+zstd, configs
// application/vnd.oci.image.config.v1+json, manifests
// application/vnd.oci.image.manifest.v1+json.
package oci
