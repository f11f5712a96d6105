// Package flock takes exclusive flock(2) locks that a context can give up
// on: a blocking flock cannot be interrupted, so the wait polls with a
// growing pause instead. Node-side helpers serialise on such locks (krbd
// maps, iSCSI sessions) when several units start at once at boot.
package flock

import (
	"context"
	"time"

	"golang.org/x/sys/unix"
)

// maxPause bounds the pause between two tries.
const maxPause = 50 * time.Millisecond

// Exclusive locks fd exclusively, waiting until it is free or ctx ends (then
// it returns ctx's error). Unlock with unix.Flock(fd, unix.LOCK_UN) or by
// closing fd.
func Exclusive(ctx context.Context, fd int) error {
	pause := time.Millisecond
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, maxPause)
	}
}
