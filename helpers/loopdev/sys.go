//go:build linux

package loopdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Where the kernel's interfaces are. Variables rather than constants only
// so that a test can point the pure parsing code at fixtures; the tests of
// attaching and detaching use the real ones.
var (
	devDir        = "/dev"
	sysDir        = "/sys"
	mountinfoPath = "/proc/self/mountinfo"
)

// Device numbers the kernel gives loop devices: /dev/loop-control is misc
// device 237, and loop devices have block major 7. The minor of loopN is N
// only when the loop module's max_part is 0, so the real one is read from
// sysfs and these serve only when sysfs is not mounted.
const (
	miscMajor        = 10
	loopControlMinor = 237
	loopMajor        = 7
)

func controlPath() string { return filepath.Join(devDir, "loop-control") }

func loopPath(n int) string { return filepath.Join(devDir, "loop"+strconv.Itoa(n)) }

// sysBlock is loopN's directory in sysfs.
func sysBlock(n int) string { return filepath.Join(sysDir, "block", "loop"+strconv.Itoa(n)) }

// openControl opens /dev/loop-control, creating the node if the container
// we run in lacks it.
func openControl() (int, error) {
	path := controlPath()
	if err := ensureNode(path, unix.S_IFCHR, miscMajor, loopControlMinor); err != nil {
		return -1, err
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	return fd, nil
}

// openLoop opens /dev/loopN read-write, creating the node if it is missing.
// Read-write matters: LOOP_CONFIGURE makes the device read-only when the
// fd it is issued on is not open for writing.
func openLoop(n int) (fd int, path string, err error) {
	path = loopPath(n)
	major, minor, err := sysDevNumber(n)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) || sysfsMounted() {
			// sysfs is there but loopN is not: the device is gone.
			return -1, path, fmt.Errorf("loop device %d: %w", n, unix.ENXIO)
		}
		major, minor = loopMajor, uint32(n)
	}
	if err := ensureNode(path, unix.S_IFBLK, major, minor); err != nil {
		return -1, path, err
	}
	fd, err = unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, path, fmt.Errorf("open %s: %w", path, err)
	}
	// A stale node left in a static /dev could point at another device;
	// binding that would be a disaster, and checking costs one fstat.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, path, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(major, minor) {
		unix.Close(fd)
		return -1, path, fmt.Errorf("%s is not loop device %d (%d:%d): stale device node?", path, n, major, minor)
	}
	return fd, path, nil
}

// ensureNode creates a device node if it does not exist. devtmpfs creates
// nodes by itself; containers with a static /dev do not get them.
func ensureNode(path string, typ uint32, major, minor uint32) error {
	if _, err := os.Lstat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return nil // present, or something open() will report better
	}
	err := unix.Mknod(path, typ|0o660, int(unix.Mkdev(major, minor)))
	if err != nil && !errors.Is(err, unix.EEXIST) { // EEXIST: someone beat us to it
		return fmt.Errorf("create device node %s (%d:%d): %w", path, major, minor, err)
	}
	return nil
}

func sysfsMounted() bool {
	_, err := os.Stat(filepath.Join(sysDir, "block"))
	return err == nil
}

// sysDevNumber reads loopN's device number from sysfs ("7:3").
func sysDevNumber(n int) (major, minor uint32, err error) {
	b, err := os.ReadFile(filepath.Join(sysBlock(n), "dev"))
	if err != nil {
		return 0, 0, err
	}
	return parseDevNumber(string(b))
}

func parseDevNumber(s string) (major, minor uint32, err error) {
	maj, min, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return 0, 0, fmt.Errorf("bad device number %q", s)
	}
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bad device number %q", s)
	}
	return uint32(a), uint32(b), nil
}

// backingFile reads loopN's backing file from sysfs. The loop/ directory
// exists only while the device is bound, so ErrNotExist means unbound.
func backingFile(n int) (string, error) {
	b, err := os.ReadFile(filepath.Join(sysBlock(n), "loop", "backing_file"))
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// loopNumbers lists N for every loopN in sysfs, bound or not.
func loopNumbers() ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(sysDir, "block"))
	if err != nil {
		return nil, err
	}
	var ns []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "loop")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 {
			ns = append(ns, n)
		}
	}
	return ns, nil
}
