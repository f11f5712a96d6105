// Package secret reads the keys and passwords that units name but never
// hold: a field of the definition file, a Ceph keyring, or a systemd
// credential. Errors say where a secret was looked for, never what it is.
package secret

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/helpers/contract"
)

// ErrNone means the source names no secret.
var ErrNone = errors.New("no secret source given")

// Read returns the secret a source names. cephxID is the user a keyring
// entry is looked up for ("admin" reads [client.admin]).
func Read(src contract.Secret, cephxID string) (string, error) {
	switch {
	case src.DefinitionFile != "":
		return FromDefinition(src.DefinitionFile, src.DefinitionField)
	case src.Keyring != "":
		return FromKeyring(src.Keyring, cephxID)
	case src.Credential != "":
		return FromCredential(src.Credential)
	}
	return "", ErrNone
}

// FromDefinition reads a secret held inline in a definition. The file must
// not be writable by anyone but root: otherwise anyone who can edit it
// chooses what the helper (root) sends to the kernel.
func FromDefinition(file, field string) (string, error) {
	fi, err := os.Stat(file) // stat, not open: a FIFO would block an open
	if err != nil {
		return "", fmt.Errorf("secret in %s: %w", file, err)
	}
	if err := rootOnlyWritable(file, fi); err != nil {
		return "", err
	}
	// Read as the generator reads definitions: a regular file, bounded,
	// never blocking.
	data, err := definition.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	s, err := definition.Field(file, data, field)
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	if s == "" {
		return "", fmt.Errorf("secret: %s: %s is empty", file, field)
	}
	return s, nil
}

func rootOnlyWritable(file string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm()&0o022 != 0 || (ok && st.Uid != 0) {
		return fmt.Errorf("refusing to read a secret from %s: it is writable by users other than root (mode %v): chown root and chmod 600 it", file, fi.Mode().Perm())
	}
	return nil
}

// FromKeyring reads the key of client.ID from a Ceph keyring file:
//
//	[client.admin]
//		key = AQ...==
func FromKeyring(file, id string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	want := "[client." + id + "]"
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			in = line == want
			continue
		}
		if !in {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == "key" {
			if v = strings.TrimSpace(v); v != "" {
				return v, nil
			}
		}
	}
	return "", fmt.Errorf("keyring %s has no key for client.%s: add a [client.%s] section with key = ... (ceph auth get client.%s)", file, id, id, id)
}

// FromCredential reads a systemd credential of the running unit.
func FromCredential(name string) (string, error) {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return "", fmt.Errorf("credential %q: $CREDENTIALS_DIRECTORY is not set: run from a unit with LoadCredential=%s:PATH", name, name)
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("credential %q: %w", name, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("credential %q is empty", name)
	}
	return s, nil
}
