package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/snapbuild/snapbuild/internal/modal"
	"github.com/snapbuild/snapbuild/sandbox"
)

// Metadata is snapbuild.Metadata.
type Metadata struct {
	PythonVersionInfo   string            `json:"python_version_info,omitempty"` // `python -VV`
	PythonPackages      map[string]string `json:"python_packages,omitempty"`     // name -> version, from `pip list`
	Workdir             string            `json:"workdir,omitempty"`             // only when the image sets one
	LibcVersionInfo     string            `json:"libc_version_info,omitempty"`   // e.g. "glibc 2.36"
	ImageBuilderVersion string            `json:"image_builder_version"`
}

// probeScript prints the python version, the pip package list and the libc
// version, separated by marker lines; each part may be empty.
const probeScript = `PY=; for p in python python3; do command -v $p >/dev/null 2>&1 && PY=$p && break; done
[ -n "$PY" ] && $PY -VV 2>/dev/null
echo "@@snapbuild@@"
[ -n "$PY" ] && $PY -m pip list --format=json --disable-pip-version-check 2>/dev/null
echo "@@snapbuild@@"
getconf GNU_LIBC_VERSION 2>/dev/null || ldd --version 2>&1 | head -n 1
exit 0`

// metadata returns the stored metadata of an image, or nil.
func (b *Engine) metadata(manifest digest.Digest) (*Metadata, error) {
	var m Metadata
	ok, err := b.store.ReadJSON(filepath.Join("metadata", manifest.Encoded()+".json"), &m)
	if err != nil || !ok {
		return nil, err
	}
	return &m, nil
}

// Metadata is snapbuild.Builder.Metadata.
func (b *Engine) Metadata(ctx context.Context, ref string) (*Metadata, error) {
	rec, err := b.store.Resolve(ref)
	if err != nil {
		return nil, err
	}
	if m, err := b.metadata(rec.Manifest.Digest); err != nil || m != nil {
		return m, err
	}
	if err := b.store.LockExclusive(); err != nil {
		return nil, err
	}
	defer b.store.Unlock()
	info, err := b.Inspect(rec.ID)
	if err != nil {
		return nil, err
	}
	st := &buildState{chain: rec.ChainID, config: info.Config.Config.ImageConfig}
	if err := b.probeMetadata(ctx, st, rec.Manifest.Digest); err != nil {
		return nil, err
	}
	return b.metadata(rec.Manifest.Digest)
}

// probeMetadata probes and stores the metadata of an image unless it is
// stored already.
func (b *Engine) probeMetadata(ctx context.Context, st *buildState, manifest digest.Digest) error {
	if m, err := b.metadata(manifest); err != nil || m != nil {
		return err
	}
	m := Metadata{Workdir: st.config.WorkingDir, ImageBuilderVersion: modal.BuilderVersion}
	if st.chain != "" && b.noSandbox {
		return b.needsSandbox("probing the metadata of " + manifest.String())
	}
	if st.chain != "" {
		a, err := b.store.Snapshots().Prepare(st.chain)
		if err != nil {
			return err
		}
		defer a.Remove()
		var out, errb bytes.Buffer
		seq := b.seq.Add(1)
		res, err := sandbox.Run(ctx, sandbox.Spec{
			ID:       fmt.Sprintf("snapbuild-probe-%d-%d", os.Getpid(), seq),
			StateDir: filepath.Join(b.store.Root(), "tmp", "run"),
			Rootfs:   a.Rootfs,
			Args:     []string{"/bin/sh", "-c", probeScript},
			Env:      withPath(append([]string(nil), st.config.Env...)),
			Cwd:      "/",
			Stdout:   &out, Stderr: &errb,
			Network: sandbox.NetworkNone,
		})
		switch {
		case err == nil && res.ExitCode == 0:
			parseProbe(out.String(), &m)
		case err != nil && res.ExitCode != 127:
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(b.store.Root(), "metadata"), 0o700); err != nil {
		return err
	}
	return b.store.WriteJSON(filepath.Join("metadata", manifest.Encoded()+".json"), m)
}

// parseProbe fills m from probeScript's output.
func parseProbe(out string, m *Metadata) {
	parts := strings.Split(out, "@@snapbuild@@\n")
	if len(parts) != 3 {
		return
	}
	m.PythonVersionInfo = strings.TrimSpace(parts[0])
	var pkgs []struct{ Name, Version string }
	if json.Unmarshal([]byte(strings.TrimSpace(parts[1])), &pkgs) == nil && len(pkgs) > 0 {
		m.PythonPackages = map[string]string{}
		for _, p := range pkgs {
			m.PythonPackages[p.Name] = p.Version
		}
	}
	libc := strings.TrimSpace(parts[2])
	if v, ok := strings.CutPrefix(libc, "glibc "); ok {
		libc = "glibc " + v
	} else if i := strings.LastIndex(libc, " "); strings.HasPrefix(libc, "ldd") && i > 0 {
		libc = "glibc " + libc[i+1:]
	}
	m.LibcVersionInfo = libc
}
