package registry

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// AWS's published SigV4 test suite vectors (aws-sig-v4-test-suite):
// AKIDEXAMPLE, region us-east-1, service "service", 2015-08-30T12:36:00Z.
func TestSignV4Vectors(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	when := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	for _, tc := range []struct{ name, method, url, sig string }{
		{"get-vanilla", "GET", "https://example.amazonaws.com/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{"get-vanilla-query-order-key-case", "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
		{"post-vanilla", "POST", "https://example.amazonaws.com/", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, nil)
		signV4(req, nil, "AKIDEXAMPLE", secret, "", "us-east-1", "service", when)
		want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + tc.sig
		if got := req.Header.Get("Authorization"); got != want {
			t.Errorf("%s: Authorization =\n%s\nwant\n%s", tc.name, got, want)
		}
	}
}

func TestECRCredentials(t *testing.T) {
	const (
		akid   = "AKIAEXAMPLEKEYID0001"
		secret = "s3cr3t/ECR+key/EXAMPLE0000000000000000"
		token  = "session-token-EXAMPLE-123456"
		pass   = "ecr-password-EXAMPLE-abcdef0123456789"
	)
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var fail bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		auth := r.Header.Get("Authorization")
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/" || string(body) != "{}":
			http.Error(w, "bad request", 400)
			return
		case r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" ||
			r.Header.Get("Content-Type") != "application/x-amz-json-1.1":
			http.Error(w, "bad target", 400)
			return
		case r.Header.Get("X-Amz-Date") != "20260102T030405Z" || r.Header.Get("X-Amz-Security-Token") != token ||
			!strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+akid+"/20260102/eu-west-3/ecr/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="):
			http.Error(w, "bad signature: "+auth, 403)
			return
		case fail:
			w.WriteHeader(400)
			w.Write([]byte(`{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`))
			return
		}
		// The signature itself is recomputed from what was received.
		check, _ := http.NewRequest(r.Method, "https://"+r.Host+r.URL.String(), nil)
		for _, h := range []string{"Content-Type", "X-Amz-Target"} {
			check.Header.Set(h, r.Header.Get(h))
		}
		signV4(check, body, akid, secret, token, "eu-west-3", "ecr", when)
		if check.Header.Get("Authorization") != auth {
			http.Error(w, "signature mismatch", 403)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:" + pass)),
			"expiresAt":          when.Add(12 * time.Hour).Unix(),
			"proxyEndpoint":      "https://123456789012.dkr.ecr.eu-west-3.amazonaws.com",
		}}})
	}))
	defer srv.Close()

	secretMap := map[string]string{"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token}
	l, err := ECRLoginFromSecret(secretMap, "123456789012.dkr.ecr.eu-west-3.amazonaws.com")
	if err != nil {
		t.Fatal(err)
	}
	if l.Region != "eu-west-3" {
		t.Errorf("region from the registry host = %q, want eu-west-3", l.Region)
	}
	l.Endpoint, l.HTTPClient, l.now = srv.URL+"/", srv.Client(), func() time.Time { return when }
	user, got, err := l.Credentials(context.Background())
	if err != nil || user != "AWS" || got != pass {
		t.Fatalf("Credentials() = %q, %q, %v; want AWS and the password", user, got, err)
	}

	fail = true
	_, _, err = l.Credentials(context.Background())
	if err == nil || !strings.Contains(err.Error(), "UnrecognizedClientException") {
		t.Errorf("Credentials() against a refusing endpoint = %v", err)
	}
	for _, s := range []string{secret, token} {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("the error shows a secret: %v", err)
		}
	}

	if _, err := ECRLoginFromSecret(map[string]string{"AWS_ACCESS_KEY_ID": akid}, "example.com"); err == nil ||
		!strings.Contains(err.Error(), "AWS_REGION, AWS_SECRET_ACCESS_KEY") {
		t.Errorf("ECRLoginFromSecret(incomplete) = %v, want the missing keys named", err)
	}
	l.Endpoint = "http://" + strings.TrimPrefix(srv.URL, "https://")
	if _, _, err := l.Credentials(context.Background()); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("Credentials() over plain HTTP = %v, want a refusal", err)
	}
}

func TestGCPCredentials(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	const access = "ya29.EXAMPLE-access-token-0123456789"
	var tokenURL string
	var refuse bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			http.Error(w, `{"error":"unsupported_grant_type"}`, 400)
			return
		}
		parts := strings.Split(r.Form.Get("assertion"), ".")
		if len(parts) != 3 {
			http.Error(w, `{"error":"invalid_request"}`, 400)
			return
		}
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		var header, claims map[string]any
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		json.Unmarshal(hb, &header)
		json.Unmarshal(cb, &claims)
		if refuse || rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig) != nil ||
			header["alg"] != "RS256" || header["kid"] != "key-1" ||
			claims["iss"] != "builder@proj.iam.gserviceaccount.com" || claims["aud"] != tokenURL ||
			claims["scope"] != "https://www.googleapis.com/auth/cloud-platform" ||
			claims["exp"].(float64)-claims["iat"].(float64) != 3600 {
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"access_token": access, "expires_in": 3599, "token_type": "Bearer"})
	}))
	defer srv.Close()
	tokenURL = srv.URL + "/token"
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "client_email": "builder@proj.iam.gserviceaccount.com",
		"private_key": keyPEM, "private_key_id": "key-1", "token_uri": tokenURL,
	})
	l, err := GCPLoginFromSecret(map[string]string{"SERVICE_ACCOUNT_JSON": string(sa)})
	if err != nil {
		t.Fatal(err)
	}
	l.HTTPClient = srv.Client()
	user, pass, err := l.Credentials(context.Background())
	if err != nil || user != "oauth2accesstoken" || pass != access {
		t.Fatalf("Credentials() = %q, %q, %v; want oauth2accesstoken and the access token", user, pass, err)
	}

	refuse = true
	_, _, err = l.Credentials(context.Background())
	if err == nil || !strings.Contains(err.Error(), "invalid_grant") || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("Credentials() refused = %v, want invalid_grant and no key", err)
	}
	if _, err := GCPLoginFromSecret(map[string]string{}); err == nil || !strings.Contains(err.Error(), "SERVICE_ACCOUNT_JSON") {
		t.Errorf("GCPLoginFromSecret(empty) = %v", err)
	}
	bad := GCPLogin{ServiceAccountJSON: []byte(`{"client_email":"x@y","private_key":"not a key","token_uri":"` + tokenURL + `"}`), HTTPClient: srv.Client()}
	if _, _, err := bad.Credentials(context.Background()); err == nil || !strings.Contains(err.Error(), "private_key") {
		t.Errorf("Credentials() with a bad key = %v", err)
	}
}
