package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/google/go-containerregistry/pkg/authn"
	"go.podman.io/storage/pkg/unshare"
	"golang.org/x/sys/unix"
)

// DefaultKeychain finds registry credentials where podman, skopeo and docker
// keep them, first match wins:
//
//  1. $REGISTRY_AUTH_FILE if set, else ${XDG_RUNTIME_DIR}/containers/auth.json
//     (/run/containers/$UID/auth.json when XDG_RUNTIME_DIR is unset);
//  2. unless REGISTRY_AUTH_FILE is set, $XDG_CONFIG_HOME/containers/auth.json
//     (default ~/.config/containers/auth.json);
//  3. go-containerregistry's authn.DefaultKeychain: $DOCKER_CONFIG/config.json
//     or ~/.docker/config.json, with docker's credsStore and credHelpers.
//
// Files 1 and 2 have the docker config.json format: "auths" keyed by host,
// host/namespace or host/namespace/repository (the longest match wins; legacy
// "https://host/v1/" keys match the host) and "credHelpers" keyed by host,
// which run docker-credential-NAME. Files are read on every lookup, so a
// `podman login` takes effect at once. A file that cannot be parsed is an
// error naming the file, not silently skipped.
func DefaultKeychain() authn.Keychain {
	return authn.NewMultiKeychain(AuthFileKeychain(containersAuthFiles()...), authn.DefaultKeychain)
}

// containersAuthFiles lists the containers-auth.json(5) locations in order.
func containersAuthFiles() []string {
	if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
		return []string{p}
	}
	var files []string
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		files = append(files, filepath.Join(d, "containers", "auth.json"))
	} else {
		// The user's own UID, also inside snapbuild's user namespace
		// (where os.Getuid is 0), as podman looks it up.
		files = append(files, fmt.Sprintf("/run/containers/%d/auth.json", unshare.GetRootlessUID()))
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		files = append(files, filepath.Join(d, "containers", "auth.json"))
	} else if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".config", "containers", "auth.json"))
	}
	return files
}

// AuthFileKeychain reads credentials from the given auth files (the
// containers-auth.json / docker config.json format, see DefaultKeychain), in
// order; missing files are skipped. It resolves to authn.Anonymous when no
// file names the registry.
func AuthFileKeychain(files ...string) authn.Keychain {
	return authFileKeychain(files)
}

type authFileKeychain []string

type authFile struct {
	Auths       map[string]authEntry `json:"auths"`
	CredHelpers map[string]string    `json:"credHelpers"`
}

type authEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

func (k authFileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	host := canonicalHost(target.RegistryStr())
	// Candidate keys, longest first: host/ns/repo, host/ns, host.
	var keys []string
	if repo, ok := strings.CutPrefix(target.String(), target.RegistryStr()+"/"); ok {
		parts := strings.Split(repo, "/")
		for i := len(parts); i > 0; i-- {
			keys = append(keys, host+"/"+strings.Join(parts[:i], "/"))
		}
	}
	keys = append(keys, host)
	for _, file := range k {
		b, err := os.ReadFile(file)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if errors.Is(err, os.ErrPermission) && unix.Access(filepath.Dir(file), unix.X_OK) != nil {
			// A directory we cannot enter (/run/containers is root's 0700
			// on Debian): the file is not ours, so it is not there for us.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading auth file: %w", err)
		}
		var f authFile
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("auth file %s: %w", file, err)
		}
		if helper := f.CredHelpers[host]; helper != "" {
			return helperAuth(helper, host)
		}
		auths := map[string]authEntry{}
		for key, e := range f.Auths {
			auths[normalizeAuthKey(key)] = e
		}
		for _, key := range keys {
			e, ok := auths[key]
			if !ok {
				continue
			}
			cfg := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
			if e.Auth != "" {
				raw, err := base64.StdEncoding.DecodeString(e.Auth)
				if err != nil {
					return nil, fmt.Errorf("auth file %s: entry %q: \"auth\" is not base64", file, key)
				}
				user, pass, ok := strings.Cut(string(raw), ":")
				if !ok {
					return nil, fmt.Errorf("auth file %s: entry %q: \"auth\" is not base64 of user:password", file, key)
				}
				cfg.Username, cfg.Password = user, pass
			}
			return authn.FromConfig(cfg), nil
		}
	}
	return authn.Anonymous, nil
}

// normalizeAuthKey maps "https://index.docker.io/v1/" and other URL-style keys
// to their host, and index.docker.io to docker.io, as containers/image does.
func normalizeAuthKey(key string) string {
	if rest, ok := strings.CutPrefix(key, "https://"); ok {
		key, _, _ = strings.Cut(rest, "/")
	} else if rest, ok := strings.CutPrefix(key, "http://"); ok {
		key, _, _ = strings.Cut(rest, "/")
	}
	host, rest, _ := strings.Cut(key, "/")
	if host == "index.docker.io" || host == "registry-1.docker.io" {
		host = "docker.io"
	}
	if rest == "" {
		return host
	}
	return host + "/" + rest
}

// helperAuth asks docker-credential-NAME for host's credentials.
func helperAuth(helper, host string) (authn.Authenticator, error) {
	creds, err := client.Get(client.NewShellProgramFunc("docker-credential-"+helper), host)
	if credentials.IsErrCredentialsNotFound(err) {
		return authn.Anonymous, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credential helper docker-credential-%s for %s: %w", helper, host, err)
	}
	if creds.Username == "<token>" {
		return authn.FromConfig(authn.AuthConfig{IdentityToken: creds.Secret}), nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: creds.Username, Password: creds.Secret}), nil
}
