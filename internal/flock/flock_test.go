package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func open(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// A held lock makes the second taker wait until it is released, or give
// up when its context ends.
func TestExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, b := open(t, path), open(t, path)
	if err := Exclusive(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := Exclusive(ctx, b); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: %v, want the context's deadline", err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		unix.Flock(a, unix.LOCK_UN)
	}()
	if err := Exclusive(context.Background(), b); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestExclusiveBadFD(t *testing.T) {
	if err := Exclusive(context.Background(), -1); !errors.Is(err, unix.EBADF) {
		t.Errorf("bad fd: %v", err)
	}
}
