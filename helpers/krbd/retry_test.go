//go:build linux

package krbd

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeClock stands in for the retry policy's clock: it moves only when a
// pause is slept or a write is said to take time, and records the pauses.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	pauses []time.Duration
	// jitter, when set, picks the pause from its ceiling; nil takes the
	// ceiling itself (the worst case for the budget).
	jitter func(time.Duration) time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.pauses = append(c.pauses, d)
	c.mu.Unlock()
	c.advance(d)
	return nil
}

// retry returns p on this clock.
func (c *fakeClock) retry(p Retry) *Retry {
	p.Now, p.Sleep = c.now, c.sleep
	p.Jitter = func(ceiling time.Duration) time.Duration {
		if c.jitter != nil {
			return c.jitter(ceiling)
		}
		return ceiling
	}
	return &p
}

func TestRetryCeilingDoublesToCap(t *testing.T) {
	r := Retry{Attempts: 9, Base: time.Second, Cap: 20 * time.Second}
	want := []time.Duration{1, 2, 4, 8, 16, 20, 20}
	for i, w := range want {
		if got := r.ceiling(i + 1); got != w*time.Second {
			t.Errorf("ceiling(%d) = %s, want %s", i+1, got, w*time.Second)
		}
	}
}

func TestRetryPauseBounds(t *testing.T) {
	r := Retry{Attempts: 3, Base: 4 * time.Second, Cap: time.Minute, Jitter: func(c time.Duration) time.Duration { return c }}
	now := time.Unix(1000, 0)
	deadline := now.Add(time.Minute)
	for _, c := range []struct {
		name string
		n    int
		cost time.Duration
		want time.Duration
		ok   bool
	}{
		{"first retry", 1, 10 * time.Second, 4 * time.Second, true},
		{"second retry doubles", 2, 10 * time.Second, 8 * time.Second, true},
		{"attempts used up", 3, 10 * time.Second, 0, false},
		{"pause shortened to fit", 2, 55 * time.Second, 5 * time.Second, true},
		{"attempt would overrun", 1, 61 * time.Second, 0, false},
		{"unbounded attempt", 1, -1, 0, false},
	} {
		got, ok := r.pause(c.n, now, deadline, c.cost)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: pause = %s, %v; want %s, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// The real jitter is uniform over [0, ceiling]: never above it, and spread
// (a thousand draws all in one quarter would be a broken source).
func TestRetryJitterIsFull(t *testing.T) {
	var r Retry
	lo, hi := time.Hour, time.Duration(0)
	for range 1000 {
		d := r.jitter(time.Second)
		if d < 0 || d > time.Second {
			t.Fatalf("jitter(1s) = %s", d)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo > 250*time.Millisecond || hi < 750*time.Millisecond {
		t.Errorf("1000 draws of jitter(1s) span only %s..%s", lo, hi)
	}
}

func TestRetryableErrnos(t *testing.T) {
	for errno, want := range map[syscall.Errno]bool{
		syscall.ETIMEDOUT: true, syscall.EAGAIN: true, syscall.EIO: true,
		syscall.ECONNREFUSED: true, syscall.ECONNRESET: true, syscall.EHOSTUNREACH: true,
		syscall.ENETUNREACH: true, syscall.ENETDOWN: true,
		syscall.ENOENT: false, syscall.EACCES: false, syscall.EPERM: false,
		syscall.EKEYREJECTED: false, syscall.EINVAL: false, syscall.ENXIO: false,
		eBlocklisted: false, syscall.ENODEV: false, syscall.ENOSPC: false,
		syscall.EINTR: false, syscall.ENAMETOOLONG: false, 0: false,
	} {
		if got := retryable(&Error{Errno: errno}); got != want {
			t.Errorf("retryable(%s) = %v, want %v", errnoName(errno), got, want)
		}
	}
}

func TestMapRetriesUnansweredMonitors(t *testing.T) {
	k := newFakeKernel(t)
	k.addErrs = []syscall.Errno{syscall.ETIMEDOUT, syscall.EAGAIN, 0}
	k.clock.jitter = func(c time.Duration) time.Duration { return c / 2 }
	d, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "rbd0" || len(k.writesTo("add")) != 3 {
		t.Errorf("device %s after %d adds, want rbd0 after 3", d.Name, len(k.writesTo("add")))
	}
	if want := []time.Duration{500 * time.Millisecond, time.Second}; !equalDurations(k.clock.pauses, want) {
		t.Errorf("pauses %v, want %v (half of 1s, 2s)", k.clock.pauses, want)
	}
	logs := strings.Join(k.logs, "\n")
	for _, w := range []string{"failed (ETIMEDOUT: connection timed out); attempt 2 of 5 in 500ms", "attempt 3 of 5 in 1s"} {
		if !strings.Contains(logs, w) {
			t.Errorf("logs do not say %q:\n%s", w, logs)
		}
	}
	if strings.Contains(logs, testSecret) {
		t.Error("a log line holds the secret")
	}
}

// Retrying cannot heal a wrong request: it fails at the first answer.
func TestMapDoesNotRetryWhatCannotHeal(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOENT, syscall.EACCES, syscall.EPERM, syscall.EINVAL, syscall.ENXIO, eBlocklisted, syscall.EINTR} {
		t.Run(errnoName(errno), func(t *testing.T) {
			k := newFakeKernel(t)
			k.addErr = errno
			_, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
			if err == nil {
				t.Fatal("mapped")
			}
			if n := len(k.writesTo("add")); n != 1 || len(k.clock.pauses) != 0 {
				t.Errorf("%d adds, pauses %v; want 1 add, no pause", n, k.clock.pauses)
			}
			if strings.Contains(err.Error(), "attempt") {
				t.Errorf("error speaks of attempts: %v", err)
			}
		})
	}
}

// Each failed write blocks for all of mount_timeout: the retries stop when
// another could not end within the budget, and the whole stays inside it.
func TestMapRetryStaysWithinBudget(t *testing.T) {
	for _, c := range []struct {
		name     string
		option   string
		cost     time.Duration
		attempts int
		want     string
	}{
		{"default mount_timeout", "", 60 * time.Second, 2, "(ETIMEDOUT: connection timed out); gave up after 2 attempts in 2m1s: another attempt (up to mount_timeout, 1m0s) would not end within the 2m10s"},
		{"mount_timeout=100", "mount_timeout=100", 100 * time.Second, 1, "gave up after 1 attempt in 1m40s: another attempt (up to mount_timeout, 1m40s) would not end within the 2m10s"},
		{"mount_timeout=5", "mount_timeout=5", 5 * time.Second, 5, "gave up after 5 attempts in 40s: the retry limit"},
		{"mount_timeout=0", "mount_timeout=0", 200 * time.Second, 1, "mount_timeout=0 lets one attempt wait forever"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := newFakeKernel(t)
			k.addErr = syscall.ETIMEDOUT
			k.addCost = c.cost
			s := testSpec()
			if c.option != "" {
				s.Options = append(s.Options, c.option)
			}
			start := k.clock.now()
			_, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, s, testSecret)
			if err == nil {
				t.Fatal("mapped")
			}
			took := k.clock.now().Sub(start)
			if n := len(k.writesTo("add")); n != c.attempts {
				t.Errorf("%d adds, want %d", n, c.attempts)
			}
			if c.option != "mount_timeout=0" && took > DefaultRetry.Budget {
				t.Errorf("took %s, over the budget %s", took, DefaultRetry.Budget)
			}
			msg := err.Error()
			for _, w := range []string{c.want, "no answer from the monitors", "(ETIMEDOUT"} {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not say %q", msg, w)
				}
			}
			if strings.Contains(msg, testSecret) {
				t.Error("the error holds the secret")
			}
		})
	}
}

