package snapbuild

import (
	"github.com/snapbuild/snapbuild/internal/modal"
)

// Secrets gives the step's processes the secrets' variables (Modal's
// secrets= keyword). Later secrets override earlier ones, and all override
// BuildEnv and the image's environment.
func Secrets(secrets ...Secret) StepOption {
	return func(l *modal.Layer) { l.Secrets = append(l.Secrets, secrets...) }
}

// Secret is a set of environment variables given to a build step's
// processes (modal.Secret). Its values never reach a layer, the image
// config, the history, a cache key or the build output (they are masked
// there); only its identity (Repr) feeds the cache key, as Modal keys by
// secret IDs: a changed value does not rebuild, a renamed key does. Make one
// with SecretFromDict, SecretFromName or SecretFromDotenv.
type Secret = modal.Secret

// SecretFromDict is modal.Secret.from_dict: the variables as given.
func SecretFromDict(vars map[string]string) Secret { return modal.SecretFromDict(vars) }

// SecretFromName is modal.Secret.from_name: the dotenv file NAME.env in the
// secrets directory (SecretsDir), read when the step runs. A name other than
// letters, digits, '.', '-' and '_' is an error then.
func SecretFromName(name string) Secret { return modal.SecretFromName(name) }

// SecretFromDotenv is modal.Secret.from_dotenv: a dotenv file (KEY=VALUE
// lines, # comments, optional "export ", optional quotes), read when the step
// runs; a leading "~" in path is the home directory, as for every local path.
func SecretFromDotenv(path string) Secret { return modal.SecretFromDotenv(path) }

// SecretsDir is where SecretFromName looks for NAME.env:
// $SNAPBUILD_SECRETS_DIR, else $XDG_CONFIG_HOME/snapbuild/secrets, else
// ~/.config/snapbuild/secrets.
func SecretsDir() string { return modal.SecretsDir() }
