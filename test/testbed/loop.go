package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockLoops takes the host-wide lock that serialises testbeds with loop devices, waiting
// until ctx ends. Loop devices are a host resource that LOOP_CTL_GET_FREE hands out
// lowest-first, so two containers using loop devices at the same time would be given
// each other's devices (whose nodes they do not have), and a leak could not be told
// apart from the other container's device. flock conflicts between separate opens even
// within one process, so this serialises testbeds in one test binary and across the
// test binaries `go test` runs in parallel; the kernel drops it if the process dies.
func lockLoops(ctx context.Context) (*os.File, error) {
	dir := "/run/lock"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = os.TempDir()
	}
	p := filepath.Join(dir, "strata-testbed-loop.lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s (another testbed with loop devices is running; they run one at a time): %w", p, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Loop ioctls (linux/loop.h).
const (
	loopCtlAdd     = 0x4C80
	loopCtlRemove  = 0x4C81
	loopCtlGetFree = 0x4C82
	loopClrFd      = 0x4C01

	loopMajor = 7
)

// LoopDevice is a host loop device node bound into the testbed at the same path.
type LoopDevice struct {
	Index int
	Path  string // /dev/loopN, on the host and in the container
	// Added is true when the harness created the device (LOOP_CTL_ADD); Close removes
	// those again (LOOP_CTL_REMOVE).
	Added bool
}

func loopIoctl(fd uintptr, req, arg uintptr) (uintptr, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, req, arg)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// loopExists reports whether the kernel has loop device N.
func loopExists(n int) bool {
	_, err := os.Stat(fmt.Sprintf("/sys/block/loop%d", n))
	return err == nil
}

// loopBacking returns the backing file of loop device N and whether it is attached.
// /sys/block/loopN/loop/ only exists while the device is bound to a file.
func loopBacking(n int) (string, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/sys/block/loop%d/loop/backing_file", n))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(data)), true
}

// ensureLoopNode makes sure /dev/loopN exists as a block node of major 7. devtmpfs
// creates it when the device is added; mknod covers a static /dev.
func ensureLoopNode(n int) error {
	p := fmt.Sprintf("/dev/loop%d", n)
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err == nil {
		if st.Mode&syscall.S_IFMT != syscall.S_IFBLK || st.Rdev>>8&0xfff != loopMajor {
			return fmt.Errorf("%s exists but is not a loop block device", p)
		}
		return nil
	}
	dev := uint64(loopMajor)<<8 | uint64(n&0xff) | uint64(n&^0xff)<<12
	if err := syscall.Mknod(p, syscall.S_IFBLK|0o660, int(dev)); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("mknod %s: %w", p, err)
	}
	return nil
}

// allocLoops picks the n lowest free (unbound) loop indices on the host, creating loop
// devices with LOOP_CTL_ADD where the index does not exist yet. Those are exactly the
// devices LOOP_CTL_GET_FREE hands out next, so `losetup -f` and `mount -o loop` inside the
// container find nodes that are bound in (as long as the host does not race for them).
// No loop number is hard-coded: the host shares the loop devices.
func allocLoops(n int) ([]LoopDevice, error) {
	if n <= 0 {
		return nil, nil
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/loop-control: %w", err)
	}
	defer ctl.Close()
	// Ask the kernel for the first free index: this also creates a device if none is free.
	first, err := loopIoctl(ctl.Fd(), loopCtlGetFree, 0)
	if err != nil {
		return nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
	}
	var devs []LoopDevice
	// Everything below the first free index is bound.
	for i := int(first); len(devs) < n && i < 1<<20; i++ {
		added := false
		if !loopExists(i) {
			_, err := loopIoctl(ctl.Fd(), loopCtlAdd, uintptr(i))
			switch {
			case err == nil:
				added = true
			case errors.Is(err, syscall.EEXIST):
				// Someone else created it meanwhile: use it if it is free.
			default:
				releaseLoops(devs)
				return nil, fmt.Errorf("LOOP_CTL_ADD %d: %w", i, err)
			}
		}
		if _, bound := loopBacking(i); bound {
			continue
		}
		if err := ensureLoopNode(i); err != nil {
			if added {
				_, _ = loopIoctl(ctl.Fd(), loopCtlRemove, uintptr(i))
			}
			releaseLoops(devs)
			return nil, err
		}
		devs = append(devs, LoopDevice{Index: i, Path: fmt.Sprintf("/dev/loop%d", i), Added: added})
	}
	if len(devs) < n {
		releaseLoops(devs)
		return nil, fmt.Errorf("could not find %d free loop devices", n)
	}
	return devs, nil
}

// detachLoop detaches loop device N (LOOP_CLR_FD). When the device is still open
// somewhere the kernel detaches it on last close (autoclear).
func detachLoop(n int) error {
	f, err := os.OpenFile(fmt.Sprintf("/dev/loop%d", n), os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := loopIoctl(f.Fd(), loopClrFd, 0); err != nil && !errors.Is(err, syscall.ENXIO) {
		return fmt.Errorf("LOOP_CLR_FD /dev/loop%d: %w", n, err)
	}
	return nil
}

// releaseLoops removes the loop devices the harness added (LOOP_CTL_REMOVE), if they
// are unbound. Devices it only borrowed stay.
func releaseLoops(devs []LoopDevice) []error {
	var errs []error
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return []error{err}
	}
	defer ctl.Close()
	for _, d := range devs {
		if !d.Added || !loopExists(d.Index) {
			continue
		}
		if _, bound := loopBacking(d.Index); bound {
			errs = append(errs, fmt.Errorf("%s is still attached; not removing it", d.Path))
			continue
		}
		if _, err := loopIoctl(ctl.Fd(), loopCtlRemove, uintptr(d.Index)); err != nil && !errors.Is(err, syscall.ENODEV) {
			errs = append(errs, fmt.Errorf("LOOP_CTL_REMOVE %s: %w", d.Path, err))
		}
	}
	return errs
}

// loopState maps loop device name (loopN) to its backing file ("" when unbound).
type loopState map[string]string

func snapshotLoops() loopState {
	st := loopState{}
	entries, _ := filepath.Glob("/sys/block/loop*")
	for _, e := range entries {
		name := filepath.Base(e)
		n, err := strconv.Atoi(strings.TrimPrefix(name, "loop"))
		if err != nil {
			continue
		}
		b, _ := loopBacking(n)
		st[name] = b
	}
	return st
}

func (s loopState) sortedNames() []string {
	names := make([]string, 0, len(s))
	for k := range s {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
