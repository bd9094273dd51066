package registry

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Registry credentials from cloud keys, for Modal's Image.from_aws_ecr and
// Image.from_gcp_artifact_registry: the secret's keys are exchanged for a
// registry user name and password, which the caller passes to
// WithCredentials. Keys and tokens never appear in errors.

// ECRLogin exchanges AWS access keys for Amazon ECR registry credentials with
// the GetAuthorizationToken API (a SigV4-signed POST).
type ECRLogin struct {
	AccessKeyID, SecretAccessKey string
	SessionToken                 string // optional
	Region                       string
	// Endpoint is the ECR API URL; it must be https. The default is
	// https://api.ecr.REGION.amazonaws.com.
	Endpoint string
	// HTTPClient sends the request. The default has a 30 s timeout.
	HTTPClient *http.Client

	now func() time.Time // for tests
}

var ecrHost = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\d{12}\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)
})

// ECRLoginFromSecret reads Modal's from_aws_ecr secret: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION and, if present, AWS_SESSION_TOKEN.
// Without AWS_REGION the region comes from registryHost
// (ACCOUNT.dkr.ecr.REGION.amazonaws.com).
func ECRLoginFromSecret(secret map[string]string, registryHost string) (ECRLogin, error) {
	l := ECRLogin{
		AccessKeyID:     secret["AWS_ACCESS_KEY_ID"],
		SecretAccessKey: secret["AWS_SECRET_ACCESS_KEY"],
		SessionToken:    secret["AWS_SESSION_TOKEN"],
		Region:          secret["AWS_REGION"],
	}
	if l.Region == "" {
		if m := ecrHost().FindStringSubmatch(registryHost); m != nil {
			l.Region = m[1]
		}
	}
	var missing []string
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": l.AccessKeyID, "AWS_SECRET_ACCESS_KEY": l.SecretAccessKey, "AWS_REGION": l.Region} {
		if v == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return ECRLogin{}, fmt.Errorf("ECR secret: missing %s", strings.Join(missing, ", "))
	}
	return l, nil
}

