//go:build linux

package krbd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strata-project/strata/internal/mountinfo"
)

var devNameRE = regexp.MustCompile(`^rbd([0-9]+)$`)

// parseDevID accepts "3", "rbd3", "/dev/rbd3", or a link to it such as
// /dev/rbd/POOL/IMAGE.
func parseDevID(dev string) (int, error) {
	dev = strings.TrimSpace(dev)
	if id, err := strconv.Atoi(dev); err == nil && id >= 0 && strconv.Itoa(id) == dev {
		return id, nil
	}
	if m := devNameRE.FindStringSubmatch(filepath.Base(dev)); m != nil {
		return strconv.Atoi(m[1])
	}
	if strings.Contains(dev, "/") {
		if real, err := filepath.EvalSymlinks(dev); err == nil {
			if m := devNameRE.FindStringSubmatch(filepath.Base(real)); m != nil {
				return strconv.Atoi(m[1])
			}
		}
	}
	return 0, fmt.Errorf("%q is not an rbd device (want N, rbdN or /dev/rbdN)", dev)
}

// Unmap removes a mapping by writing "N" (or "N force") to
// SYSFS/bus/rbd/remove_single_major (or remove). dev is N, rbdN, /dev/rbdN
// or a link to it.
//
// Unmap is idempotent: a device that is not mapped (or goes away meanwhile)
// is success. While the device is open the kernel answers EBUSY; Unmap
// retries a few times (udev's blkid may briefly hold a device after its last
// close), then fails with a message naming what holds it: mounts in this
// mount namespace, holder devices (device-mapper, md) and processes with it
// open. force makes the kernel unmap an open device, failing its I/O.
func (m *Mapper) Unmap(sysfsRoot, dev string, force bool) (err error) {
	id, perr := parseDevID(dev)
	target := "rbd" + strconv.Itoa(id)
	if perr != nil {
		target = dev
	}
	defer func() {
		if err != nil {
			err = finishError(err, "unmap", target, nil)
		}
	}()
	if perr != nil {
		return &Error{Errno: syscall.EINVAL, Msg: perr.Error()}
	}
	return m.locked(sysfsRoot, target, func() error {
		return m.unmapLocked(sysfsRoot, id, target, force)
	})
}

// UnmapSpec unmaps the mapping of spec's pool/namespace/image/snapshot, as
// the helper's rbd-unmap verb names it; not mapped is success. Like rbd, if
// the image is mapped more than once only the lowest-numbered mapping is
// removed. Errors and retries are Unmap's.
func (m *Mapper) UnmapSpec(sysfsRoot string, spec Spec, force bool) (err error) {
	target := spec.String()
	defer func() {
		if err != nil {
			err = finishError(err, "unmap", target, nil)
		}
	}()
	return m.locked(sysfsRoot, target, func() error {
		d, ok, err := Find(sysfsRoot, "", spec)
		if err != nil {
			return &Error{Msg: "cannot list mapped devices", Err: err}
		}
		if !ok {
			m.logf("%s is not mapped", target)
			return nil
		}
		return m.unmapLocked(sysfsRoot, d.ID, target+" ("+d.Name+")", force)
	})
}

// locked runs f holding the node-wide lock Map also takes, so an unmap never
// races a Map that is about to reuse the same device. With no rbd driver
// loaded nothing is mapped and f is not run.
func (m *Mapper) locked(sysfsRoot, target string, f func() error) error {
	bus := busDir(sysfsRoot)
	if _, err := os.Stat(bus); errors.Is(err, fs.ErrNotExist) {
		m.logf("%s: rbd driver not loaded, so nothing is mapped", target)
		return nil
	}
	lt := m.LockTimeout
	if lt <= 0 {
		lt = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), lt)
	defer cancel()
	unlock, err := lockDir(ctx, bus)
	if err != nil {
		return err
	}
	defer unlock()
	return f()
}

