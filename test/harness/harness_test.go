package harness

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDaemonLogsAndExits(t *testing.T) {
	log := filepath.Join(t.TempDir(), "out.log")
	d, err := Start(exec.Command("sh", "-c", "echo out; echo err >&2; exit 3"), syscall.SIGKILL, log)
	if err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := d.Err(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit: %v", err)
	}
	if !d.Exited() {
		t.Error("Exited is false after Err returned")
	}
	if got := Tail(log, 10); got != "out\nerr" {
		t.Errorf("log %q", got)
	}
}

func TestDaemonStopKillsTheGroup(t *testing.T) {
	// The shell ignores SIGTERM, and its child keeps the group alive: Stop must
	// get past both with SIGKILL to the group.
	d, err := Start(exec.Command("sh", "-c", "trap '' TERM; sleep 60 & wait"), syscall.SIGKILL, "")
	if err != nil {
		t.Fatal(err)
	}
	var child int
	if err := Poll(5*time.Second, 10*time.Millisecond, func() bool {
		child = firstChild(d.PID())
		return child != 0
	}); err != nil {
		t.Fatal("the shell did not start its child")
	}
	t0 := time.Now()
	d.Stop(syscall.SIGTERM, 100*time.Millisecond)
	if !d.Exited() {
		t.Fatal("still running after Stop")
	}
	if time.Since(t0) > 5*time.Second {
		t.Errorf("Stop took %v", time.Since(t0))
	}
	if err := Poll(5*time.Second, 10*time.Millisecond, func() bool { return syscall.Kill(child, 0) != nil }); err != nil {
		t.Errorf("the group's other process %d survived Stop", child)
	}
}

func firstChild(pid int) int {
	p := strconv.Itoa(pid)
	b, _ := os.ReadFile(filepath.Join("/proc", p, "task", p, "children"))
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			return n
		}
	}
	return 0
}

func TestUntil(t *testing.T) {
	n := 0
	if err := Poll(5*time.Second, time.Millisecond, func() bool { n++; return n == 3 }); err != nil || n != 3 {
		t.Errorf("Poll: %v after %d calls", err, n)
	}
	if err := Poll(30*time.Millisecond, 5*time.Millisecond, func() bool { return false }); !errors.Is(err, ErrTimeout) {
		t.Errorf("a false condition gave %v", err)
	}
	abort := make(chan struct{})
	close(abort)
	gone := errors.New("daemon exited")
	if err := Until(context.Background(), time.Minute, time.Second, abort, func() error { return gone }, func() bool { return false }); err != gone {
		t.Errorf("abort gave %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Until(ctx, time.Minute, time.Second, nil, nil, func() bool { return false }); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled context gave %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := Until(ctx, 0, 5*time.Millisecond, nil, nil, func() bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("without a timeout of its own, the context's deadline gave %v", err)
	}
}

func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	if err := os.WriteFile(p, []byte("1\n2\n\x1b[0;32m  OK  \x1b[0m 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Tail(p, 2); got != "2\n  OK   3" {
		t.Errorf("Tail %q", got)
	}
	if got := Tail(filepath.Join(t.TempDir(), "none"), 2); !strings.Contains(got, "no such file") {
		t.Errorf("a missing log gave %q", got)
	}
	if !FileExists(p) || FileExists(p+".x") {
		t.Error("FileExists")
	}
}
