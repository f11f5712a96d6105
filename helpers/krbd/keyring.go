//go:build linux

package krbd

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// Keyring holds the cephx secret where the kernel looks for key=client.ID.
//
// When the add line says key=NAME, libceph's get_secret calls
// request_key(&key_type_ceph, NAME, NULL) in the context of the thread doing
// the write(2) to sysfs. request_key searches that thread's credentials'
// keyrings: thread keyring first, then process keyring, then session keyring
// (security/keys/process_keys.c, search_cred_keyrings_rcu). The user keyring
// is only reached through a session keyring that links it, which systemd
// services with the default KeyringMode=private do not have; that is why
// Ceph's set_kernel_secret moved from KEY_SPEC_USER_KEYRING to
// KEY_SPEC_PROCESS_KEYRING.
//
// Since Linux keeps thread, process and session keyrings in each thread's
// struct cred, a Go program must add the key and write the line on the same
// OS thread; Map does both on one locked thread that exits afterwards. The
// default Keyring uses the thread keyring: it is searched first, is never
// inherited by other threads, and is destroyed with the thread, so the key
// cannot outlive the map even if Remove fails.
type Keyring interface {
	// Add adds (or updates) a key of type "ceph" with this description and
	// payload, returning its serial.
	Add(description string, payload []byte) (int, error)
	// Remove drops the key once the kernel has copied it (libceph keeps its
	// own copy in the client options, so the mapping does not need it).
	Remove(id int) error
}

// ThreadKeyring is the default Keyring: add_key(2) into
// KEY_SPEC_THREAD_KEYRING of the calling thread.
type ThreadKeyring struct{}

// Add calls add_key("ceph", description, payload, KEY_SPEC_THREAD_KEYRING).
// The kernel's "ceph" key type (ceph_key_preparse) decodes the payload as a
// CryptoKey: the base64-decoded secret. It exists only while libceph is
// loaded; before that add_key fails with ENODEV.
func (ThreadKeyring) Add(description string, payload []byte) (int, error) {
	return unix.AddKey("ceph", description, payload, unix.KEY_SPEC_THREAD_KEYRING)
}

// Remove invalidates the key (3.5+), falling back to unlinking it.
func (ThreadKeyring) Remove(id int) error {
	if _, err := unix.KeyctlInt(unix.KEYCTL_INVALIDATE, id, 0, 0, 0); err == nil {
		return nil
	}
	_, err := unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_THREAD_KEYRING, 0, 0)
	return err
}

// keyringUnusable reports add_key failures after which the secret= fallback
// is right: ENOSYS (kernel built without CONFIG_KEYS), EPERM/EACCES (keyring
// syscalls filtered, e.g. a container's seccomp profile, or no permission on
// the keyring), ENODEV (no "ceph" key type registered: libceph not loaded).
// Ceph's own fallback covers ENODEV and ENOSYS. Anything else, such as
// EINVAL for a payload the kernel cannot decode or EDQUOT, is a real error.
func keyringUnusable(err error) bool {
	return errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EPERM) ||
		errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENODEV)
}
