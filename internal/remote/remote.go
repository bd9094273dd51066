package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/entitlements"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"

	"github.com/snapbuild/snapbuild/oci"
)

// Scheme prefixes a builder address given to snapbuild: buildkit://ADDR.
const Scheme = "buildkit://"

// ParseAddress returns the buildkitd address of builder address s, as
// buildctl --addr takes it: unix:///PATH or tcp://HOST:PORT, given as
// buildkit://unix:///PATH or buildkit://tcp://HOST:PORT (the buildkit://
// prefix may be left out). Anything else is an error saying which forms
// are accepted.
func ParseAddress(s string) (string, error) {
	addr := strings.TrimPrefix(s, Scheme)
	bad := func(why string) error {
		return fmt.Errorf("builder address %q: %s: give buildkit://unix:///PATH/buildkitd.sock or buildkit://tcp://HOST:PORT", s, why)
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", bad(err.Error())
	}
	switch u.Scheme {
	case "unix":
		if u.Host != "" || !path.IsAbs(u.Path) {
			return "", bad("a unix socket needs an absolute path after unix:// (three slashes)")
		}
	case "tcp":
		if u.Hostname() == "" || u.Port() == "" {
			return "", bad("a tcp address needs a host and a port")
		}
		if _, err := strconv.ParseUint(u.Port(), 10, 16); err != nil {
			return "", bad("port " + u.Port() + " is not a number from 0 to 65535")
		}
		if u.Path != "" && u.Path != "/" {
			return "", bad("a tcp address has no path")
		}
	case "":
		return "", bad("no scheme")
	default:
		return "", bad("scheme " + u.Scheme + " is not supported")
	}
	return addr, nil
}

// TLS is how to reach a buildkitd that serves TLS, as buildctl's
// --tlscacert, --tlscert, --tlskey and --tlsservername flags give it:
// file paths of PEM data. The zero value is no TLS.
type TLS struct {
	// CACert verifies the server's certificate. Without it the
	// connection is not TLS, and Cert, Key and ServerName must be empty.
	CACert string
	// Cert and Key are the client's certificate and key (mutual TLS);
	// both or neither.
	Cert, Key string
	// ServerName is the name the server's certificate must hold. The
	// default is the address's host.
	ServerName string
}

func (t TLS) check() error {
	if t.CACert == "" && (t.Cert != "" || t.Key != "" || t.ServerName != "") {
		return errors.New("TLS: a client certificate, key or server name needs the server's CA certificate (--tlscacert)")
	}
	if (t.Cert == "") != (t.Key == "") {
		return errors.New("TLS: give both the client certificate (--tlscert) and its key (--tlskey), or neither")
	}
	return nil
}

// Client is a connection to a buildkitd.
type Client struct {
	c    *client.Client
	addr string
}

// Dial connects to the buildkitd at addr (see ParseAddress). The
// connection is made lazily, so an unreachable daemon is reported by the
// first Solve; Dial fails only for a bad address or bad TLS files.
func Dial(ctx context.Context, addr string, tls TLS) (*Client, error) {
	a, err := ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	if err := tls.check(); err != nil {
		return nil, fmt.Errorf("builder %s: %w", addr, err)
	}
	var opts []client.ClientOpt
	if tls.CACert != "" {
		name := tls.ServerName
		if name == "" {
			u, _ := url.Parse(a)
			name = u.Hostname()
		}
		opts = append(opts, client.WithServerConfig(name, tls.CACert))
	}
	if tls.Cert != "" {
		opts = append(opts, client.WithCredentials(tls.Cert, tls.Key))
	}
	c, err := client.New(ctx, a, opts...)
	if err != nil {
		return nil, fmt.Errorf("builder %s: %w", addr, err)
	}
	return &Client{c: c, addr: a}, nil
}

// Addr is the buildkitd address the client connects to.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// Solve is one definition for buildkitd to build.
type Solve struct {
	// Definition is the graph to build. Its oci-layout:// sources of store
	// StoreID are read from Blobs: RewriteSources makes them of the
	// docker-image:// sources Blobs holds.
	Definition *pb.Definition
	// Locals are the directories of the definition's local:// sources, by
	// name.
	Locals map[string]string
	// Secrets are the values of the secret IDs the definition's secret
	// mounts and secret env name.
	Secrets map[string][]byte
	// Blobs is the store the oci-layout sources are read from and the
	// result's blobs are written to.
	Blobs *oci.Store
	// Tmp is the directory new blobs are written to before they are
	// stored; the same file system as Blobs saves a copy. The default is
	// os.TempDir().
	Tmp string
	// Epoch, when set, is SOURCE_DATE_EPOCH for BuildKit's exporter:
	// file times in the result's new layers later than it are clamped to
	// it (rewrite-timestamp).
	Epoch *time.Time
	// Insecure allows exec ops marked SecurityMode_INSECURE (BuildKit's
	// security.insecure entitlement; buildkitd must allow it too).
	Insecure bool
	// Progress, when set, receives the solve's events, from one goroutine.
	Progress func(Event)
}

