//go:build linux

package krbd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"syscall"
	"time"
)

// A mass reboot maps the same images on every node at once. When the
// monitors are overloaded or briefly unreachable, the kernel gives up after
// mount_timeout with ETIMEDOUT; retrying at once, in step with every other
// node, would keep them overloaded. So a map that failed that way is
// retried after a random pause (exponential back-off with full jitter,
// which spreads the nodes out), a bounded number of times and only while
// the retry can still finish within Budget, which keeps the attach unit
// under its start time-out. Errors that a retry cannot heal (a missing
// image, a refused key, a bad option) fail at once.

// Retry is the retry policy of Mapper.Map.
type Retry struct {
	// Attempts bounds the writes to add, the first one included.
	Attempts int
	// Base is the ceiling of the first pause; each retry doubles it, up to
	// Cap. The pause is uniform between 0 and the ceiling (full jitter).
	Base, Cap time.Duration
	// Budget bounds the whole map, from Map's first attempt: an attempt is
	// only started when it ends within Budget even if it blocks for all of
	// mount_timeout.
	Budget time.Duration

	// Now, Sleep and Jitter are the clock and the randomness; nil means
	// the real ones. Tests replace them.
	Now    func() time.Time
	Sleep  func(ctx context.Context, d time.Duration) error
	Jitter func(ceiling time.Duration) time.Duration // uniform in [0, ceiling]
}

// DefaultRetry fits the attach unit (units/static/strata-attach@.service,
// TimeoutStartSec=3min): 130 s of map attempts, then at most 10 s for the
// device node (DeviceTimeout) and 30 s for udev's link (the helper's wait)
// leave 10 s to spare. With the kernel's default mount_timeout of 60 s
// that is two attempts against monitors that do not answer, and up to five
// against ones that fail fast, paused by at most 1, 2, 4 and 8 s.
var DefaultRetry = Retry{Attempts: 5, Base: time.Second, Cap: 20 * time.Second, Budget: 130 * time.Second}

// defaultMountTimeout is libceph's mount_timeout when the options give none
// (CEPH_MOUNT_TIMEOUT_DEFAULT).
const defaultMountTimeout = 60 * time.Second

// retryable reports whether a failed map may succeed when tried again:
// errnos that say the cluster did not answer in time or the connection
// failed, not that the request was wrong.
//
//	ETIMEDOUT  __ceph_open_session: no monmap and osdmap within mount_timeout
//	           (monitors unreachable, overloaded, still electing); the osdmap
//	           wait of a pool lookup (rbd_add_get_pool_id)
//	EAGAIN     the monitors' "try again" passed through by libceph
//	EIO        a failed exchange with the monitors or OSDs while opening the
//	           image (rbd_dev_image_probe reads the header from an OSD)
//	ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ENETUNREACH, ENETDOWN
//	           transport errors; libceph's messenger retries them itself and
//	           6.1 surfaces them as ETIMEDOUT, but a kernel that passed one
//	           through would mean the same
//
// Never retried: ENOENT (pool, image or snapshot missing), EACCES, EPERM
// and the EKEY* errnos (cephx refused the key or the caps), EINVAL
// (options), ENXIO (features), ESHUTDOWN (blocklisted: an admin must act),
// ENODEV, ENOSPC, ENAMETOOLONG, and EINTR (a signal: the unit is stopping).
func retryable(err error) bool {
	e, ok := err.(*Error)
	if !ok {
		return false
	}
	switch e.Errno {
	case syscall.ETIMEDOUT, syscall.EAGAIN, syscall.EIO,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN:
		return true
	}
	return false
}

// ceiling is the longest pause before retry n (1 for the first retry).
func (r Retry) ceiling(n int) time.Duration {
	c := r.Base
	for i := 1; i < n && c < r.Cap; i++ {
		c *= 2
	}
	return min(c, r.Cap)
}

// pause says how long to wait before retry n, or false when no retry is
// left: the attempts are used up, or the retry, blocking for at most cost,
// would end after the deadline. A pause that would overrun is shortened to
// what still fits.
func (r Retry) pause(n int, now, deadline time.Time, cost time.Duration) (time.Duration, bool) {
	if n >= r.Attempts || cost < 0 {
		return 0, false
	}
	room := deadline.Sub(now) - cost
	if room < 0 {
		return 0, false
	}
	return min(r.jitter(r.ceiling(n)), room), true
}

func (r Retry) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r Retry) jitter(ceiling time.Duration) time.Duration {
	if r.Jitter != nil {
		return r.Jitter(ceiling)
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

func (r Retry) sleep(ctx context.Context, d time.Duration) error {
	if r.Sleep != nil {
		return r.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// attemptCost is the longest one write to add can block: mount_timeout
// (the last one given wins, as in the kernel). 0 means the kernel waits
// forever, so no retry can be fitted in (-1).
func attemptCost(opts []string) time.Duration {
	v, ok := optionValue(opts, "mount_timeout")
	if !ok {
		return defaultMountTimeout
	}
	n, err := strconv.Atoi(v)
	if err != nil || n == 0 {
		return -1
	}
	return time.Duration(n) * time.Second
}

// mapRetrying runs once until it succeeds, fails for good, or the policy
// says stop; the last error then says how many attempts were made.
func (m *Mapper) mapRetrying(ctx context.Context, spec Spec, red redactor, once func() (Device, error)) (Device, error) {
	r := DefaultRetry
	if m.Retry != nil {
		r = *m.Retry
	}
	start := r.now()
	deadline := start.Add(r.Budget)
	cost := attemptCost(spec.Options)
	for n := 1; ; n++ {
		d, err := once()
		if err == nil || !retryable(err) {
			return d, err
		}
		e := err.(*Error) // retryable: a kernel errno
		wait, ok := r.pause(n, r.now(), deadline, cost)
		if !ok {
			e.Tries = fmt.Sprintf("gave up after %s in %s: %s", attempts(n), r.now().Sub(start).Round(time.Second), r.why(n, cost))
			return d, e
		}
		m.logf("map %s failed (%s); attempt %d of %d in %s", spec, red.apply(errnoName(e.Errno)), n+1, r.Attempts, wait.Round(time.Millisecond))
		if serr := r.sleep(ctx, wait); serr != nil {
			e.Tries = fmt.Sprintf("stopped while waiting to retry, after %s in %s", attempts(n), r.now().Sub(start).Round(time.Second))
			return d, e
		}
	}
}

// why says which bound ended the retries.
func (r Retry) why(n int, cost time.Duration) string {
	switch {
	case n >= r.Attempts:
		return "the retry limit"
	case cost < 0:
		return "mount_timeout=0 lets one attempt wait forever, so none is retried"
	}
	return fmt.Sprintf("another attempt (up to mount_timeout, %s) would not end within the %s a map may take, which keeps the attach unit under its start time-out", cost, r.Budget)
}

func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return strconv.Itoa(n) + " attempts"
}
