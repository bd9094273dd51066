package snapbuild

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/snapbuild/snapbuild/internal/modal"
)

func TestSecretRepr(t *testing.T) {
	if r := SecretFromDict(map[string]string{"B": "2", "A": "1"}).Repr(); r != "Secret.from_dict([A, B])" {
		t.Errorf("dict repr %q", r)
	}
	if r := SecretFromName("hf").Repr(); r != "modal.Secret.from_name('hf')" {
		t.Errorf("name repr %q", r)
	}
	if r := SecretFromDotenv("/x/.env").Repr(); r != "modal.Secret.from_dotenv('/x/.env')" {
		t.Errorf("dotenv repr %q", r)
	}
}

func TestSecretLoad(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SNAPBUILD_SECRETS_DIR", dir)
	os.WriteFile(filepath.Join(dir, "hf.env"), []byte("# token\nexport HF_TOKEN=\"abc def\"\nOTHER='x=y'\n\nPLAIN=v\n"), 0o600)
	vars, err := SecretFromName("hf").Load()
	want := map[string]string{"HF_TOKEN": "abc def", "OTHER": "x=y", "PLAIN": "v"}
	if err != nil || !reflect.DeepEqual(vars, want) {
		t.Errorf("from_name = %v, %v; want %v", vars, err, want)
	}
	if _, err := SecretFromName("missing").Load(); err == nil || err.Error() != `secret "missing" not found: create `+filepath.Join(dir, "missing.env")+` with KEY=VALUE lines (or set SNAPBUILD_SECRETS_DIR)` {
		t.Errorf("missing: %v", err)
	}
	if _, err := SecretFromName("../etc/passwd").Load(); err == nil {
		t.Error("a name with a path was accepted")
	}
	bad := filepath.Join(dir, "bad.env")
	os.WriteFile(bad, []byte("NOEQUALS\n"), 0o600)
	if _, err := SecretFromDotenv(bad).Load(); err == nil || err.Error() != bad+":1: want KEY=VALUE" {
		t.Errorf("bad dotenv: %v", err)
	}
}

func TestRedactor(t *testing.T) {
	r := newRedactor(map[string]string{"T": "s3cr3t", "LONG": "s3cr3t-and-more", "X": "ab"})
	if got := r.mask("token=s3cr3t-and-more and s3cr3t, ab"); got != "token=[secret LONG] and [secret T], ab" {
		t.Errorf("mask = %q", got)
	}
	if got := (redactor{}).mask("plain"); got != "plain" {
		t.Errorf("no secrets: %q", got)
	}
}

func TestSecretsInKeyNotValues(t *testing.T) {
	in := instruction{text: "RUN x"}
	st := &buildState{}
	k := func(s ...Secret) string {
		l := &modal.Layer{}
		Secrets(s...)(l)
		return stepKey(st, l, in, "", DefaultEpoch)
	}
	a := k(SecretFromDict(map[string]string{"TOKEN": "one"}))
	if b := k(SecretFromDict(map[string]string{"TOKEN": "two"})); a != b {
		t.Error("a secret's value changed the key")
	}
	if b := k(SecretFromDict(map[string]string{"TOKEN2": "one"})); a == b {
		t.Error("a secret's key name did not change the key")
	}
	if b := k(SecretFromName("x")); a == b {
		t.Error("another secret did not change the key")
	}
}