// Result is the image a Solve made, its blobs in Solve.Blobs.
type Result struct {
	// Manifest is the image manifest BuildKit's exporter wrote.
	Manifest ocispec.Descriptor
	// Layers are the image's layers, base first, and DiffIDs their
	// uncompressed digests, as the exported config lists them.
	Layers  []ocispec.Descriptor
	DiffIDs []digest.Digest
}

// Solve builds s.Definition on buildkitd and returns the image it made,
// imported into s.Blobs. BuildKit's oci exporter writes the result into
// s.Blobs through the session, sending only the blobs it lacks, each
// checked against its digest and size; an export that is not one image
// manifest (an index with attestations) is an error.
func (c *Client) Solve(ctx context.Context, s Solve) (Result, error) {
	if s.Definition == nil || s.Blobs == nil {
		return Result{}, errors.New("remote solve: a definition and a blob store are needed")
	}
	def := s.Definition
	mounts := make(map[string]fsutil.FS, len(s.Locals))
	for name, dir := range s.Locals {
		fs, err := fsutil.NewFS(dir)
		if err != nil {
			return Result{}, fmt.Errorf("local source %s (%s): %w", name, dir, err)
		}
		mounts[name] = fs
	}
	attrs := map[string]string{
		"compression":    "zstd",
		"oci-mediatypes": "true",
		"tar":            "false", // into OutputStore, blob by blob
	}
	if s.Epoch != nil {
		attrs["source-date-epoch"] = strconv.FormatInt(s.Epoch.Unix(), 10)
		attrs["rewrite-timestamp"] = "true"
	}
	tmp, err := os.MkdirTemp(s.Tmp, "export-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(tmp)
	opt := client.SolveOpt{
		LocalMounts: mounts,
		OCIStores:   map[string]content.Store{StoreID: ContentStore(s.Blobs)},
		Session:     []session.Attachable{secretsprovider.FromMap(maps.Clone(s.Secrets))},
		Exports: []client.ExportEntry{{
			Type:        client.ExporterOCI,
			Attrs:       attrs,
			OutputStore: exportStore{blobStore{s.Blobs}, tmp},
		}},
	}
	if s.Insecure {
		opt.AllowedEntitlements = []string{entitlements.EntitlementSecurityInsecure.String()}
	}

	ch := make(chan *client.SolveStatus)
	eg, ectx := errgroup.WithContext(ctx)
	var resp map[string]string
	eg.Go(func() error {
		var ld llb.Definition
		ld.FromPB(def)
		res, err := c.c.Solve(ectx, &ld, opt, ch)
		if res != nil {
			resp = res.ExporterResponse
		}
		return err
	})
	eg.Go(func() error {
		m := newStatusMapper()
		for st := range ch {
			if s.Progress == nil {
				continue
			}
			for _, e := range m.Map(st) {
				s.Progress(e)
			}
		}
		return nil
	})
	if err := eg.Wait(); err != nil {
		return Result{}, fmt.Errorf("builder %s: %w", c.addr, err)
	}
	res, err := readResult(resp, s.Blobs)
	if err != nil {
		return Result{}, fmt.Errorf("builder %s: %w", c.addr, err)
	}
	return res, nil
}

// readResult returns the image BuildKit's exporter response resp names
// (the manifest descriptor, exptypes.ExporterImageDescriptorKey), read
// from blobs.
func readResult(resp map[string]string, blobs *oci.Store) (Result, error) {
	raw, ok := resp[exptypes.ExporterImageDescriptorKey]
	if !ok {
		return Result{}, fmt.Errorf("the export named no image (no %s in the exporter's response)", exptypes.ExporterImageDescriptorKey)
	}
	dt, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return Result{}, fmt.Errorf("the exporter's %s: %w", exptypes.ExporterImageDescriptorKey, err)
	}
	var desc ocispec.Descriptor
	if err := json.Unmarshal(dt, &desc); err != nil {
		return Result{}, fmt.Errorf("the exporter's %s: %w", exptypes.ExporterImageDescriptorKey, err)
	}
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return Result{}, fmt.Errorf("the export is a %s, not one image manifest: turn off attestations (provenance, SBOM) for snapbuild's builds on buildkitd", desc.MediaType)
	}
	var man ocispec.Manifest
	if err := blobs.ReadJSON(desc.Digest, &man); err != nil {
		return Result{}, fmt.Errorf("the exported manifest: %w", err)
	}
	var cfg ocispec.Image
	if err := blobs.ReadJSON(man.Config.Digest, &cfg); err != nil {
		return Result{}, fmt.Errorf("the exported image config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		return Result{}, fmt.Errorf("the exported image lists %d layers and %d diff IDs", len(man.Layers), len(cfg.RootFS.DiffIDs))
	}
	for _, l := range man.Layers {
		if !blobs.Has(l.Digest) {
			return Result{}, fmt.Errorf("the exported image's layer %s was not exported", l.Digest)
		}
	}
	return Result{Manifest: ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, Layers: man.Layers, DiffIDs: cfg.RootFS.DiffIDs}, nil
}
