package image

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// Sentinels for errors.Is. Every error this package returns from talking to
// Ceph is an *Error that matches one of them when the cause is known.
var (
	// ErrNoCeph: this binary was built without go-ceph (no cgo, or no
	// Ceph release tag such as pacific).
	ErrNoCeph = errors.New("built without Ceph support (needs cgo and -tags pacific)")
	// ErrUnreachable: no monitor answered within the time-out.
	ErrUnreachable = errors.New("Ceph cluster unreachable")
	// ErrAuth: the monitors refused the user or its key.
	ErrAuth = errors.New("authentication failed")
	// ErrPermissionDenied: the user is known but its caps do not allow
	// the operation.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrNoSuchPool, ErrNoSuchNamespace, ErrNoSuchImage, ErrNoSuchSnapshot:
	// what was named does not exist.
	ErrNoSuchPool      = errors.New("no such pool")
	ErrNoSuchNamespace = errors.New("no such namespace")
	ErrNoSuchImage     = errors.New("no such image")
	ErrNoSuchSnapshot  = errors.New("no such snapshot")
	// ErrExists: the image (or snapshot) exists and --force was not given.
	ErrExists = errors.New("already exists")
	// ErrHasWatchers: the image is open or mapped somewhere (it has
	// watchers) and --force was not given.
	ErrHasWatchers = errors.New("image has watchers")
	// ErrInUse: Ceph refused because something still uses the image or
	// snapshot (watchers, clones, protected snapshots).
	ErrInUse = errors.New("in use")
	// ErrVerify: what was read back differs from what was written.
	ErrVerify = errors.New("verification failed")
	// ErrNoSpace: the pool or the cluster is full, or a quota is reached.
	ErrNoSpace = errors.New("no space left")
)

// Error is an error from an operation on the cluster, with a message meant
// for the person who ran it.
type Error struct {
	Op   string // what was being done: "connect", "create image", ...
	Spec string // the pool, image or snapshot it was done to, if any
	Kind error  // one of the sentinels above, or nil when unknown
	Msg  string // the whole message
	Err  error  // the cause (go-ceph's error, with its errno), may be nil
}

func (e *Error) Error() string { return e.Msg }

// Unwrap gives both the sentinel and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Errno gives the errno behind a go-ceph (or syscall) error, as a positive
// number.
func Errno(err error) (syscall.Errno, bool) {
	var coded interface{ ErrorCode() int }
	if errors.As(err, &coded) {
		n := coded.ErrorCode()
		if n < 0 {
			n = -n
		}
		if n != 0 {
			return syscall.Errno(n), true
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno, true
	}
	return 0, false
}

// access is what an operation needs from the user's OSD caps.
type access int

const (
	accessNone  access = iota // a monitor-only operation
	accessRead                // reading images: profile rbd-read-only
	accessWrite               // creating, writing, removing: profile rbd
)

// scope says who did what where, for messages.
type scope struct {
	User      string        // "client.admin"
	Monitors  string        // what was given as the monitors, or the conf path
	Timeout   time.Duration // the connection and operation time-out
	Pool      string
	Namespace string
}

// caps is the cap a user needs for acc on the scope's pool.
func (s scope) caps(acc access) string {
	pool := s.Pool
	ns := ""
	if s.Namespace != "" {
		ns = " namespace=" + s.Namespace
	}
	switch acc {
	case accessRead:
		return fmt.Sprintf("mon 'profile rbd' and osd 'profile rbd-read-only pool=%s%s' (or 'profile rbd pool=%s%s')", pool, ns, pool, ns)
	case accessWrite:
		return fmt.Sprintf("mon 'profile rbd' and osd 'profile rbd pool=%s%s'", pool, ns)
	}
	return "mon 'profile rbd'"
}

// fail turns an error from Ceph during op on spec into an *Error with a
// message that says what to do about it.
func (s scope) fail(op, spec string, acc access, err error) error {
	if err == nil {
		return nil
	}
	var known *Error
	if errors.As(err, &known) {
		return err
	}
	e := &Error{Op: op, Spec: spec, Err: err}
	what := op
	if spec != "" {
		what = op + " " + spec
	}
	errno, ok := Errno(err)
	if !ok {
		e.Msg = fmt.Sprintf("%s: %v", what, err)
		return e
	}
	switch errno {
	case syscall.ETIMEDOUT, syscall.ENOTCONN, syscall.ESHUTDOWN, syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH:
		e.Kind = ErrUnreachable
		if op == "connect" {
			e.Msg = fmt.Sprintf("cannot reach the Ceph cluster at %s within %s as %s (%v): check the monitor addresses and ports, that the monitors run, and that this host can reach them",
				s.Monitors, s.Timeout, s.User, errnoText(errno))
		} else {
			e.Msg = fmt.Sprintf("%s: no answer from the cluster within %s (%v): are the OSDs up and the PGs of pool %s active?",
				what, s.Timeout, errnoText(errno), s.Pool)
		}
	case syscall.EACCES, syscall.EPERM:
		if op == "connect" {
			e.Kind = ErrAuth
			e.Msg = fmt.Sprintf("authentication as %s at %s failed (%v): the key is wrong, or the cluster has no such user",
				s.User, s.Monitors, errnoText(errno))
		} else {
			e.Kind = ErrPermissionDenied
			e.Msg = fmt.Sprintf("permission denied: %s may not %s: it needs %s",
				s.User, what, s.caps(acc))
		}
	case syscall.ENOENT:
		switch {
		case strings.HasPrefix(op, "open pool"):
			e.Kind = ErrNoSuchPool
			e.Msg = fmt.Sprintf("no such pool %q", s.Pool)
		case strings.HasPrefix(op, "open namespace"):
			e.Kind = ErrNoSuchNamespace
			e.Msg = fmt.Sprintf("no such namespace %q in pool %q (create it with: rbd namespace create %s/%s)", s.Namespace, s.Pool, s.Pool, s.Namespace)
		case strings.Contains(op, "snapshot"):
			e.Kind = ErrNoSuchSnapshot
			e.Msg = fmt.Sprintf("%s: no such snapshot", what)
		default:
			e.Kind = ErrNoSuchImage
			e.Msg = fmt.Sprintf("%s: no such image", what)
		}
	case syscall.EEXIST:
		e.Kind = ErrExists
		e.Msg = fmt.Sprintf("%s: it already exists", what)
	case syscall.EBUSY:
		e.Kind = ErrInUse
		e.Msg = fmt.Sprintf("%s: still in use (it has watchers: mapped or open on some host; unmap it there first)", what)
	case syscall.ENOTEMPTY:
		e.Kind = ErrInUse
		e.Msg = fmt.Sprintf("%s: it still has snapshots", what)
	case syscall.ENOSPC, syscall.EDQUOT:
		e.Kind = ErrNoSpace
		e.Msg = fmt.Sprintf("%s: pool %s is full or over its quota (%v)", what, s.Pool, errnoText(errno))
	case syscall.EROFS:
		e.Kind = ErrPermissionDenied
		e.Msg = fmt.Sprintf("%s: read-only (a snapshot, or an image opened read-only)", what)
	default:
		e.Msg = fmt.Sprintf("%s: %v", what, err)
	}
	return e
}

func errnoText(errno syscall.Errno) string {
	return fmt.Sprintf("error %d: %s", int(errno), errno.Error())
}