func (m *Mapper) unmapLocked(sysfsRoot string, id int, target string, force bool) error {
	bus := busDir(sysfsRoot)
	devDir := filepath.Join(devicesDir(sysfsRoot), strconv.Itoa(id))
	d, rerr := readDevice(sysfsRoot, id)
	if errors.Is(rerr, fs.ErrNotExist) {
		if _, err := os.Stat(devDir); errors.Is(err, fs.ErrNotExist) {
			m.logf("%s is not mapped", target)
			return nil
		}
	}
	removePath, err := pickControl(bus, "remove")
	if err != nil {
		return err
	}
	data := strconv.Itoa(id)
	if force {
		data += " force"
	}
	retries := m.BusyRetries
	if retries == nil {
		retries = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}
	}
	for attempt := 0; ; attempt++ {
		werr := m.write(removePath, []byte(data))
		if werr == nil {
			m.logf("unmapped %s", target)
			return nil
		}
		if isOpenError(werr) {
			return &Error{Msg: "cannot open " + removePath, Err: werr}
		}
		errno, ok := kernelErrno(werr)
		if !ok {
			return &Error{Msg: "write to " + removePath + " failed", Err: werr}
		}
		switch errno {
		case syscall.ENOENT:
			// Unmapped by someone else between our check and the write.
			m.logf("%s was already unmapped", target)
			return nil
		case syscall.EBUSY:
			if attempt < len(retries) {
				m.logf("%s is busy; retrying in %s", target, retries[attempt])
				time.Sleep(retries[attempt])
				continue
			}
			return &Error{Errno: errno, Msg: m.busyMessage(sysfsRoot, d, d.Name)}
		case syscall.EINPROGRESS:
			// Another unmap of this device is under way; wait for it.
			if waitGone(devDir, 10*time.Second) {
				return nil
			}
			return &Error{Errno: errno, Msg: "another unmap of this device is in progress and has not finished"}
		default:
			return &Error{Errno: errno, Msg: decodeUnmapErrno(errno)}
		}
	}
}

func waitGone(dir string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// busyMessage says who holds the device.
func (m *Mapper) busyMessage(sysfsRoot string, d Device, target string) string {
	h := m.holders(sysfsRoot, d)
	if len(h) == 0 {
		return target + " is in use, but nothing holding it is visible from here: it may be mounted in another mount namespace (a service with PrivateMounts=, a container) or open in another PID namespace; close it there, or unmap with force (its I/O then fails)"
	}
	return fmt.Sprintf("%s is in use: %s; unmount or close it first, or unmap with force (its I/O then fails)", target, strings.Join(h, "; "))
}

// holders lists what keeps the device open, as far as this namespace shows.
func (m *Mapper) holders(sysfsRoot string, d Device) []string {
	const max = 16
	var out []string
	add := func(s string) {
		if len(out) < max {
			out = append(out, s)
		}
	}
	// Minors owned by this device: itself and its partitions. With
	// single_major (the default since 4.2) each device gets 16 minors
	// (RBD_SINGLE_MAJOR_PART_SHIFT); without it, a major of its own.
	span := uint32(16)
	if v, err := readAttr(filepath.Join(sysfsRoot, "module", "rbd", "parameters"), "single_major"); err == nil && v == "N" {
		span = 256
	}
	owns := func(maj, min uint32) bool {
		return d.Major != 0 && maj == d.Major && min >= d.Minor && min < d.Minor+span
	}

	proc := m.ProcRoot
	if proc == "" {
		proc = "/proc"
	}
	// Mounts of the device or its partitions in this mount namespace.
	ms, _ := mountinfo.Read(filepath.Join(proc, "self", "mountinfo")) // what was read still counts
	for _, mt := range ms {
		maj, min, ok := parseMajMin(mt.Device)
		if (ok && owns(maj, min)) || mt.Source == "/dev/"+d.Name || strings.HasPrefix(mt.Source, "/dev/"+d.Name+"p") {
			add("mounted on " + mt.Point)
		}
	}
	// Stacked block devices (device-mapper, md, bcache...) on it or its
	// partitions.
	block := filepath.Join(sysfsRoot, "block", d.Name)
	dirs := []string{filepath.Join(block, "holders")}
	if parts, err := filepath.Glob(filepath.Join(block, d.Name+"p*", "holders")); err == nil {
		dirs = append(dirs, parts...)
	}
	for _, dir := range dirs {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			add("held by " + e.Name() + " (" + filepath.Base(filepath.Dir(dir)) + ")")
		}
	}
	// Processes with it open. stat(2) on /proc/PID/fd/N follows the magic
	// link to the opened inode, so the device numbers match whatever the
	// path looks like in the process's own mount namespace.
	if d.Major != 0 {
		fdDirs, _ := filepath.Glob(filepath.Join(proc, "[0-9]*", "fd"))
		for _, fdDir := range fdDirs {
			ents, err := os.ReadDir(fdDir)
			if err != nil {
				continue
			}
			for _, e := range ents {
				n, err := m.statDevice(filepath.Join(fdDir, e.Name()))
				if err != nil || !n.Block || !owns(n.Major, n.Minor) {
					continue
				}
				pidDir := filepath.Dir(fdDir)
				comm, _ := readAttr(pidDir, "comm")
				add(fmt.Sprintf("open by pid %s (%s)", filepath.Base(pidDir), comm))
				break
			}
		}
	}
	return out
}

func parseMajMin(s string) (uint32, uint32, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 10, 32)
	min, err2 := strconv.ParseUint(b, 10, 32)
	return uint32(maj), uint32(min), err1 == nil && err2 == nil
}
