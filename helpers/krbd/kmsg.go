//go:build linux

package krbd

import (
	"strings"

	"golang.org/x/sys/unix"
)

// KernelLog marks the current end of the kernel log and returns a function
// that reads the rbd: and libceph: lines logged since. The errno of a failed
// map is ambiguous (ENOENT: pool, image or snapshot?; ENXIO: which
// feature?); the kernel says which in its log, so the decoder reads it.
type KernelLog func() (since func() []string)

// kmsgPath is the kernel's structured log device.
const kmsgPath = "/dev/kmsg"

// DevKmsg reads /dev/kmsg. Raw syscalls, not os.File: Go would register the
// character device with its poller and a read at the end would block
// instead of returning EAGAIN.
func DevKmsg() func() []string {
	none := func() []string { return nil }
	fd, err := unix.Open(kmsgPath, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return none
	}
	// SEEK_END on /dev/kmsg moves to the next record to be logged.
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		unix.Close(fd)
		return none
	}
	return func() []string {
		defer unix.Close(fd)
		var out []string
		buf := make([]byte, 8192)
		for range 4096 { // bounded: a flood of messages must not hold us
			n, err := unix.Read(fd, buf)
			if err == unix.EPIPE {
				continue // records overwritten meanwhile; go on with the next
			}
			if err != nil || n <= 0 {
				break // EAGAIN: nothing more
			}
			if msg, ok := parseKmsgRecord(string(buf[:n])); ok {
				out = append(out, msg)
			}
		}
		return out
	}
}

// parseKmsgRecord takes "prio,seq,usec,flags[,...];message\n[ KEY=v\n...]"
// and keeps the message if it is from rbd or libceph.
func parseKmsgRecord(rec string) (string, bool) {
	_, msg, ok := strings.Cut(rec, ";")
	if !ok {
		return "", false
	}
	msg, _, _ = strings.Cut(msg, "\n")
	if !strings.HasPrefix(msg, "rbd: ") && !strings.HasPrefix(msg, "libceph: ") {
		return "", false
	}
	return msg, true
}
