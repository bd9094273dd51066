package modal

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
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
