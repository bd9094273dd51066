package modal

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/snapbuild/snapbuild/registry"
)

// RegistryAuth says how a registry base's secret becomes credentials.
type RegistryAuth int

// RegistryBase is a from_registry base.
type RegistryBase struct {
	Ref    string
	Secret *Secret
	Auth   RegistryAuth
	// HTTPClient, when set, sends the cloud token exchanges (tests).
	HTTPClient *http.Client
}

// Credentials are a registry user name and password (or token).
type Credentials struct {
	Username, Password string
}

// Credentials turns the base's secret into registry Credentials: Modal's
// REGISTRY_USERNAME and REGISTRY_PASSWORD, or a token from AWS or GCP for
// their keys. Errors never hold the secret's values.
func (r *RegistryBase) Credentials(ctx context.Context) (*Credentials, error) {
	if r.Secret == nil {
		return nil, nil
	}
	vars, err := r.Secret.Load()
	if err != nil {
		return nil, err
	}
	switch r.Auth {
	case AuthAWS:
		host := ""
		if ref, err := registry.ParseReference(r.Ref); err == nil && ref.Name != nil {
			host = ref.Name.Context().RegistryStr()
		}
		login, err := registry.ECRLoginFromSecret(vars, host)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", r.Secret.Repr(), err)
		}
		login.Endpoint = vars["AWS_ENDPOINT_URL_ECR"]
		if login.Endpoint == "" {
			login.Endpoint = os.Getenv("AWS_ENDPOINT_URL_ECR")
		}
		login.HTTPClient = r.HTTPClient
		u, p, err := login.Credentials(ctx)
		if err != nil {
			return nil, err
		}
		return &Credentials{Username: u, Password: p}, nil
	case AuthGCP:
		login, err := registry.GCPLoginFromSecret(vars)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", r.Secret.Repr(), err)
		}
		login.HTTPClient = r.HTTPClient
		u, p, err := login.Credentials(ctx)
		if err != nil {
			return nil, err
		}
		return &Credentials{Username: u, Password: p}, nil
	}
	c := &Credentials{Username: vars["REGISTRY_USERNAME"], Password: vars["REGISTRY_PASSWORD"]}
	if c.Username == "" || c.Password == "" {
		return nil, fmt.Errorf("secret %s must hold REGISTRY_USERNAME and REGISTRY_PASSWORD (as Modal's from_registry secret)", r.Secret.Repr())
	}
	return c, nil
}

const (
	AuthStatic RegistryAuth = iota // REGISTRY_USERNAME, REGISTRY_PASSWORD
	AuthAWS                        // ECR GetAuthorizationToken
	AuthGCP                        // OAuth2 JWT bearer grant
)
