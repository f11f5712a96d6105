//go:build linux

// Package loopdev attaches files to Linux loop block devices and detaches
// them again, without cgo and without losetup.
//
// It exists for strata-helper, which runs from systemd units at boot on
// diskless nodes and must turn image files (squashfs, ext4, ...) into block
// devices that can be mounted. Its one job is the loop device lifecycle:
//
//   - Attach binds a file to a free loop device (LOOP_CTL_GET_FREE, then
//     LOOP_CONFIGURE, or LOOP_SET_FD + LOOP_SET_STATUS64 on kernels older
//     than 5.8), retrying when another process takes the same free device.
//   - Find and FindRef locate existing attachments, by the backing file's
//     device and inode number or by the reference stored in lo_file_name,
//     so that AttachOrReuse can make attaching idempotent across helper runs.
//   - Detach unbinds a device, refusing (with the mount points that hold it)
//     while it is mounted; DetachLazy lets the kernel unbind it at unmount.
//
// Mounting is not this package's job; callers mount Device.Path themselves.
//
// Everything here needs CAP_SYS_ADMIN. Device nodes that are missing (as in
// containers with a static /dev) are created with mknod.
package loopdev

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options says how to attach a file. The zero value attaches read-write,
// without partition scanning, with buffered I/O, persistently (no autoclear)
// and without a reference.
type Options struct {
	// ReadOnly attaches the file read-only: it is opened O_RDONLY and the
	// device is flagged LO_FLAGS_READ_ONLY, so the kernel refuses every
	// write to the device (EPERM), however the device is opened later.
	ReadOnly bool

	// Partscan asks the kernel to read a partition table from the device
	// and create loopNpM devices for its partitions.
	Partscan bool

	// DirectIO asks the kernel to do I/O on the backing file with O_DIRECT,
	// which avoids caching every block twice (once for the loop device, once
	// for the file). It is a request: the kernel uses buffered I/O when the
	// backing filesystem or the block alignment does not allow direct I/O.
	// Device.DirectIO reports what was granted.
	DirectIO bool

	// Autoclear makes the kernel detach the device by itself when its last
	// user closes it, typically when the filesystem mounted from it is
	// unmounted. That is the right choice when the caller mounts the device
	// straight away and wants unmounting to clean up.
	//
	// It is off by default because strata-helper usually attaches in one
	// unit and mounts in another: an autoclear device would be released
	// the moment the attaching process closed it, before anything mounted
	// it. With Autoclear, Attach therefore keeps the device open and the
	// caller must call Device.Close once it has mounted the device (or
	// otherwise opened it); until then the device cannot be released.
	Autoclear bool

	// Offset is where the device starts in the backing file, in bytes
	// (lo_offset): a part of an image, such as the hash tree after a
	// verified squashfs.
	Offset uint64

	// Ref is a stable reference stored in the device's lo_file_name, at most
	// 63 bytes, so that FindRef can find the attachment again later, for
	// instance from a helper run that only knows the unit's name. The
	// kernel keeps it, unused, for as long as the device stays attached.
	// Empty stores nothing.
	Ref string
}

// maxRef is the longest Ref that fits lo_file_name with its terminating NUL.
const maxRef = unix.LO_NAME_SIZE - 1

func (o Options) validate() error {
	if len(o.Ref) > maxRef {
		// Truncating would make two long refs with a common prefix equal,
		// and FindRef would then find the wrong device.
		return fmt.Errorf("ref %q is %d bytes, longer than the %d that lo_file_name holds", o.Ref, len(o.Ref), maxRef)
	}
	if strings.IndexByte(o.Ref, 0) >= 0 {
		return fmt.Errorf("ref %q contains a NUL byte", o.Ref)
	}
	return nil
}

