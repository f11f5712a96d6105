//go:build linux

package loopdev

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-project/strata/internal/mountinfo"
)

// ErrNotAttached is returned (wrapped) by Detach for a device that is not
// bound to any file.
var ErrNotAttached = errors.New("loop device not attached")

// BusyError is returned by Detach when the device is still in use. It
// wraps unix.EBUSY, so errors.Is(err, unix.EBUSY) holds.
type BusyError struct {
	Device string // the device node Detach was given

	// Mounts are the mount points, in the caller's mount namespace, of the
	// device and of its partitions. Mounts in other namespaces are not
	// seen.
	Mounts []string
	// Holders are the kernel devices stacked on it (device-mapper and the
	// like), from sysfs holders/.
	Holders []string

	// Deferred is false when Detach changed nothing because the device was
	// mounted or otherwise claimed exclusively. It is true when the kernel
	// accepted the detach but the device stays attached because another
	// process still has it open: the kernel then detaches it when that
	// last user closes it (it arms autoclear), and nothing more is needed.
	Deferred bool

	Err error // unix.EBUSY
}

func (e *BusyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "loopdev: detach %s: ", e.Device)
	if e.Deferred {
		b.WriteString("still open elsewhere, detach deferred: the kernel will detach it on last close")
	} else {
		b.WriteString("device is still in use")
	}
	if len(e.Mounts) > 0 {
		fmt.Fprintf(&b, ": mounted on %s", strings.Join(e.Mounts, ", "))
	}
	if len(e.Holders) > 0 {
		fmt.Fprintf(&b, ": held by %s", strings.Join(e.Holders, ", "))
	}
	if len(e.Mounts) == 0 && len(e.Holders) == 0 && !e.Deferred {
		b.WriteString(" (no mount in this mount namespace and no holder found: another process or namespace has it open exclusively)")
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *BusyError) Unwrap() error { return e.Err }

// How long Detach waits. An exclusive claim that is about to go away (an
// unmount finishing) is waited out briefly; a mount that stays is reported.
// After the detach, a transient opener such as udev's blkid normally closes
// within milliseconds.
var (
	busyWait    = time.Second
	releaseWait = 2 * time.Second
)

// Detach unbinds the loop device at path (e.g. /dev/loop3) from its file.
//
// It refuses while the device, or a partition of it, is mounted or claimed
// by another device (device-mapper): it opens the device with O_EXCL, which
// the kernel refuses exactly in those cases, retries for up to a second in
// case the claim is being released, and then returns a *BusyError that
// names the mount points and holders it can find, having changed nothing.
// The exclusive open also keeps anything from mounting the device while it
// is being detached.
//
// That check is needed because LOOP_CLR_FD itself never refuses a busy
// device: it only marks it to be detached on last close (autoclear), which
// for a mounted device means at unmount. When another process merely has
// the device open (not mounted), that is what happens, and Detach returns a
// *BusyError with Deferred set if the device is still attached after a
// short wait.
//
// DetachLazy is the variant that does not refuse: it lets the kernel detach
// a mounted device at unmount.
//
// A device bound to nothing gives an error wrapping ErrNotAttached. Detach
// acts on whatever is bound to path; Device.Detach also checks that it is
// the attachment the Device describes.
func Detach(path string) error { return detach(path, nil) }

// Detach detaches d as the package-level Detach does, after releasing d's
// own hold on an autoclear device (see Close), and only if the device is
// still bound to d's file with d's ref: a device number that the kernel
// recycled for another process is left alone. If d's attachment is already
// gone (an autoclear device released at unmount, an earlier Detach), there
// is nothing to do and Detach returns nil.
func (d *Device) Detach() error {
	if err := d.Close(); err != nil {
		return err
	}
	err := detach(d.Path, d)
	if errors.Is(err, ErrNotAttached) {
		return nil
	}
	return err
}

// DetachLazy detaches the device at path as soon as nothing uses it: now if
// nothing does, otherwise when its last user closes it, typically at
// unmount. This is what losetup -d does to a busy device; it suits shutdown
// paths where a filesystem could only be unmounted lazily (umount -l) and
// still holds the device. It returns nil in both cases, and an error
// wrapping ErrNotAttached for a device bound to nothing.
func DetachLazy(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopdev: detach %s: %w", path, err)
	}
	defer unix.Close(fd)
	// LOOP_CLR_FD never refuses a busy device: it arms autoclear, and the
	// kernel detaches on the last close, which may be ours.
	err = unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
	if errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("loopdev: detach %s: %w (%w)", path, ErrNotAttached, err)
	}
	if err != nil {
		return fmt.Errorf("loopdev: detach %s: LOOP_CLR_FD: %w", path, err)
	}
	return nil
}

