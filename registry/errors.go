package registry

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Errors callers may branch on with errors.Is.
var (
	// ErrNotFound: the registry has no such repository, tag or digest, or an
	// OCI layout or archive has no such tag.
	ErrNotFound = errors.New("image not found")
	// ErrUnauthorized: the registry refused the credentials (or their
	// absence) with 401 or 403.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUntrusted: the registry answers only plain HTTP or with a TLS
	// certificate that is not trusted, and it was not marked insecure.
	ErrUntrusted = errors.New("registry not trusted")
	// ErrDigestMismatch: a manifest, config or layer does not hash to the
	// digest that names it.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrBlocked: registries.conf blocks the image's prefix.
	ErrBlocked = errors.New("blocked by registries.conf")
	// ErrPlatform: no image for the wanted platform.
	ErrPlatform = errors.New("no image for platform")
)

// DigestError reports content that does not match its digest. It matches
// ErrDigestMismatch.
type DigestError struct {
	// Kind is "manifest", "config", "layer", or "uncompressed layer" (a
	// layer whose content does not match its diff ID).
	Kind string
	// Digest is the digest (or diff ID) the content should have.
	Digest string
	// Got is what the content hashes to; "" when the size was already wrong.
	Got string
	// Size and WantSize are the bytes read and expected; WantSize is -1 when
	// unknown.
	Size, WantSize int64
	// Source is where the content was read from.
	Source string
	// Err is an error reported alongside, if any.
	Err error
}

func (e *DigestError) Error() string {
	var why string
	switch {
	case e.WantSize >= 0 && e.Size != e.WantSize:
		why = fmt.Sprintf("size mismatch: read %d bytes, want %d", e.Size, e.WantSize)
	default:
		why = fmt.Sprintf("content hashes to %s (%d bytes)", e.Got, e.Size)
	}
	return fmt.Sprintf("%s %s from %s: %s: %s", e.Kind, e.Digest, e.Source, ErrDigestMismatch, why)
}

// Unwrap returns ErrDigestMismatch and the error reported alongside.
func (e *DigestError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrDigestMismatch, e.Err}
	}
	return []error{ErrDigestMismatch}
}

// CandidateError is one failed place to pull from.
type CandidateError struct {
	Ref    string // the reference tried, after mirror or location rewriting
	Mirror bool
	Err    error
}

// PullError reports that every place to pull an image from failed, in the
// order they were tried (mirrors first). It matches each candidate's errors.
type PullError struct {
	Candidates []CandidateError
}

func (e *PullError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "all %d candidates failed", len(e.Candidates))
	for i, c := range e.Candidates {
		kind := "location"
		if c.Mirror {
			kind = "mirror"
		}
		fmt.Fprintf(&b, "; (%d) %s %s: %v", i+1, kind, c.Ref, c.Err)
	}
	return b.String()
}

func (e *PullError) Unwrap() []error {
	var errs []error
	for _, c := range e.Candidates {
		errs = append(errs, c.Err)
	}
	return errs
}

// plainHTTPError is what the transport returns for a plain HTTP request to a
// registry that is not insecure.
type plainHTTPError struct{ host string }

func (e *plainHTTPError) Error() string {
	return fmt.Sprintf("plain HTTP to %s refused: it is not an insecure registry", e.host)
}

// explain classifies a go-containerregistry error for registry host: it adds
// the sentinel and a hint saying what to do, and keeps err in the chain.
// who describes the credentials used ("user \"alice\"", "no credentials").
func explain(err error, host, who string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrPlatform) || errors.Is(err, ErrNotFound) {
		return err
	}
	var (
		unknownCA  x509.UnknownAuthorityError
		invalid    x509.CertificateInvalidError
		hostname   x509.HostnameError
		verify     *tls.CertificateVerificationError
		plain      *plainHTTPError
		terr       *transport.Error
		optIn      = fmt.Sprintf("to use it anyway, opt in with --insecure-registry %s (WithInsecureRegistries) or insecure = true for it in registries.conf", host)
		caHint     = "or trust its CA with a CA file (WithCAFile) or SSL_CERT_FILE"
		tlsProblem = errors.As(err, &unknownCA) || errors.As(err, &invalid) || errors.As(err, &hostname) || errors.As(err, &verify)
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		// Before the plain HTTP case: with nothing listening, the HTTPS
		// attempt is refused and the HTTP fallback is then not allowed,
		// which is not the problem to report.
		return fmt.Errorf("%s cannot be reached: is a registry listening there, and is the address right? %w", host, err)
	case tlsProblem:
		return fmt.Errorf("%w: %s: its TLS certificate is not trusted; %s, %s: %w", ErrUntrusted, host, optIn, caHint, err)
	case errors.As(err, &plain):
		return fmt.Errorf("%w: %s does not answer HTTPS, and plain HTTP is used only by explicit opt-in; %s: %w", ErrUntrusted, host, optIn, err)
	case errors.As(err, &terr):
		switch {
		case terr.StatusCode == http.StatusUnauthorized || hasCode(terr, transport.UnauthorizedErrorCode):
			return fmt.Errorf("%w: %s answered 401 Unauthorized with %s: %w", ErrUnauthorized, host, who, err)
		case terr.StatusCode == http.StatusForbidden || hasCode(terr, transport.DeniedErrorCode):
			return fmt.Errorf("%w: %s answered 403 Forbidden (access denied) with %s: %w", ErrUnauthorized, host, who, err)
		case hasCode(terr, transport.ManifestUnknownErrorCode), hasCode(terr, transport.NameUnknownErrorCode),
			terr.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
	}
	return err
}

func hasCode(e *transport.Error, code transport.ErrorCode) bool {
	for _, d := range e.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// redacted hides secrets in an error's message; errors.Is and errors.As
// still see the original chain.
type redacted struct {
	err     error
	secrets []string
}

func redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var keep []string
	for _, s := range secrets {
		if len(s) >= 4 {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return err
	}
	return &redacted{err: err, secrets: keep}
}

func (r *redacted) Error() string {
	msg := r.err.Error()
	for _, s := range r.secrets {
		msg = strings.ReplaceAll(msg, s, "[REDACTED]")
	}
	return msg
}

func (r *redacted) Unwrap() error { return r.err }