// flags are the LO_FLAGS_* that o asks for.
func (o Options) flags() uint32 {
	var f uint32
	if o.ReadOnly {
		f |= unix.LO_FLAGS_READ_ONLY
	}
	if o.Partscan {
		f |= unix.LO_FLAGS_PARTSCAN
	}
	if o.DirectIO {
		f |= unix.LO_FLAGS_DIRECT_IO
	}
	if o.Autoclear {
		f |= unix.LO_FLAGS_AUTOCLEAR
	}
	return f
}

// Device is a loop device bound to a backing file, as the kernel reports it.
type Device struct {
	Path   string // device node, e.g. /dev/loop3
	Number int    // N in loopN
	Major  uint32 // device number of the loop device, as in /proc/self/mountinfo
	Minor  uint32

	// BackingFile is the backing file's path as the kernel shows it in
	// /sys/block/loopN/loop/backing_file: absolute, resolved at attach
	// time, followed across renames, and suffixed " (deleted)" once the
	// file is unlinked. Empty if sysfs is not mounted.
	BackingFile string
	// BackingDev and BackingInode identify the backing file (st_dev and
	// st_ino); they, not the path text, are what Find matches.
	BackingDev   uint64
	BackingInode uint64

	Ref string // lo_file_name, see Options.Ref

	// Flags in force, read back from the kernel after attaching.
	ReadOnly  bool
	Partscan  bool
	DirectIO  bool
	Autoclear bool

	// Reused is true when AttachOrReuse returned an existing attachment
	// rather than making a new one.
	Reused bool

	// whole is true when the device covers the whole backing file (no
	// offset or size limit), the only kind this package makes or reuses.
	whole bool

	// hold keeps an autoclear device open until the caller has mounted it;
	// see Options.Autoclear. Nil for persistent devices.
	hold *os.File
}

// Close releases the reference that Attach or AttachOrReuse keeps on an
// autoclear device; after it, the kernel detaches the device as soon as
// nothing else (a mount, another process) has it open. For devices attached
// without autoclear it does nothing: it never detaches them. Close is safe
// to call more than once.
func (d *Device) Close() error {
	if d.hold == nil {
		return nil
	}
	err := d.hold.Close()
	d.hold = nil
	if err != nil {
		return fmt.Errorf("loopdev: close %s: %w", d.Path, err)
	}
	return nil
}

// legacyOnly is set once the kernel has shown that it lacks LOOP_CONFIGURE
// (ENOTTY), so later attaches skip straight to LOOP_SET_FD. Tests set it to
// exercise the fallback on a kernel that has LOOP_CONFIGURE.
var legacyOnly atomic.Bool

// lostRaces counts binds lost to another process (EBUSY after
// LOOP_CTL_GET_FREE), so tests can tell that the retry path ran.
var lostRaces atomic.Int64

// attachAttempts bounds how often Attach asks for a new free device after
// another process bound the one it was given first. Losing the race needs
// another attach within microseconds, so a handful of losses in a row means
// something is wrong, not busy.
const attachAttempts = 32

// AttachError is why Attach or AttachOrReuse could not attach File. Its
// Error names the file ("loopdev: attach FILE: why"); Reason does not, for
// a caller whose own message names the file already.
type AttachError struct {
	File   string
	Device string // the loop device it failed on, "" before there was one
	Err    error
}

func attachErr(file, device string, err error) error {
	return &AttachError{File: file, Device: device, Err: err}
}

func (e *AttachError) Error() string {
	if e.Device != "" {
		return "loopdev: attach " + e.File + " to " + e.Reason()
	}
	return "loopdev: attach " + e.File + ": " + e.Reason()
}

// Reason is the error without the file: "open backing file read-only: no
// such file or directory", "/dev/loop3: LOOP_CONFIGURE: ...".
func (e *AttachError) Reason() string {
	if e.Device != "" {
		return e.Device + ": " + e.Err.Error()
	}
	return e.Err.Error()
}

func (e *AttachError) Unwrap() error { return e.Err }