// Credentials calls GetAuthorizationToken and returns the registry user name
// ("AWS") and password it grants (valid for 12 hours).
func (l ECRLogin) Credentials(ctx context.Context) (username, password string, err error) {
	defer func() { err = redact(err, l.SecretAccessKey, l.SessionToken, password) }()
	endpoint := l.Endpoint
	if endpoint == "" {
		endpoint = "https://api.ecr." + l.Region + ".amazonaws.com/"
	}
	if !strings.HasPrefix(endpoint, "https://") {
		return "", "", fmt.Errorf("ECR endpoint %q: must be https", endpoint)
	}
	body := []byte("{}")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return "", "", fmt.Errorf("ECR endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	signV4(req, body, l.AccessKeyID, l.SecretAccessKey, l.SessionToken, l.Region, "ecr", now())
	resp, err := httpClient(l.HTTPClient).Do(req)
	if err != nil {
		return "", "", fmt.Errorf("ECR GetAuthorizationToken: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", "", fmt.Errorf("ECR GetAuthorizationToken: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		json.Unmarshal(b, &e)
		return "", "", fmt.Errorf("ECR GetAuthorizationToken: %s: %s %s", resp.Status, e.Type, e.Message)
	}
	var out struct {
		AuthorizationData []struct {
			AuthorizationToken string `json:"authorizationToken"`
		} `json:"authorizationData"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.AuthorizationData) == 0 {
		return "", "", fmt.Errorf("ECR GetAuthorizationToken: the response holds no authorization data")
	}
	raw, err := base64.StdEncoding.DecodeString(out.AuthorizationData[0].AuthorizationToken)
	if err != nil {
		return "", "", fmt.Errorf("ECR GetAuthorizationToken: the token is not base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return "", "", fmt.Errorf("ECR GetAuthorizationToken: the token is not USER:PASSWORD")
	}
	return user, pass, nil
}

func httpClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// signV4 signs req with AWS Signature Version 4 (header form): it sets
// X-Amz-Date (and X-Amz-Security-Token when sessionToken is set) and an
// Authorization header covering the host and every header req carries.
func signV4(req *http.Request, body []byte, accessKey, secretKey, sessionToken, region, service string, now time.Time) {
	now = now.UTC()
	amzDate := now.Format("20060102T150405Z")
	date := now.Format("20060102")
	req.Header.Set("X-Amz-Date", amzDate)
	if sessionToken != "" {
		req.Header.Set("X-Amz-Security-Token", sessionToken)
	}
	headers := map[string]string{"host": req.URL.Host}
	for k, vs := range req.Header {
		var vals []string
		for _, v := range vs {
			vals = append(vals, strings.Join(strings.Fields(v), " "))
		}
		headers[strings.ToLower(k)] = strings.Join(vals, ",")
	}
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	var canonHeaders strings.Builder
	for _, k := range names {
		canonHeaders.WriteString(k + ":" + headers[k] + "\n")
	}
	signed := strings.Join(names, ";")
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	payload := sha256.Sum256(body)
	canonical := strings.Join([]string{
		req.Method, path, canonicalQuery(req.URL.Query()), canonHeaders.String(), signed, hex.EncodeToString(payload[:]),
	}, "\n")
	scope := date + "/" + region + "/" + service + "/aws4_request"
	cr := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(cr[:])
	key := hmacSHA256([]byte("AWS4"+secretKey), date)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, service)
	key = hmacSHA256(key, "aws4_request")
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+accessKey+"/"+scope+", SignedHeaders="+signed+", Signature="+sig)
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// canonicalQuery sorts parameters by name, then value, each URI-encoded as
// SigV4 requires (RFC 3986 unreserved characters kept, spaces as %20).
func canonicalQuery(q url.Values) string {
	var parts []string
	for k, vs := range q {
		for _, v := range vs {
			parts = append(parts, awsEscape(k)+"="+awsEscape(v))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

func awsEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// GCPLogin exchanges a Google service account key for an OAuth2 access
// token (the JWT bearer grant, RFC 7523), which Artifact Registry and
// Container Registry accept as the password of user "oauth2accesstoken".
type GCPLogin struct {
	// ServiceAccountJSON is the key file's content (Modal's
	// SERVICE_ACCOUNT_JSON): client_email, private_key (PEM, PKCS#8 or
	// PKCS#1 RSA), private_key_id and token_uri are used.
	ServiceAccountJSON []byte
	// Scope is the OAuth2 scope asked for. The default is
	// https://www.googleapis.com/auth/cloud-platform.
	Scope string
	// HTTPClient posts to the token_uri. The default has a 30 s timeout.
	HTTPClient *http.Client

	now func() time.Time // for tests
}

// GCPLoginFromSecret reads Modal's from_gcp_artifact_registry secret:
// SERVICE_ACCOUNT_JSON.
func GCPLoginFromSecret(secret map[string]string) (GCPLogin, error) {
	if secret["SERVICE_ACCOUNT_JSON"] == "" {
		return GCPLogin{}, fmt.Errorf("GCP secret: missing SERVICE_ACCOUNT_JSON")
	}
	return GCPLogin{ServiceAccountJSON: []byte(secret["SERVICE_ACCOUNT_JSON"])}, nil
}

// Credentials signs a JWT with the service account's key, posts it to the
// key's token_uri (which must be https) and returns "oauth2accesstoken" and
// the access token (valid for about an hour).
func (l GCPLogin) Credentials(ctx context.Context) (username, password string, err error) {
	var sa struct {
		Type         string `json:"type"`
		ClientEmail  string `json:"client_email"`
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
		TokenURI     string `json:"token_uri"`
	}
	if err := json.Unmarshal(l.ServiceAccountJSON, &sa); err != nil {
		return "", "", fmt.Errorf("GCP service account JSON: not JSON") // the decoder's message could quote the key
	}
	defer func() { err = redact(err, sa.PrivateKey, password) }()
	if sa.Type != "" && sa.Type != "service_account" {
		return "", "", fmt.Errorf("GCP service account JSON: type %q, want service_account", sa.Type)
	}
	if sa.ClientEmail == "" || sa.PrivateKey == "" {
		return "", "", fmt.Errorf("GCP service account JSON: client_email and private_key are required")
	}
	if sa.TokenURI == "" {
		sa.TokenURI = "https://oauth2.googleapis.com/token"
	}
	if !strings.HasPrefix(sa.TokenURI, "https://") {
		return "", "", fmt.Errorf("GCP service account JSON: token_uri %q must be https", sa.TokenURI)
	}
	key, err := parseRSAKey(sa.PrivateKey)
	if err != nil {
		return "", "", fmt.Errorf("GCP service account %s: private_key: %w", sa.ClientEmail, err)
	}
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	scope := l.Scope
	if scope == "" {
		scope = "https://www.googleapis.com/auth/cloud-platform"
	}
	iat := now().Unix()
	jwt, err := signJWT(key, map[string]any{"alg": "RS256", "typ": "JWT", "kid": sa.PrivateKeyID},
		map[string]any{"iss": sa.ClientEmail, "scope": scope, "aud": sa.TokenURI, "iat": iat, "exp": iat + 3600})
	if err != nil {
		return "", "", err
	}
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {jwt}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sa.TokenURI, strings.NewReader(form.Encode()))
	if err != nil {
		return "", "", fmt.Errorf("GCP token_uri: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := httpClient(l.HTTPClient).Do(req)
	if err != nil {
		return "", "", fmt.Errorf("GCP token exchange for %s: %w", sa.ClientEmail, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", "", fmt.Errorf("GCP token exchange for %s: %w", sa.ClientEmail, err)
	}
	var out struct {
		AccessToken      string `json:"access_token"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	json.Unmarshal(b, &out)
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("GCP token exchange for %s: %s: %s %s", sa.ClientEmail, resp.Status, out.Error, out.ErrorDescription)
	}
	if out.AccessToken == "" {
		return "", "", fmt.Errorf("GCP token exchange for %s: the response holds no access_token", sa.ClientEmail)
	}
	return "oauth2accesstoken", out.AccessToken, nil
}

func parseRSAKey(p string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("not an RSA key")
		}
		return rk, nil
	}
	k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("neither PKCS#8 nor PKCS#1 RSA")
	}
	return k, nil
}

// signJWT returns header.claims.signature, RS256, base64url without padding.
func signJWT(key *rsa.PrivateKey, header, claims map[string]any) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("signing the JWT: %w", err)
	}
	return signing + "." + enc.EncodeToString(sig), nil
}
