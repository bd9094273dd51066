package snapbuild

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/snapbuild/snapbuild/internal/store"
)

// The three from_* registry constructors turn their secret into the
// credentials the puller gets: static ones as they are, AWS and GCP keys
// through their token exchanges (here against local stand-ins).
func TestRegistryCredentials(t *testing.T) {
	uNeedRoot(t)
	ecr := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/") ||
			r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" {
			http.Error(w, `{"__type":"UnrecognizedClientException"}`, 400)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:ecr-password"))}}})
	}))
	defer ecr.Close()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	gcp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_grant"}`, 400)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"access_token": "ya29.gcp-token", "expires_in": 3599, "token_type": "Bearer"})
	}))
	defer gcp.Close()
	sa, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "builder@p.iam.gserviceaccount.com",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "private_key_id": "key-1", "token_uri": gcp.URL + "/token"})

	base := pImage(t, "amd64", pTar(t, [][2]string{{"etc/", ""}, {"etc/os-release", "ID=x\n"}}))
	for _, tc := range []struct {
		name   string
		img    Image
		client *http.Client
		want   Credentials
	}{
		{"static", FromRegistry("r.example/a:1", RegistryOptions{Secret: ptr(SecretFromDict(map[string]string{"REGISTRY_USERNAME": "u", "REGISTRY_PASSWORD": "p"}))}), nil, Credentials{Username: "u", Password: "p"}},
		{"aws", FromAWSECR("123456789012.dkr.ecr.eu-west-1.amazonaws.com/a:1", RegistryOptions{Secret: ptr(SecretFromDict(map[string]string{
			"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-key", "AWS_ENDPOINT_URL_ECR": ecr.URL}))}), ecr.Client(), Credentials{Username: "AWS", Password: "ecr-password"}},
		{"gcp", FromGCPArtifactRegistry("europe-docker.pkg.dev/p/r/a:1", RegistryOptions{Secret: ptr(SecretFromDict(map[string]string{
			"SERVICE_ACCOUNT_JSON": string(sa)}))}), gcp.Client(), Credentials{Username: "oauth2accesstoken", Password: "ya29.gcp-token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.img.Err(); err != nil {
				t.Fatal(err)
			}
			tc.img.layers[0].Root.Registry.HTTPClient = tc.client
			var got *Credentials
			b := uBuilder(t, WithPuller(func(_ context.Context, _ string, c *Credentials) (v1.Image, error) { got = c; return base, nil }))
			if _, err := b.Build(t.Context(), tc.img); err != nil {
				t.Fatal(err)
			}
			if got == nil || *got != tc.want {
				t.Errorf("credentials %+v, want %+v", got, tc.want)
			}
		})
	}
	// Errors name what is missing, never the values.
	b := uBuilder(t, WithPuller(func(context.Context, string, *Credentials) (v1.Image, error) { return base, nil }))
	_, err = b.Build(t.Context(), FromAWSECR("r.example/a:1", RegistryOptions{Secret: ptr(SecretFromDict(map[string]string{"AWS_SECRET_ACCESS_KEY": "hush"}))}))
	if err == nil || !strings.Contains(err.Error(), "missing AWS_ACCESS_KEY_ID, AWS_REGION") || strings.Contains(err.Error(), "hush") {
		t.Errorf("ECR without keys: %v", err)
	}
	_, err = b.Build(t.Context(), FromRegistry("r.example/a:1", RegistryOptions{Secret: ptr(SecretFromDict(map[string]string{"REGISTRY_USERNAME": "u"}))}))
	if err == nil || !strings.Contains(err.Error(), "must hold REGISTRY_USERNAME and REGISTRY_PASSWORD") {
		t.Errorf("static without a password: %v", err)
	}
	if err := FromAWSECR("r.example/a:1", RegistryOptions{}).Err(); err == nil || !strings.Contains(err.Error(), "needs a secret") {
		t.Errorf("ECR without a secret: %v", err)
	}
	err = FromRegistry("r.example/a:1", RegistryOptions{}, Secrets(SecretFromName("x"))).Err()
	if err == nil || !strings.Contains(err.Error(), "Passing a list of 'secrets' is not supported; use the singular 'secret' argument.") {
		t.Errorf("secrets=: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// A registry reference finds an image named with another spelling of it.
func TestResolveNormalizedName(t *testing.T) {
	b := uBuilder(t)
	const id = "im-0123456789abcdefghijkl"
	if err := b.e.Store().PutImage(store.Image{ID: id}); err != nil {
		t.Fatal(err)
	}
	if err := b.e.Store().SetName("docker.io/library/ubuntu:22.04", id); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"docker.io/library/ubuntu:22.04", "ubuntu:22.04", "library/ubuntu:22.04", "index.docker.io/library/ubuntu:22.04"} {
		if rec, err := b.e.Store().Resolve(ref); err != nil || rec.ID != id {
			t.Errorf("resolve(%q) = %v, %v", ref, rec.ID, err)
		}
	}
	for _, ref := range []string{"ubuntu:20.04", "ubuntu", "quay.io/library/ubuntu:22.04", "oci:/x:ubuntu:22.04"} {
		if _, err := b.e.Store().Resolve(ref); err == nil {
			t.Errorf("resolve(%q) found the image", ref)
		}
	}
}
