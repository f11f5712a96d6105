package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// local-wait waits for a block device to appear, and refuses what is not one.
func TestWaitBlockDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mknod")
	}
	dir := t.TempDir()
	dev := filepath.Join(dir, "disk")
	go func() {
		time.Sleep(100 * time.Millisecond)
		// A block node (loop's major); nothing opens it.
		unix.Mknod(dev, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0)))
	}()
	if err := waitBlockDevice(dev, 10*time.Second); err != nil {
		t.Errorf("a block device that appears: %v", err)
	}

	file := filepath.Join(dir, "image.sqfs")
	os.WriteFile(file, nil, 0o600)
	if err := waitBlockDevice(file, time.Second); err == nil || !strings.Contains(err.Error(), "is not a block device") || !strings.Contains(err.Error(), "loopback attach") {
		t.Errorf("a regular file: %v", err)
	}
	if err := waitBlockDevice(filepath.Join(dir, "missing"), 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not appear within 200ms") {
		t.Errorf("a missing device: %v", err)
	}
}
