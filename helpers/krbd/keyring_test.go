//go:build linux

package krbd

import (
	"errors"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestThreadKeyringIsPerThread checks, on the real kernel, the fact Map is
// built on: a key in the thread keyring is found by a lookup from the same
// OS thread (as libceph's request_key is, during our write) and not from
// another thread. It uses the "user" key type, which needs no module.
func TestThreadKeyringIsPerThread(t *testing.T) {
	done := make(chan struct{})
	var skip error
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread and its keyring go away
		id, err := unix.AddKey("user", "strata-krbd-test", []byte("x"), unix.KEY_SPEC_THREAD_KEYRING)
		if keyringUnusable(err) {
			skip = err
			return
		}
		if err != nil {
			t.Errorf("add_key: %v", err)
			return
		}
		if _, err := unix.KeyctlSearch(unix.KEY_SPEC_THREAD_KEYRING, "user", "strata-krbd-test", 0); err != nil {
			t.Errorf("same thread does not find the key: %v", err)
		}
		other := make(chan error)
		go func() {
			runtime.LockOSThread()
			_, err := unix.RequestKey("user", "strata-krbd-test", "", 0)
			other <- err
		}()
		if err := <-other; err == nil {
			t.Errorf("another thread found the thread-keyring key")
		}
		if err := (ThreadKeyring{}).Remove(id); err != nil {
			t.Errorf("remove: %v", err)
		}
		if _, err := unix.KeyctlSearch(unix.KEY_SPEC_THREAD_KEYRING, "user", "strata-krbd-test", 0); err == nil {
			t.Errorf("key still found after Remove")
		}
	}()
	<-done
	if skip != nil {
		t.Skipf("keyrings unusable here: %v", skip)
	}
}

// TestThreadKeyringCephType: adding a "ceph" key either works (libceph
// loaded) or fails in a way Map falls back from (ENODEV without libceph).
func TestThreadKeyringCephType(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		id, err := (ThreadKeyring{}).Add("client.strata-test", testSecretBytes())
		if err != nil {
			if !keyringUnusable(err) {
				t.Errorf("add_key ceph: %v is not a fallback case", err)
			}
			return
		}
		if err := (ThreadKeyring{}).Remove(id); err != nil {
			t.Errorf("remove: %v", err)
		}
	}()
	<-done
}

func TestKeyringUnusable(t *testing.T) {
	for _, e := range []error{syscall.ENOSYS, syscall.EPERM, syscall.EACCES, syscall.ENODEV} {
		if !keyringUnusable(e) {
			t.Errorf("%v should fall back", e)
		}
	}
	for _, e := range []error{nil, syscall.EINVAL, syscall.EDQUOT, errors.New("x")} {
		if keyringUnusable(e) {
			t.Errorf("%v should not fall back", e)
		}
	}
}

func TestParseKmsgRecord(t *testing.T) {
	cases := map[string]string{
		"6,1234,5678,-;rbd: pool images does not exist\n":                    "rbd: pool images does not exist",
		"4,99,1,-,caller=T12;libceph: mon0 (1)10.0.0.1:6789 socket closed\n": "libceph: mon0 (1)10.0.0.1:6789 socket closed",
		"6,1,1,-;rbd: rbd0: capacity 1024 features 0x1\n SUBSYSTEM=rbd\n":    "rbd: rbd0: capacity 1024 features 0x1",
		"6,1,1,-;EXT4-fs (rbd0): mounted filesystem\n":                       "",
		"garbage": "",
	}
	for rec, want := range cases {
		got, ok := parseKmsgRecord(rec)
		if got != want || ok != (want != "") {
			t.Errorf("parseKmsgRecord(%q) = %q, %v", rec, got, ok)
		}
	}
}
