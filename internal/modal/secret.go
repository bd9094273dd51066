package modal

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Secret is a set of environment variables given to a build step's
// processes (modal.Secret). Its values never reach a layer, the image config,
// the history, a cache key or the build output (they are masked there); only
// its identity (Repr) feeds the cache key, as Modal keys by secret IDs: a
// changed value does not rebuild, a renamed key does.
type Secret struct {
	kind   string // "dict", "name", "dotenv"
	name   string // from_name: the name; from_dotenv: the path
	values map[string]string
	keys   []string // from_dict: sorted key names
}

// SecretFromDict is modal.Secret.from_dict: the variables as given.
func SecretFromDict(vars map[string]string) Secret {
	keys := make([]string, 0, len(vars))
	vals := make(map[string]string, len(vars))
	for k, v := range vars {
		keys = append(keys, k)
		vals[k] = v
	}
	sort.Strings(keys)
	return Secret{kind: "dict", values: vals, keys: keys}
}

// SecretFromName is modal.Secret.from_name: the dotenv file NAME.env in the
// secrets directory ($SNAPBUILD_SECRETS_DIR, else
// $XDG_CONFIG_HOME/snapbuild/secrets or ~/.config/snapbuild/secrets), read
// when the step runs.
func SecretFromName(name string) Secret { return Secret{kind: "name", name: name} }

// SecretFromDotenv is modal.Secret.from_dotenv: a dotenv file (KEY=VALUE
// lines, # comments, optional "export ", optional quotes), read when the step
// runs; a leading "~" in path is the home directory, as for every local path.
func SecretFromDotenv(path string) Secret { return Secret{kind: "dotenv", name: path} }

// Repr is the secret's identity as Modal's repr writes it; it is what the
// cache key holds.
func (s Secret) Repr() string {
	switch s.kind {
	case "dict":
		// Modal's repr lists the key names unquoted.
		return fmt.Sprintf("Secret.from_dict([%s])", strings.Join(s.keys, ", "))
	case "name":
		return fmt.Sprintf("modal.Secret.from_name(%s)", PyRepr(s.name))
	default:
		return fmt.Sprintf("modal.Secret.from_dotenv(%s)", PyRepr(s.name))
	}
}

// SecretsDir is where SecretFromName looks.
func SecretsDir() string {
	if d := os.Getenv("SNAPBUILD_SECRETS_DIR"); d != "" {
		return d
	}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "snapbuild", "secrets")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".config", "snapbuild", "secrets")
}

var secretNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`) })

// Load returns the secret's variables.
func (s Secret) Load() (map[string]string, error) {
	switch s.kind {
	case "dict":
		return s.values, nil
	case "name":
		if !secretNameRE().MatchString(s.name) {
			return nil, fmt.Errorf("secret name %q: use letters, digits, '.', '_' and '-'", s.name)
		}
		p := filepath.Join(SecretsDir(), s.name+".env")
		vars, err := readDotenv(p)
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("secret %q not found: create %s with KEY=VALUE lines (or set SNAPBUILD_SECRETS_DIR)", s.name, p)
		}
		return vars, err
	default:
		p, err := ExpandHome(s.name)
		if err != nil {
			return nil, err
		}
		return readDotenv(p)
	}
}

// readDotenv parses a dotenv file.
func readDotenv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE", path, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		vars[k] = v
	}
	return vars, sc.Err()
}
