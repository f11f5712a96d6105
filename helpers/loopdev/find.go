//go:build linux

package loopdev

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"golang.org/x/sys/unix"
)

// Find returns every loop device that file is attached to, lowest number
// first, or none.
//
// It matches the backing file's device and inode number as the kernel
// recorded them at attach time, not the path text: a file attached through
// a symlink, a bind mount or another hard link is found, and a different
// file that has since been moved into file's place is not.
//
// It lists bound devices from sysfs and asks each one for its status
// (LOOP_GET_STATUS64) through a read-only open, which changes nothing.
// Devices that are detached while Find runs are skipped.
func Find(file string) ([]*Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		return nil, fmt.Errorf("loopdev: find %s: %w", file, err)
	}
	ds, err := scan(func(d *Device) bool {
		return d.BackingDev == st.Dev && d.BackingInode == st.Ino
	})
	if err != nil {
		return nil, fmt.Errorf("loopdev: find %s: %w", file, err)
	}
	return ds, nil
}

// FindRef returns every loop device whose reference (Options.Ref, stored in
// lo_file_name) is ref, lowest number first, or none.
func FindRef(ref string) ([]*Device, error) {
	if ref == "" {
		// Every device attached without a ref would match.
		return nil, errors.New("loopdev: find ref: empty ref")
	}
	ds, err := scan(func(d *Device) bool { return d.Ref == ref })
	if err != nil {
		return nil, fmt.Errorf("loopdev: find ref %q: %w", ref, err)
	}
	return ds, nil
}

// scan describes every bound loop device that match accepts.
func scan(match func(*Device) bool) ([]*Device, error) {
	ns, err := loopNumbers()
	if err != nil {
		return nil, fmt.Errorf("list loop devices: %w", err)
	}
	var found []*Device
	for _, n := range ns {
		// Unbound devices have no loop/ directory in sysfs: skipping them
		// here avoids opening devices that cannot match.
		if _, err := backingFile(n); err != nil {
			continue
		}
		d, err := status(n)
		if err != nil {
			if errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) || errors.Is(err, os.ErrNotExist) {
				continue // detached or removed since we listed it
			}
			return nil, err
		}
		if match(d) {
			found = append(found, d)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Number < found[j].Number })
	return found, nil
}

// status describes loopN through a read-only open of its node.
func status(n int) (*Device, error) {
	fd, path, err := openLoopReadOnly(n)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	d, err := describe(fd, path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// openLoopReadOnly opens loopN for status queries and holding, creating the
// node if it is missing. Read-only, because nothing here writes and a
// read-only open cannot be refused for a read-only device.
func openLoopReadOnly(n int) (int, string, error) {
	path := loopPath(n)
	major, minor, err := sysDevNumber(n)
	if err != nil {
		return -1, path, fmt.Errorf("loop device %d: %w", n, err)
	}
	if err := ensureNode(path, unix.S_IFBLK, major, minor); err != nil {
		return -1, path, err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, path, fmt.Errorf("open %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Rdev != unix.Mkdev(major, minor) {
		unix.Close(fd)
		return -1, path, fmt.Errorf("%s is not loop device %d (%d:%d): stale device node?", path, n, major, minor)
	}
	return fd, path, nil
}

// AttachOrReuse returns the device file is already attached to if its
// attachment is compatible with opts, and otherwise attaches file as Attach
// does. Device.Reused says which happened. It makes attaching idempotent:
// a helper run again (a restarted unit, a second boot stage) gets the same
// device instead of a second one.
//
// An existing attachment is compatible when it covers the whole file (no
// offset or size limit) and has the same ReadOnly, Autoclear and Ref as
// opts, and partition scanning if opts asks for it. The Ref must match
// because it says whose attachment it is: sharing a device between two
// refs would let one owner's Detach pull it from under the other. DirectIO
// is a performance hint and does not count.
//
// Concurrent AttachOrReuse calls, in this process or others using this
// package, are serialised with a lock on /dev/loop-control, so two helpers
// started together do not both attach the file. Other tools (losetup) do
// not take that lock.
func AttachOrReuse(file string, opts Options) (*Device, error) {
	if err := opts.validate(); err != nil {
		return nil, attachErr(file, "", err)
	}
	ctl, err := openControl()
	if err != nil {
		return nil, attachErr(file, "", err)
	}
	defer unix.Close(ctl) // also drops the lock
	if err := flock(ctl, unix.LOCK_EX); err != nil {
		return nil, attachErr(file, "", fmt.Errorf("lock %s: %w", controlPath(), err))
	}

	// Identify the file through the descriptor that would be attached, so
	// the identity checked is the identity bound even if the path is
	// replaced meanwhile.
	backing, err := openBacking(file, opts)
	if err != nil {
		return nil, err
	}
	defer unix.Close(backing)
	var st unix.Stat_t
	if err := unix.Fstat(backing, &st); err != nil {
		return nil, attachErr(file, "", fmt.Errorf("stat backing file: %w", err))
	}

	existing, err := scan(func(d *Device) bool {
		return d.BackingDev == st.Dev && d.BackingInode == st.Ino && compatible(d, opts)
	})
	if err != nil {
		return nil, attachErr(file, "", err)
	}
	for _, d := range existing {
		if d.Autoclear {
			// An autoclear device has to be held like a fresh one, and it
			// may have been released since the scan: hold it, then check
			// it is still the same attachment.
			held, err := hold(d, opts)
			if err != nil {
				continue
			}
			d = held
		}
		d.Reused = true
		return d, nil
	}
	return attachFD(ctl, backing, file, opts)
}

func compatible(d *Device, opts Options) bool {
	return d.whole && d.ReadOnly == opts.ReadOnly && d.Autoclear == opts.Autoclear &&
		d.Ref == opts.Ref && (d.Partscan || !opts.Partscan)
}

// hold opens d for an AttachOrReuse caller and confirms it still is the
// attachment that was found.
func hold(d *Device, opts Options) (*Device, error) {
	fd, path, err := openLoopReadOnly(d.Number)
	if err != nil {
		return nil, err
	}
	now, err := describe(fd, path)
	if err != nil || !d.sameAttachmentAs(now) || !compatible(now, opts) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s changed while being reused", path)
	}
	now.hold = os.NewFile(uintptr(fd), path)
	return now, nil
}

func (d *Device) sameAttachmentAs(o *Device) bool {
	return d.Number == o.Number && d.BackingDev == o.BackingDev &&
		d.BackingInode == o.BackingInode && d.Ref == o.Ref
}

// flock is flock(2), retried when a signal interrupts the wait.
func flock(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