func detach(path string, want *Device) error {
	fd, err := openExclusive(path)
	if errors.Is(err, unix.EBUSY) {
		if want != nil {
			// Busy with someone else's attachment is not our business.
			if info, err := statusAt(path); err != nil || !want.sameAttachment(info) {
				return fmt.Errorf("loopdev: detach %s: no longer attached to %s: %w", path, want.BackingFile, ErrNotAttached)
			}
		}
		return busy(path, false)
	}
	if err != nil {
		return fmt.Errorf("loopdev: detach %s: %w", path, err)
	}
	closed := false
	defer func() {
		if !closed {
			unix.Close(fd)
		}
	}()

	info, err := unix.IoctlLoopGetStatus64(fd)
	if errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("loopdev: detach %s: %w (%w)", path, ErrNotAttached, err)
	}
	if err != nil {
		return fmt.Errorf("loopdev: detach %s: LOOP_GET_STATUS64: %w", path, err)
	}
	n := int(info.Number)
	before, _ := backingFile(n)
	if want != nil && !want.sameAttachment(info) {
		return fmt.Errorf("loopdev: detach %s: now attached to %s, not %s: %w", path, before, want.BackingFile, ErrNotAttached)
	}

	// With our exclusive descriptor the only one open, the kernel marks the
	// device for teardown and does it when we close; with other openers it
	// arms autoclear and tears down when the last of them closes.
	err = unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
	if errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("loopdev: detach %s: %w (%w)", path, ErrNotAttached, err)
	}
	if err != nil {
		return fmt.Errorf("loopdev: detach %s (backing %s): LOOP_CLR_FD: %w", path, before, err)
	}
	unix.Close(fd)
	closed = true

	if waitReleased(n, before, releaseWait) {
		return nil
	}
	return busy(path, true)
}

// openExclusive opens a block device with O_EXCL, which the kernel refuses
// with EBUSY while the device is mounted or claimed. The claim can be on
// its way out (an unmount racing with us), so EBUSY is retried briefly.
func openExclusive(path string) (int, error) {
	deadline := time.Now().Add(busyWait)
	delay := 5 * time.Millisecond
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_EXCL, 0)
		if err == nil {
			return fd, nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return -1, fmt.Errorf("open %s exclusively: %w", path, err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// statusAt reads the status of the device at path without claiming it.
func statusAt(path string) (*unix.LoopInfo64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return unix.IoctlLoopGetStatus64(fd)
}

// waitReleased waits until loopN no longer has the backing file it had
// before the detach: unbound, or already bound to another file by someone
// else.
func waitReleased(n int, before string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	delay := time.Millisecond
	for {
		now, err := backingFile(n)
		if errors.Is(err, os.ErrNotExist) || (err == nil && now != before) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// busy builds the error for a device still in use, looking up who uses it.
// The lookups are best effort: a failure leaves the lists empty.
func busy(path string, deferred bool) error {
	e := &BusyError{Device: path, Deferred: deferred, Err: unix.EBUSY}
	var st unix.Stat_t
	if unix.Stat(path, &st) == nil {
		e.Mounts, e.Holders = users(unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return e
}

// users finds the mount points of a block device and its partitions in
// this mount namespace, and the devices stacked on them.
func users(major, minor uint32) (mounts, holders []string) {
	devs := map[string]bool{devKey(major, minor): true}
	dir := filepath.Join(sysDir, "dev", "block", devKey(major, minor))
	holders = holderNames(dir)
	// Partitions (loopNp1, ...) are subdirectories with a "partition" file.
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			sub := filepath.Join(dir, e.Name())
			if _, err := os.Stat(filepath.Join(sub, "partition")); err != nil {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(sub, "dev")); err == nil {
				if ma, mi, err := parseDevNumber(string(b)); err == nil {
					devs[devKey(ma, mi)] = true
				}
			}
			holders = append(holders, holderNames(sub)...)
		}
	}
	if f, err := os.Open(mountinfoPath); err == nil {
		mounts = mountPoints(f, devs)
		f.Close()
	}
	return mounts, holders
}

func devKey(major, minor uint32) string {
	return strconv.FormatUint(uint64(major), 10) + ":" + strconv.FormatUint(uint64(minor), 10)
}

// holderNames lists a sysfs block directory's holders, with the
// device-mapper name where there is one ("dm-0 (vg-root)"), since that is
// the name a person knows.
func holderNames(dir string) []string {
	entries, err := os.ReadDir(filepath.Join(dir, "holders"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if b, err := os.ReadFile(filepath.Join(dir, "holders", name, "dm", "name")); err == nil {
			name += " (" + strings.TrimSpace(string(b)) + ")"
		}
		names = append(names, name)
	}
	return names
}

// mountPoints returns the mount points in a /proc/PID/mountinfo stream whose
// device ("major:minor") is in devs.
func mountPoints(r io.Reader, devs map[string]bool) []string {
	ms, _ := mountinfo.Parse(r) // what was read before an error still counts
	var mounts []string
	for _, m := range ms {
		if devs[m.Device] {
			mounts = append(mounts, m.Point)
		}
	}
	return mounts
}
