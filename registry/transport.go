package registry

import (
	"crypto/tls"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// gate routes each request: hosts that are insecure get a transport that skips
// TLS verification and may use plain HTTP; every other host gets verified TLS,
// and a plain HTTP request to it fails with *plainHTTPError without touching
// the network. go-containerregistry tries HTTP after HTTPS for loopback and
// RFC 1918 addresses on its own; the gate is what makes that an opt-in.
type gate struct {
	secure, insecure http.RoundTripper
	allowed          func(host string) bool
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	if g.allowed(req.URL.Host) {
		return g.insecure.RoundTrip(req)
	}
	if req.URL.Scheme != "https" {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &plainHTTPError{host: req.URL.Host}
	}
	return g.secure.RoundTrip(req)
}

// httpTransport builds the gate for o.
func (o *options) httpTransport() http.RoundTripper {
	base := o.transport
	if base == nil {
		base = remote.DefaultTransport
	}
	t, ok := base.(*http.Transport)
	if !ok {
		return &gate{secure: base, insecure: base, allowed: o.isInsecure}
	}
	secure := t.Clone()
	if secure.TLSClientConfig == nil {
		secure.TLSClientConfig = &tls.Config{}
	}
	if o.roots != nil {
		secure.TLSClientConfig.RootCAs = o.roots
	}
	insecure := t.Clone()
	if insecure.TLSClientConfig == nil {
		insecure.TLSClientConfig = &tls.Config{}
	}
	insecure.TLSClientConfig.InsecureSkipVerify = true
	return &gate{secure: secure, insecure: insecure, allowed: o.isInsecure}
}
