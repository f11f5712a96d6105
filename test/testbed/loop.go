package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// Loop ioctls (linux/loop.h).
const (
	loopCtlAdd       = 0x4C80
	loopCtlRemove    = 0x4C81
	loopCtlGetFree   = 0x4C82
	loopClrFd        = 0x4C01
	loopGetStatus64  = 0x4C05
	loFlagsAutoclear = 4
	loopMajor        = 7
	maxLoopIndex     = 1 << 20
)

// loopInfo64 is struct loop_info64.
type loopInfo64 struct {
	Device       uint64
	Inode        uint64
	Rdevice      uint64
	Offset       uint64
	SizeLimit    uint64
	Number       uint32
	EncryptType  uint32
	EncryptKeySz uint32
	Flags        uint32
	FileName     [64]byte
	CryptName    [64]byte
	EncryptKey   [32]byte
	Init         [2]uint64
}

// LoopDevice is a host loop device node bound into the testbed at the same path.
type LoopDevice struct {
	Index int
	Path  string // /dev/loopN, on the host and in the container
	// Added is true when the harness created the device (LOOP_CTL_ADD) so that enough
	// free ones exist; Close removes those again (LOOP_CTL_REMOVE) when they are free.
	Added bool
}

func loopIoctl(fd uintptr, req, arg uintptr) (uintptr, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, req, arg)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// loopIndices lists the loop devices the kernel has.
func loopIndices() []int {
	entries, _ := filepath.Glob("/sys/block/loop*")
	var out []int
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(e), "loop")); err == nil {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// loopBacking returns the backing file of loop device N and whether it is attached.
// /sys/block/loopN/loop/ only exists while the device is bound to a file. The path is
// the one the attaching process saw (a path inside the container for its devices).
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
		if st.Mode&syscall.S_IFMT != syscall.S_IFBLK || (st.Rdev>>8)&0xfff != loopMajor {
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

// prepareLoops returns the loop device nodes to bind into a testbed that asked for n
// loop devices: every loop device the host has, after making sure at least n of them
// are free (adding devices with LOOP_CTL_ADD when fewer are). Binding all of them, not
// just n, is what makes LOOP_CTL_GET_FREE inside the container (losetup -f, mount -o
// loop) reliable: it returns the host's lowest free index, whatever the host or other
// testbeds are doing meanwhile, and the container must have that node. When two attach
// the same free device at once, the kernel refuses one with EBUSY and util-linux tries
// the next. No loop number is hard-coded.
func prepareLoops(n int) ([]LoopDevice, error) {
	if n <= 0 {
		return nil, nil
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/loop-control: %w", err)
	}
	defer ctl.Close()
	// The first free index (the kernel creates a device if none is free).
	if _, err := loopIoctl(ctl.Fd(), loopCtlGetFree, 0); err != nil {
		return nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
	}
	existing := loopIndices()
	free := 0
	next := 0
	for _, i := range existing {
		if _, bound := loopBacking(i); !bound {
			free++
		}
		next = i + 1
	}
	added := map[int]bool{}
	for free < n && next < maxLoopIndex {
		_, err := loopIoctl(ctl.Fd(), loopCtlAdd, uintptr(next))
		switch {
		case err == nil:
			added[next] = true
			free++
		case errors.Is(err, syscall.EEXIST):
			// Someone else created it meanwhile; it is listed below.
		default:
			return nil, fmt.Errorf("LOOP_CTL_ADD %d: %w", next, err)
		}
		next++
	}
	var devs []LoopDevice
	for _, i := range loopIndices() {
		if err := ensureLoopNode(i); err != nil {
			releaseLoops(devs)
			return nil, err
		}
		devs = append(devs, LoopDevice{Index: i, Path: fmt.Sprintf("/dev/loop%d", i), Added: added[i]})
	}
	return devs, nil
}

// loopFile identifies the file an attached loop device is bound to.
type loopFile struct {
	Index   int
	Dev     uint64 // st_dev of the backing file (kernel dev_t encoding)
	Ino     uint64
	Flags   uint32
	Backing string
}

// autoclear: the kernel detaches the device when its last user closes it.
func (lf loopFile) autoclear() bool { return lf.Flags&loFlagsAutoclear != 0 }

func loopStatus(n int) (loopInfo64, error) {
	var info loopInfo64
	f, err := os.OpenFile(fmt.Sprintf("/dev/loop%d", n), os.O_RDONLY, 0)
	if err != nil {
		return info, err
	}
	defer f.Close()
	_, err = loopIoctl(f.Fd(), loopGetStatus64, uintptr(unsafe.Pointer(&info)))
	return info, err
}

// attachedLoopFiles lists every attached loop device on the host with the identity of
// its backing file.
func attachedLoopFiles() []loopFile {
	var out []loopFile
	for _, i := range loopIndices() {
		b, bound := loopBacking(i)
		if !bound {
			continue
		}
		info, err := loopStatus(i)
		if err != nil {
			continue // detached meanwhile
		}
		out = append(out, loopFile{Index: i, Dev: info.Device, Ino: info.Inode, Flags: info.Flags, Backing: b})
	}
	return out
}

// stillAttached reports whether loop device lf.Index is still bound to the same file.
func (lf loopFile) stillAttached() bool {
	if _, bound := loopBacking(lf.Index); !bound {
		return false
	}
	info, err := loopStatus(lf.Index)
	return err == nil && info.Device == lf.Dev && info.Inode == lf.Ino
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
// are unbound. Devices that already existed stay.
func releaseLoops(devs []LoopDevice) []error {
	var errs []error
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return []error{err}
	}
	defer ctl.Close()
	for _, d := range devs {
		if !d.Added {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/sys/block/loop%d", d.Index)); err != nil {
			continue
		}
		if _, bound := loopBacking(d.Index); bound {
			continue // in use (by the host or another testbed): leave it
		}
		if _, err := loopIoctl(ctl.Fd(), loopCtlRemove, uintptr(d.Index)); err != nil &&
			!errors.Is(err, syscall.ENODEV) && !errors.Is(err, syscall.EBUSY) {
			errs = append(errs, fmt.Errorf("LOOP_CTL_REMOVE %s: %w", d.Path, err))
		}
	}
	return errs
}

// mountDevs returns the st_dev values (kernel encoding) of the mounts in a mountinfo file.
func mountDevs(path string) map[uint64]bool {
	out := map[uint64]bool{}
	data, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		majmin := strings.SplitN(f[2], ":", 2)
		if len(majmin) != 2 {
			continue
		}
		maj, err1 := strconv.ParseUint(majmin[0], 10, 32)
		min, err2 := strconv.ParseUint(majmin[1], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out[min&0xff|maj<<8|(min&^0xff)<<12] = true
	}
	return out
}

// loopsOfContainer sorts the attached loop devices of the host (all of them: the
// container may create nodes) by whether they belong to the running container with PID
// 1 leader, as far as that can be known. Mine: the backing file is on one of the
// container's own file systems (a device in its mount table that the host's mount table
// does not have: its overlay root, its tmpfs mounts). Also mine: the file is reachable in
// the container at the path the kernel reports, with the same device and inode (files on
// bind mounts), and no other root can see the same file at that path (the host's, other
// containers'). Ambiguous: a file on a bind that the host or another container sees too
// (e.g. the same image bound into several testbeds): it may be theirs, so it is only
// reported, never touched. Loop devices of the host or of other testbeds never count as
// mine.
func loopsOfContainer(leader int) (mine, ambiguous []loopFile) {
	own := mountDevs(fmt.Sprintf("/proc/%d/mountinfo", leader))
	for d := range mountDevs("/proc/self/mountinfo") {
		delete(own, d)
	}
	var others []string // roots of the host and of the other containers
	for _, pid := range containerLeaders() {
		if pid != leader {
			others = append(others, fmt.Sprintf("/proc/%d/root", pid))
		}
	}
	others = append(others, "")
	sameFile := func(root, p string, lf loopFile) bool {
		var st syscall.Stat_t
		return syscall.Stat(root+p, &st) == nil && st.Dev == lf.Dev && st.Ino == lf.Ino
	}
	for _, lf := range attachedLoopFiles() {
		if own[lf.Dev] {
			mine = append(mine, lf)
			continue
		}
		p := strings.TrimSuffix(lf.Backing, " (deleted)")
		if !strings.HasPrefix(p, "/") || !sameFile(fmt.Sprintf("/proc/%d/root", leader), p, lf) {
			continue
		}
		shared := false
		for _, r := range others {
			if sameFile(r, p, lf) {
				shared = true
				break
			}
		}
		if shared {
			ambiguous = append(ambiguous, lf)
		} else {
			mine = append(mine, lf)
		}
	}
	return mine, ambiguous
}

// containerLeaders returns the host PIDs of the PID 1 of every systemd-nspawn container
// on the host (any harness, nested ones included).
func containerLeaders() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || procComm(pid) != "systemd-nspawn" {
			continue
		}
		for _, c := range childrenOf(pid) {
			if procNSPidIsOne(c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// loopState maps loop device name (loopN) to its backing file ("" when unbound).
type loopState map[string]string

func snapshotLoops() loopState {
	st := loopState{}
	for _, n := range loopIndices() {
		b, _ := loopBacking(n)
		st[fmt.Sprintf("loop%d", n)] = b
	}
	return st
}