// A stop (SIGTERM cancels the helper's context) ends the wait for a retry.
func TestMapRetryStopsWithContext(t *testing.T) {
	k := newFakeKernel(t)
	k.addErr = syscall.ETIMEDOUT
	ctx, cancel := context.WithCancel(context.Background())
	k.clock.jitter = func(c time.Duration) time.Duration { cancel(); return c }
	_, err := k.mapper().Map(ctx, k.sysfs, k.dev, testSpec(), testSecret)
	if err == nil || !strings.Contains(err.Error(), "(ETIMEDOUT: connection timed out); stopped while waiting to retry, after 1 attempt in 0s") {
		t.Fatalf("err = %v", err)
	}
	if n := len(k.writesTo("add")); n != 1 {
		t.Errorf("%d adds after the stop, want 1", n)
	}
}

// Between attempts the node's map lock is free: another image maps while
// this one waits for its retry.
func TestMapRetryReleasesTheLock(t *testing.T) {
	k := newFakeKernel(t)
	k.addErrs = []syscall.Errno{syscall.ETIMEDOUT, 0}
	other := testSpec()
	other.Image = "other"
	m := k.mapper()
	var otherErr error
	m.Retry.Sleep = func(ctx context.Context, d time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, otherErr = k.mapper().Map(ctx, k.sysfs, k.dev, other, testSecret)
		return nil
	}
	if _, err := m.Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret); err != nil {
		t.Fatal(err)
	}
	if otherErr != nil {
		t.Errorf("mapping another image during the pause: %v", otherErr)
	}
	if n := len(k.writesTo("add")); n != 3 {
		t.Errorf("%d adds, want 3 (fail, other, retry)", n)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
