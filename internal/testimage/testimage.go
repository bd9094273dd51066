// Package testimage writes small runnable container images made of the
// host's own programs, for tests that need an image to run without
// bootstrapping a distribution: each program found on PATH is copied with
// the shared libraries ldd lists for it, at their host paths, so the image
// runs on the host that wrote it (and only there).
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Spec describes an image.
type Spec struct {
	Tag   string            // org.opencontainers.image.ref.name of the image in the layout
	Tools []string          // host programs, looked up on PATH, copied with their libraries
	Dirs  []string          // directories to create, 0755 (/tmp: 1777), with their parents
	Files map[string]string // regular files to write, 0644: path in the image → content

	Entrypoint, Cmd []string // the config's ENTRYPOINT and CMD
}

// PATH is the PATH the image's config sets.
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var lddPath = regexp.MustCompile(`(/\S+) \(0x`)

// WriteLayout writes an OCI layout in dir (created if needed) holding the
// image s describes: one gzip layer with s's directories, the host's /bin,
// /sbin, /lib and /lib64 symlinks (merged /usr, as on Debian 12), the
// tools and their libraries at the paths they resolve to, and s's files;
// a linux config for the host's architecture with PATH set. Errors name
// the tool or file at fault.
func WriteLayout(dir string, s Spec) error {
	layerData, err := Layer(s)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerData)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint, cf.Config.Cmd = s.Entrypoint, s.Cmd
	cf.Config.Env = []string{"PATH=" + PATH}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: s.Tag}))
}

// Layer is the uncompressed tar of the image s describes (see WriteLayout).
func Layer(s Spec) ([]byte, error) {
	files := map[string]string{} // path in the image → host file
	var links [][2]string        // path in the image → symlink target
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib64"} {
		if target, err := os.Readlink(d); err == nil {
			links = append(links, [2]string{d, target})
		}
	}
	// inImage is where a host path lands: its directory with symlinks
	// resolved, so that nothing is written through /bin or /lib64.
	inImage := func(p string) (string, error) {
		d, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil {
			return "", err
		}
		return filepath.Join(d, filepath.Base(p)), nil
	}
	add := func(p string) error {
		q, err := inImage(p)
		if err == nil {
			files[q] = p
		}
		return err
	}
	for _, tool := range s.Tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			return nil, fmt.Errorf("testimage: %s: %w", tool, err)
		}
		if err := add(p); err != nil {
			return nil, fmt.Errorf("testimage: %s: %w", tool, err)
		}
		out, err := exec.Command("ldd", p).Output()
		if err != nil {
			return nil, fmt.Errorf("testimage: ldd %s: %w", p, err)
		}
		for _, m := range lddPath.FindAllStringSubmatch(string(out), -1) {
			if err := add(m[1]); err != nil {
				return nil, fmt.Errorf("testimage: %s: library %s: %w", tool, m[1], err)
			}
		}
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	var mkdirs func(string) error
	mkdirs = func(d string) error {
		if d == "/" || d == "." || dirs[d] {
			return nil
		}
		if err := mkdirs(path.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		mode := int64(0o755)
		if d == "/tmp" {
			mode = 0o1777
		}
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: mode})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := mkdirs(path.Dir("/" + strings.TrimPrefix(name, "/"))); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(name, "/"), Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range s.Dirs {
		if err := mkdirs(path.Clean("/" + d)); err != nil {
			return nil, err
		}
	}
	for _, l := range links {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(l[0], "/"), Linkname: l[1]}); err != nil {
			return nil, err
		}
	}
	for _, p := range sortedKeys(files) {
		data, err := os.ReadFile(files[p])
		if err != nil {
			return nil, fmt.Errorf("testimage: %w", err)
		}
		if err := file(p, 0o755, data); err != nil {
			return nil, err
		}
	}
	for _, name := range sortedKeys(s.Files) {
		if err := file(name, 0o644, []byte(s.Files[name])); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
