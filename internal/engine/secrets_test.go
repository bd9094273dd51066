package engine

import (
	"testing"

	"github.com/snapbuild/snapbuild/internal/modal"
)

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
	in := instruction{Text: "RUN x"}
	st := &buildState{}
	k := func(s ...modal.Secret) string {
		l := &modal.Layer{}
		l.Secrets = s
		return stepKey(st, l, in, "", DefaultEpoch)
	}
	a := k(modal.SecretFromDict(map[string]string{"TOKEN": "one"}))
	if b := k(modal.SecretFromDict(map[string]string{"TOKEN": "two"})); a != b {
		t.Error("a secret's value changed the key")
	}
	if b := k(modal.SecretFromDict(map[string]string{"TOKEN2": "one"})); a == b {
		t.Error("a secret's key name did not change the key")
	}
	if b := k(modal.SecretFromName("x")); a == b {
		t.Error("another secret did not change the key")
	}
}