// Attach binds file to a free loop device and returns it.
//
// It asks /dev/loop-control for a free device (the kernel creates one if
// none is free), binds it with LOOP_CONFIGURE (one atomic step, Linux 5.8+)
// or, where the kernel lacks that, LOOP_SET_FD + LOOP_SET_STATUS64. If
// another process binds the same device first, Attach asks for another
// (bounded).
//
// With opts.Autoclear the returned Device holds the device open: call
// Close after mounting it. Otherwise the device stays attached until Detach.
func Attach(file string, opts Options) (*Device, error) {
	if err := opts.validate(); err != nil {
		return nil, attachErr(file, "", err)
	}
	backing, err := openBacking(file, opts)
	if err != nil {
		return nil, err
	}
	// Once bound, the kernel holds its own reference to the backing file.
	defer unix.Close(backing)

	ctl, err := openControl()
	if err != nil {
		return nil, attachErr(file, "", err)
	}
	defer unix.Close(ctl)
	return attachFD(ctl, backing, file, opts)
}

// openBacking opens the file to be attached, read-only when asked: the
// kernel makes the device read-only by itself when the backing file is not
// open for writing, so read-only never depends on the flag alone.
func openBacking(file string, opts Options) (int, error) {
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if opts.ReadOnly {
		flags = unix.O_RDONLY | unix.O_CLOEXEC
	}
	fd := -1
	var err error
	if opts.DirectIO {
		// Like util-linux, open with O_DIRECT so the kernel can actually
		// use direct I/O; filesystems without it refuse with EINVAL, and
		// then the request degrades to buffered I/O (see Options.DirectIO).
		fd, err = unix.Open(file, flags|unix.O_DIRECT, 0)
		if errors.Is(err, unix.EINVAL) {
			fd = -1
		}
	}
	if fd < 0 {
		fd, err = unix.Open(file, flags, 0)
	}
	if err != nil {
		mode := "read-write"
		if opts.ReadOnly {
			mode = "read-only"
		}
		return -1, attachErr(file, "", fmt.Errorf("open backing file %s: %w", mode, err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, attachErr(file, "", fmt.Errorf("stat backing file: %w", err))
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFBLK {
		unix.Close(fd)
		return -1, attachErr(file, "", errors.New("not a regular file or block device"))
	}
	return fd, nil
}

// attachFD binds the open backing file to a free device, retrying with a
// new free device when another process wins the race for the first one.
func attachFD(ctl, backing int, file string, opts Options) (*Device, error) {
	var lastErr error
	for attempt := 1; attempt <= attachAttempts; attempt++ {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, attachErr(file, "", fmt.Errorf("LOOP_CTL_GET_FREE on %s: %w", controlPath(), err))
		}
		loop, path, err := openLoop(n)
		if err != nil {
			// The free device can vanish before we open it when another
			// process removes it (LOOP_CTL_REMOVE): ask for another.
			if errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) {
				lastErr = err
				continue
			}
			return nil, attachErr(file, "", err)
		}
		op, err := configure(loop, backing, opts)
		if errors.Is(err, unix.EBUSY) {
			// LOOP_CTL_GET_FREE only names a device that was free; another
			// process bound it between that and our configure.
			unix.Close(loop)
			lostRaces.Add(1)
			lastErr = fmt.Errorf("%s: %w", op, err)
			time.Sleep(time.Duration(attempt) * 100 * time.Microsecond)
			continue
		}
		if err != nil {
			unix.Close(loop)
			return nil, attachErr(file, path, fmt.Errorf("%s: %w", op, err))
		}
		d, err := describe(loop, path)
		if err == nil && opts.ReadOnly && !d.ReadOnly {
			// Cannot happen with an O_RDONLY backing file, but a
			// writable device where read-only was asked for is worth
			// a check that costs nothing.
			err = errors.New("kernel did not make the device read-only")
		}
		if err != nil {
			unix.IoctlSetInt(loop, unix.LOOP_CLR_FD, 0)
			unix.Close(loop)
			return nil, attachErr(file, path, err)
		}
		if d.Autoclear {
			d.hold = os.NewFile(uintptr(loop), path)
		} else {
			unix.Close(loop)
		}
		return d, nil
	}
	return nil, attachErr(file, "", fmt.Errorf("gave up after %d free loop devices were each taken by another process first: %w", attachAttempts, lastErr))
}

// configure binds backing to the loop device open as loop, and says which
// ioctl failed if it could not.
func configure(loop, backing int, opts Options) (string, error) {
	if !legacyOnly.Load() {
		cfg := unix.LoopConfig{Fd: uint32(backing)}
		cfg.Info.Flags = opts.flags()
		cfg.Info.Offset = opts.Offset
		copy(cfg.Info.File_name[:], opts.Ref)
		err := unix.IoctlLoopConfigure(loop, &cfg)
		switch {
		case err == nil:
			return "", nil
		case errors.Is(err, unix.ENOTTY):
			// The kernel predates LOOP_CONFIGURE; no need to ask again.
			legacyOnly.Store(true)
		case errors.Is(err, unix.EINVAL):
			// Kernels before 5.8 answer EINVAL to ioctls they do not know,
			// but EINVAL can also be a genuine complaint, so fall back this
			// time without remembering: the legacy path then reports it.
		default:
			return "LOOP_CONFIGURE", err
		}
	}

	if err := unix.IoctlSetInt(loop, unix.LOOP_SET_FD, backing); err != nil {
		return "LOOP_SET_FD", err
	}
	// LOOP_SET_FD alone has no read-only flag: it makes the device
	// read-only because the backing file is open O_RDONLY. Autoclear,
	// partscan and the ref are set by LOOP_SET_STATUS64.
	info := unix.LoopInfo64{Flags: opts.flags() & (unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_PARTSCAN), Offset: opts.Offset}
	copy(info.File_name[:], opts.Ref)
	if err := unix.IoctlLoopSetStatus64(loop, &info); err != nil {
		// Leave no half-configured device behind.
		unix.IoctlSetInt(loop, unix.LOOP_CLR_FD, 0)
		return "LOOP_SET_STATUS64", err
	}
	if opts.DirectIO {
		// A request, as with LOOP_CONFIGURE: on failure the device works
		// with buffered I/O and Device.DirectIO says so.
		_ = unix.IoctlSetInt(loop, unix.LOOP_SET_DIRECT_IO, 1)
	}
	return "", nil
}

// describe reads back what the kernel made of the device open as loop.
func describe(loop int, path string) (*Device, error) {
	info, err := unix.IoctlLoopGetStatus64(loop)
	if err != nil {
		return nil, fmt.Errorf("LOOP_GET_STATUS64: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(loop, &st); err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	d := &Device{
		Path:         path,
		Number:       int(info.Number),
		Major:        unix.Major(st.Rdev),
		Minor:        unix.Minor(st.Rdev),
		BackingDev:   info.Device,
		BackingInode: info.Inode,
		Ref:          cstring(info.File_name[:]),
		ReadOnly:     info.Flags&unix.LO_FLAGS_READ_ONLY != 0,
		Partscan:     info.Flags&unix.LO_FLAGS_PARTSCAN != 0,
		DirectIO:     info.Flags&unix.LO_FLAGS_DIRECT_IO != 0,
		Autoclear:    info.Flags&unix.LO_FLAGS_AUTOCLEAR != 0,
		whole:        info.Offset == 0 && info.Sizelimit == 0,
	}
	d.BackingFile, _ = backingFile(d.Number)
	return d, nil
}

// sameAttachment reports whether info describes the attachment d was made
// from, so that a device number recycled by another process is not
// mistaken for ours.
func (d *Device) sameAttachment(info *unix.LoopInfo64) bool {
	return info.Device == d.BackingDev && info.Inode == d.BackingInode &&
		cstring(info.File_name[:]) == d.Ref
}

func cstring(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
