package image

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cephErr is an error like go-ceph's: a negative errno behind ErrorCode.
type cephErr int

func (e cephErr) Error() string  { return "rbd: ret=" + syscall.Errno(-e).Error() }
func (e cephErr) ErrorCode() int { return int(e) }

func TestErrno(t *testing.T) {
	if n, ok := Errno(cephErr(-2)); !ok || n != syscall.ENOENT {
		t.Errorf("Errno(-2) = %v %v", n, ok)
	}
	if n, ok := Errno(syscall.EPERM); !ok || n != syscall.EPERM {
		t.Errorf("Errno(EPERM) = %v %v", n, ok)
	}
	if _, ok := Errno(errors.New("x")); ok {
		t.Error("Errno of a plain error")
	}
}

func TestFailMessages(t *testing.T) {
	s := scope{User: "client.strata-node", Monitors: "127.0.0.1:6789", Timeout: 5 * time.Second, Pool: "rbd"}
	cases := []struct {
		op, spec string
		acc      access
		errno    int
		kind     error
		want     []string
	}{
		{"connect", "", accessNone, -110, ErrUnreachable, []string{"cannot reach", "127.0.0.1:6789", "within 5s", "client.strata-node"}},
		{"connect", "", accessNone, -13, ErrAuth, []string{"authentication as client.strata-node", "key is wrong"}},
		{"connect", "", accessNone, -1, ErrAuth, []string{"authentication"}},
		{"create image", "rbd/img", accessWrite, -1, ErrPermissionDenied, []string{"permission denied", "client.strata-node may not create image rbd/img", "osd 'profile rbd pool=rbd'", "mon 'profile rbd'"}},
		{"read image", "rbd/img", accessRead, -13, ErrPermissionDenied, []string{"osd 'profile rbd-read-only pool=rbd'"}},
		{"open pool", "nope", accessRead, -2, ErrNoSuchPool, []string{`no such pool "rbd"`}},
		{"open namespace", "rbd/ns", accessRead, -2, ErrNoSuchNamespace, []string{"no such namespace"}},
		{"open image", "rbd/img", accessRead, -2, ErrNoSuchImage, []string{"open image rbd/img: no such image"}},
		{"open snapshot", "rbd/img@s", accessRead, -2, ErrNoSuchSnapshot, []string{"no such snapshot"}},
		{"create image", "rbd/img", accessWrite, -17, ErrExists, []string{"already exists"}},
		{"remove image", "rbd/img", accessWrite, -16, ErrInUse, []string{"watchers"}},
		{"write image", "rbd/img", accessWrite, -28, ErrNoSpace, []string{"full"}},
		{"write image", "rbd/img", accessWrite, -110, ErrUnreachable, []string{"no answer", "within 5s"}},
		{"write image", "rbd/img", accessWrite, -5, nil, []string{"write image rbd/img"}},
	}
	for _, c := range cases {
		err := s.fail(c.op, c.spec, c.acc, cephErr(c.errno))
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s %d: %T", c.op, c.errno, err)
		}
		if c.kind != nil && !errors.Is(err, c.kind) {
			t.Errorf("%s %d: %v is not %v", c.op, c.errno, err, c.kind)
		}
		if !errors.Is(err, cephErr(c.errno)) {
			t.Errorf("%s %d: the cause is lost", c.op, c.errno)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s %d: %q does not say %q", c.op, c.errno, err, w)
			}
		}
	}
	// Already classified errors pass through.
	first := s.fail("open pool", "x", accessRead, cephErr(-2))
	if again := s.fail("other", "y", accessRead, first); again != first {
		t.Errorf("re-wrapped: %v", again)
	}
	if s.fail("x", "", accessRead, nil) != nil {
		t.Error("nil error wrapped")
	}
	ns := scope{User: "client.a", Pool: "p", Namespace: "n"}
	if got := ns.caps(accessWrite); !strings.Contains(got, "pool=p namespace=n") {
		t.Errorf("caps with a namespace: %s", got)
	}
}

func TestConnectOptions(t *testing.T) {
	o := ConnectOptions{User: "client.x", Monitors: []string{"127.0.0.1:1"}}
	if o.user() != "x" || o.timeout() != DefaultTimeout || o.where() != "127.0.0.1:1" {
		t.Errorf("user %q timeout %v where %q", o.user(), o.timeout(), o.where())
	}
	if (ConnectOptions{}).user() != "admin" {
		t.Error("default user")
	}
	if err := (ConnectOptions{Keyring: "/nonexistent/keyring"}).Check(); err == nil || !strings.Contains(err.Error(), "keyring") {
		t.Errorf("Check: %v", err)
	}
}
