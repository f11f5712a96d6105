package main

import (
	"fmt"
	"os"
	"time"
)

// localTimeout bounds the wait for a local device, like systemd's default
// device timeout.
const localTimeout = 90 * time.Second

// waitBlockDevice waits until path exists and is a block device.
func waitBlockDevice(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		fi, err := os.Stat(path)
		if err == nil {
			if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
				return fmt.Errorf("%s exists but is not a block device (%s): a local attach needs a disk or partition; for an image file use a loopback attach", path, fi.Mode().Type())
			}
			return nil
		}
		if !os.IsNotExist(err) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("block device %s did not appear within %s: check the disk is present (lsblk) and the path (e.g. /dev/disk/by-label/...)", path, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
