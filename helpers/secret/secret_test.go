package secret

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-project/strata/helpers/contract"
)

const key = "AQBgZGhkAAAAABAAexampleexampleexample0=="

func TestFromDefinition(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.yaml")
	body := "mount:\n  attach:\n    attach:\n      rbd:\n        options:\n          secret: " + key + "\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Read(contract.Secret{DefinitionFile: file, DefinitionField: "mount.attach.attach.rbd.options.secret"}, "admin")
	if err != nil || got != key {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := FromDefinition(file, "mount.attach.attach.rbd.options.nope"); err == nil || strings.Contains(err.Error(), key) {
		t.Errorf("missing field: %v", err)
	}
	os.Chmod(file, 0o666)
	_, err = FromDefinition(file, "mount.attach.attach.rbd.options.secret")
	if err == nil || !strings.Contains(err.Error(), "writable by users other than root") || strings.Contains(err.Error(), key) {
		t.Errorf("group/world-writable file: %v", err)
	}
}

// A FIFO (or a device) where the definition should be is refused at once:
// the helper runs at boot, in a unit that would otherwise hang.
func TestFromDefinitionNeverBlocks(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "c.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := FromDefinition(fifo, "mount.attach.attach.rbd.options.secret"); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("a FIFO: %v", err)
		}
	case <-time.After(time.Minute): // a hang guard, not a timing check
		t.Fatal("reading a secret from a FIFO blocked")
	}
}

func TestFromDefinitionListIndex(t *testing.T) {
	file := filepath.Join(t.TempDir(), "b.json")
	os.WriteFile(file, []byte(`{"mount":{"overlay":{"lower":[{"x":1},{"attach":{"secret":"`+key+`"}}]}}}`), 0o600)
	got, err := FromDefinition(file, "mount.overlay.lower[1].attach.secret")
	if err != nil || got != key {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestFromKeyring(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ceph.client.node.keyring")
	os.WriteFile(file, []byte("[client.admin]\n\tkey = WRONG\n[client.node]\n\tkey = "+key+"\n\tcaps mon = \"profile rbd\"\n"), 0o600)
	got, err := FromKeyring(file, "node")
	if err != nil || got != key {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := FromKeyring(file, "other"); err == nil || strings.Contains(err.Error(), key) {
		t.Errorf("unknown id: %v", err)
	}
}

func TestFromCredential(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "strata-rbd-key"), []byte(key+"\n"), 0o400)
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	got, err := FromCredential("strata-rbd-key")
	if err != nil || got != key {
		t.Fatalf("got %q, %v", got, err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	if _, err := FromCredential("strata-rbd-key"); err == nil {
		t.Error("no CREDENTIALS_DIRECTORY accepted")
	}
}
