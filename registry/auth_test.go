package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// isolateCredentials points every credential location at an empty temp dir,
// so that tests never read the machine's auth files.
func isolateCredentials(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, ".docker"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(dir, "run"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, ".config"))
	t.Setenv("REGISTRY_AUTH_FILE", "")
	return dir
}

func writeAuthFile(t *testing.T, path, key, user, pass string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	if err := os.WriteFile(path, []byte(`{"auths":{"`+key+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLSNeedsTrustOrOptIn(t *testing.T) {
	f := registries(t)
	isolateCredentials(t)
	ctx := context.Background()
	ref := mustRef(t, "docker://"+f.secure.host+"/seed/gzip:1")
	creds := WithCredentials(testUser, testPassword)

	// Self-signed (unknown CA), no opt-in: refused, and the error says how
	// to opt in.
	_, err := Pull(ctx, ref, creds)
	t.Logf("no CA, no opt-in: %v", err)
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "--insecure-registry "+f.secure.host) ||
		!strings.Contains(err.Error(), "insecure = true") || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Pull(%s) without trust = %v, want ErrUntrusted saying how to opt in", ref, err)
	}
	// Explicit opt-in.
	if _, err := Pull(ctx, ref, creds, WithInsecureRegistries(f.secure.host)); err != nil {
		t.Errorf("Pull(%s, insecure) = %v", ref, err)
	}
	// Opt-in by host without port.
	if _, err := Pull(ctx, ref, creds, WithInsecureRegistries("127.0.0.1")); err != nil {
		t.Errorf("Pull(%s, insecure 127.0.0.1) = %v", ref, err)
	}
	// Or trust the CA: TLS verified.
	img, err := Pull(ctx, ref, creds, WithCAFile(f.secure.caFile))
	if err != nil {
		t.Fatalf("Pull(%s, CA file) = %v", ref, err)
	}
	if err := readAllLayers(img); err != nil {
		t.Errorf("reading layers: %v", err)
	}

	// Plain HTTP without opt-in: refused, no silent downgrade for loopback.
	plainRef := mustRef(t, "docker://"+f.plain.host+"/test/gzip:1")
	_, err = Pull(ctx, plainRef)
	t.Logf("plain HTTP, no opt-in: %v", err)
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "--insecure-registry "+f.plain.host) {
		t.Errorf("Pull(%s) without opt-in = %v, want ErrUntrusted saying how to opt in", plainRef, err)
	}
	// Opt-in from registries.conf.
	conf, err := ParseConfig([]byte("[[registry]]\nlocation = \"" + f.plain.host + "\"\ninsecure = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(ctx, plainRef, WithRegistriesConfig(conf)); err != nil {
		t.Errorf("Pull(%s, registries.conf insecure) = %v", plainRef, err)
	}
}

func TestCredentials(t *testing.T) {
	f := registries(t)
	ctx := context.Background()
	ref := mustRef(t, "docker://"+f.secure.host+"/seed/gzip:1")
	ca := WithCAFile(f.secure.caFile)

	t.Run("wrong password", func(t *testing.T) {
		isolateCredentials(t)
		const wrong = "Wrong-Passw0rd-91d2"
		_, err := Pull(ctx, ref, ca, WithCredentials(testUser, wrong))
		t.Logf("wrong password: %v", err)
		if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), `"`+testUser+`"`) {
			t.Errorf("Pull with a wrong password = %v, want ErrUnauthorized naming 401 and the user", err)
		}
		if err != nil && strings.Contains(err.Error(), wrong) {
			t.Errorf("the error shows the password: %v", err)
		}
	})
	t.Run("none", func(t *testing.T) {
		isolateCredentials(t)
		_, err := Pull(ctx, ref, ca)
		t.Logf("no credentials: %v", err)
		if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "no credentials") {
			t.Errorf("Pull without credentials = %v, want ErrUnauthorized saying none were found", err)
		}
	})
	t.Run("REGISTRY_AUTH_FILE", func(t *testing.T) {
		dir := isolateCredentials(t)
		file := filepath.Join(dir, "auth.json")
		writeAuthFile(t, file, f.secure.host, testUser, testPassword)
		t.Setenv("REGISTRY_AUTH_FILE", file)
		if _, err := Pull(ctx, ref, ca); err != nil {
			t.Errorf("Pull with REGISTRY_AUTH_FILE = %v", err)
		}
	})
	t.Run("XDG_RUNTIME_DIR auth.json, per repository", func(t *testing.T) {
		dir := isolateCredentials(t)
		// A wrong host-wide entry and a right one for the namespace: the
		// longest match wins.
		path := filepath.Join(dir, "run", "containers", "auth.json")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		good := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPassword))
		bad := base64.StdEncoding.EncodeToString([]byte(testUser + ":nope-nope"))
		os.WriteFile(path, []byte(`{"auths":{"`+f.secure.host+`":{"auth":"`+bad+`"},"`+f.secure.host+`/seed":{"auth":"`+good+`"}}}`), 0o600)
		if _, err := Pull(ctx, ref, ca); err != nil {
			t.Errorf("Pull with $XDG_RUNTIME_DIR/containers/auth.json = %v", err)
		}
	})
	t.Run("docker config.json", func(t *testing.T) {
		dir := isolateCredentials(t)
		writeAuthFile(t, filepath.Join(dir, ".docker", "config.json"), "https://"+f.secure.host, testUser, testPassword)
		if _, err := Pull(ctx, ref, ca); err != nil {
			t.Errorf("Pull with $DOCKER_CONFIG/config.json = %v", err)
		}
	})
	t.Run("credential helper", func(t *testing.T) {
		dir := isolateCredentials(t)
		bin := filepath.Join(dir, "bin")
		os.MkdirAll(bin, 0o755)
		helper := "#!/bin/sh\nread host\n[ \"$host\" = \"" + f.secure.host + "\" ] || { echo 'credentials not found in native keychain'; exit 1; }\n" +
			"echo '{\"Username\":\"" + testUser + "\",\"Secret\":\"" + testPassword + "\"}'\n"
		if err := os.WriteFile(filepath.Join(bin, "docker-credential-snaptest"), []byte(helper), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
		path := filepath.Join(dir, ".config", "containers", "auth.json")
		os.MkdirAll(filepath.Dir(path), 0o700)
		os.WriteFile(path, []byte(`{"credHelpers":{"`+f.secure.host+`":"snaptest"}}`), 0o600)
		if _, err := Pull(ctx, ref, ca); err != nil {
			t.Errorf("Pull with a credential helper = %v", err)
		}
	})
}
