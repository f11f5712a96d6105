//go:build linux

package krbd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-project/strata/internal/flock"
)

// DevNode is what stat(2) says about a device node.
type DevNode struct {
	Block        bool // S_ISBLK
	Major, Minor uint32
}

// Mapper maps and unmaps images. The zero value talks to the real kernel;
// every field replaces one dependency, so tests (and odd environments) can
// substitute it.
type Mapper struct {
	// Keyring receives the cephx secret; nil means ThreadKeyring.
	Keyring Keyring
	// Write performs one write(2) of data to a sysfs file and returns the
	// kernel's errno on failure. An error from opening the file must be an
	// *fs.PathError with Op "open" (as os.OpenFile returns), so it is not
	// taken for the kernel's answer. nil means a plain open+write.
	Write func(path string, data []byte) error
	// Modprobe loads the rbd driver when SYSFS/bus/rbd is missing; nil runs
	// `modprobe rbd`.
	Modprobe func(ctx context.Context) error
	// StatDevice stats a device node (following symlinks); nil uses stat(2).
	StatDevice func(path string) (DevNode, error)
	// KernelLog reads the kernel log around a failed write; nil uses
	// /dev/kmsg.
	KernelLog KernelLog
	// ProcRoot is where /proc is ("" means /proc); Unmap reads mountinfo and
	// open file descriptors there to say who holds a busy device.
	ProcRoot string
	// DeviceTimeout bounds the wait for /dev/rbdN after a successful map
	// (default DefaultDeviceTimeout; ctx can shorten it).
	DeviceTimeout time.Duration
	// BusyRetries are the pauses between unmap attempts that fail with
	// EBUSY (default 250ms, 500ms, 1s, as something like udev's blkid may
	// still hold the device right after its last close).
	BusyRetries []time.Duration
	// KernelRelease returns the running kernel's release (uname -r), which
	// decides the snapshot default of read_from_replica; nil reads
	// /proc/sys/kernel/osrelease.
	KernelRelease func() string
	// Retry bounds the retries of a map the monitors did not answer in
	// time; nil means DefaultRetry.
	Retry *Retry
	// LockTimeout bounds Unmap's wait for a concurrent Map on this node
	// (default 2 minutes: a map can block for mount_timeout).
	LockTimeout time.Duration
	// Logf receives progress and warnings (never the secret); nil is silent.
	Logf func(format string, args ...any)
}

// DefaultDeviceTimeout is Mapper.DeviceTimeout's default.
const DefaultDeviceTimeout = 10 * time.Second

// Map maps spec with the zero Mapper; see Mapper.Map.
func Map(ctx context.Context, sysfsRoot, devRoot string, spec Spec, secret string) (Device, error) {
	return new(Mapper).Map(ctx, sysfsRoot, devRoot, spec, secret)
}

// Unmap unmaps a device with the zero Mapper; see Mapper.Unmap.
func Unmap(sysfsRoot, dev string, force bool) error {
	return new(Mapper).Unmap(sysfsRoot, dev, force)
}

// UnmapSpec unmaps an image's mapping with the zero Mapper; see
// Mapper.UnmapSpec.
func UnmapSpec(sysfsRoot string, spec Spec, force bool) error {
	return new(Mapper).UnmapSpec(sysfsRoot, spec, force)
}

// Map makes spec's image available as a block device and returns it.
//
// It is idempotent: if SYSFS/bus/rbd/devices already has a mapping of the
// same pool/namespace/image/snapshot, that one is returned (Reused) and
// nothing is written. Otherwise it loads the driver if needed, puts secret
// into the kernel keyring, writes the add line to
// SYSFS/bus/rbd/add_single_major (or add), finds the new device and waits
// for DEVROOT/rbdN to be its block device. An empty secret means cephx is
// disabled.
//
// The write itself cannot be interrupted: the kernel bounds it with
// mount_timeout (60s by default). ctx bounds everything around it. Errors are
// *Error, with the kernel's errno decoded.
func (m *Mapper) Map(ctx context.Context, sysfsRoot, devRoot string, spec Spec, secret string) (dev Device, err error) {
	red := newRedactor(secret)
	defer func() {
		if err != nil {
			err = finishError(err, "map", spec.String(), red)
		}
	}()
	if err := spec.Validate(); err != nil {
		return Device{}, &Error{Msg: "invalid spec", Err: err}
	}
	var why string
	spec.Options, why = withReplicaReads(spec, m.kernelRelease())
	if why != "" {
		m.logf("%s", why)
	}
	var payload []byte
	var canon string
	if secret != "" {
		canon, payload, err = decodeSecret(secret)
		if err != nil {
			return Device{}, &Error{Msg: err.Error()}
		}
	}
	if err := m.ensureDriver(ctx, sysfsRoot); err != nil {
		return Device{}, err
	}
	return m.mapRetrying(ctx, spec, red, func() (Device, error) {
		return m.mapOnce(ctx, sysfsRoot, devRoot, spec, payload, canon, red)
	})
}

// mapOnce is one attempt: under the node's map lock, reuse an existing
// mapping or write the add line, then wait for the device node. The lock
// is not held between attempts, so a map that backs off does not hold up
// the node's other maps.
func (m *Mapper) mapOnce(ctx context.Context, sysfsRoot, devRoot string, spec Spec, payload []byte, canon string, red redactor) (Device, error) {
	bus := busDir(sysfsRoot)
	unlock, err := lockDir(ctx, bus)
	if err != nil {
		return Device{}, err
	}
	defer unlock()

	// Reuse: one mapping per (pool, namespace, image, snapshot).
	before, err := List(sysfsRoot, devRoot)
	if err != nil {
		return Device{}, &Error{Msg: "cannot list mapped devices", Err: err}
	}
	for _, d := range before {
		if d.matches(spec) {
			d.Reused = true
			m.logf("%s is already mapped as %s; reusing it", spec, d.Name)
			return m.waitNode(ctx, d)
		}
	}

	parts, err := prepareLine(ctx, spec)
	if err != nil {
		return Device{}, &Error{Msg: "cannot build the map line", Err: err}
	}
	for _, why := range parts.dropped {
		m.logf("monitor not used: %s", why)
	}
	addPath, err := pickControl(bus, "add")
	if err != nil {
		return Device{}, err
	}
	if err := ctx.Err(); err != nil {
		return Device{}, &Error{Msg: "not mapping", Err: err}
	}

	// Add the key and write the line on one OS thread (see Keyring).
	done := make(chan attempt, 1)
	go func() {
		// Deliberately never unlocked: when this goroutine returns, the Go
		// runtime ends the locked thread and the kernel drops its thread
		// keyring with whatever key is still in it.
		runtime.LockOSThread()
		done <- m.attemptAdd(addPath, parts, payload, canon)
	}()
	a := <-done
	for _, n := range a.notes {
		m.logf("%s", red.apply(n))
	}
	if a.err != nil {
		return Device{}, a.err
	}
	if a.werr != nil {
		return Device{}, m.addFailed(sysfsRoot, addPath, spec, parts, a)
	}

	d, err := findNew(sysfsRoot, devRoot, spec, before, a.line)
	if err != nil {
		return Device{}, err
	}
	m.logf("mapped %s as %s", spec, d.Name)
	return m.waitNode(ctx, d)
}

// attempt is the outcome of the keyring+write step.
type attempt struct {
	line  string   // what was written
	auth  Auth     // how it authenticated
	werr  error    // the write's error
	klog  []string // kernel log lines after a failed write
	notes []string // things to log
	err   error    // failure before the write
}

// attemptAdd runs on a locked OS thread.
func (m *Mapper) attemptAdd(addPath string, parts lineParts, payload []byte, canon string) (a attempt) {
	a.auth = NoAuth()
	if payload != nil {
		kr := m.Keyring
		if kr == nil {
			kr = ThreadKeyring{}
		}
		desc := parts.spec.keyName()
		id, err := kr.Add(desc, payload)
		switch {
		case err == nil:
			a.auth = KeyringAuth()
			defer func() {
				if err := kr.Remove(id); err != nil {
					a.notes = append(a.notes, fmt.Sprintf("could not remove key %s from the thread keyring (%v); it goes with the thread", desc, err))
				}
			}()
		case keyringUnusable(err):
			a.auth = SecretAuth(canon)
			a.notes = append(a.notes, fmt.Sprintf("kernel keyring unusable (%v): passing the secret in the map line instead (root can read it back from the device's config_info)", err))
		default:
			a.err = &Error{Msg: fmt.Sprintf("cannot add the cephx key %s to the kernel keyring", desc), Err: err}
			return a
		}
	}
	line, err := parts.render(a.auth)
	if err != nil {
		a.err = &Error{Msg: "cannot build the map line", Err: err}
		return a
	}
	a.line = line
	klog := m.KernelLog
	if klog == nil {
		klog = DevKmsg
	}
	since := klog()
	a.werr = m.write(addPath, []byte(line))
	lines := since() // always called: it also releases what the mark holds
	if a.werr != nil {
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		a.klog = lines
	}
	return a
}

// addFailed turns a failed write to add into an *Error.
func (m *Mapper) addFailed(sysfsRoot, addPath string, spec Spec, parts lineParts, a attempt) error {
	if isOpenError(a.werr) {
		return &Error{Msg: "cannot open " + addPath, Err: a.werr}
	}
	errno, ok := kernelErrno(a.werr)
	if !ok {
		return &Error{Msg: "write to " + addPath + " failed", Err: a.werr, Line: a.line, KernelLog: a.klog}
	}
	c := mapContext{spec: spec, monitors: parts.mons, auth: a.auth, kernelLog: a.klog}
	if errno == syscall.ENXIO {
		c.supported, _ = readAttr(busDir(sysfsRoot), "supported_features")
	}
	return &Error{Errno: errno, Msg: decodeMapErrno(errno, c), KernelLog: a.klog, Line: a.line}
}

// findNew finds the device the write created: not there before, matching
// the spec. Should two appear (another mapper not using our lock), the one
// whose config_info is exactly our line wins, else the lowest id.
func findNew(sysfsRoot, devRoot string, spec Spec, before []Device, line string) (Device, error) {
	old := map[int]bool{}
	for _, d := range before {
		old[d.ID] = true
	}
	after, err := List(sysfsRoot, devRoot)
	if err != nil {
		return Device{}, &Error{Msg: "mapped, but cannot list devices", Err: err}
	}
	var cands []Device
	for _, d := range after {
		if !old[d.ID] && d.matches(spec) {
			cands = append(cands, d)
		}
	}
	if len(cands) == 0 {
		return Device{}, &Error{Msg: "the kernel accepted the map request but no new device for it appeared under " + devicesDir(sysfsRoot)}
	}
	for _, d := range cands {
		// config_info (0400) holds the exact buffer written to add.
		if ci, err := readAttr(filepath.Join(devicesDir(sysfsRoot), strconv.Itoa(d.ID)), "config_info"); err == nil && ci == line {
			return d, nil
		}
	}
	return cands[0], nil
}

// waitNode waits until DEVROOT/rbdN is the block device the kernel
// registered (devtmpfs creates it at device_add; a private or static /dev
// may lag or never get it).
func (m *Mapper) waitNode(ctx context.Context, d Device) (Device, error) {
	timeout := m.DeviceTimeout
	if timeout <= 0 {
		timeout = DefaultDeviceTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pause := 5 * time.Millisecond
	var last DevNode
	var lastErr error
	for {
		n, err := m.statDevice(d.Path)
		last, lastErr = n, err
		if err == nil && n.Block && (d.Major == 0 || (n.Major == d.Major && n.Minor == d.Minor)) {
			return d, nil
		}
		select {
		case <-ctx.Done():
			what := "does not exist"
			switch {
			case lastErr == nil && !last.Block:
				what = "is not a block device"
			case lastErr == nil:
				what = fmt.Sprintf("is %d:%d, not the mapped %d:%d", last.Major, last.Minor, d.Major, d.Minor)
			case !errors.Is(lastErr, fs.ErrNotExist):
				what = "cannot be checked: " + lastErr.Error()
			}
			return d, &Error{Msg: fmt.Sprintf("mapped as %s, but %s %s (is devtmpfs mounted on the /dev in use?); the mapping stays and a new Map reuses it", d.Name, d.Path, what), Err: ctx.Err()}
		case <-time.After(pause):
		}
		if pause < 100*time.Millisecond {
			pause *= 2
		}
	}
}

// ensureDriver loads the rbd driver when its sysfs bus is missing, as
// krbd.cc does before building the line (loading libceph also registers the
// "ceph" key type add_key needs).
func (m *Mapper) ensureDriver(ctx context.Context, sysfsRoot string) error {
	bus := busDir(sysfsRoot)
	if _, err := os.Stat(bus); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(sysfsRoot, "bus")); err != nil {
		return &Error{Errno: syscall.ENODEV, Msg: fmt.Sprintf("no sysfs at %s (is /sys mounted?)", sysfsRoot), Err: err}
	}
	m.logf("%s is missing: loading the rbd driver", bus)
	probe := m.Modprobe
	if probe == nil {
		probe = modprobeRBD
	}
	perr := probe(ctx)
	if _, err := os.Stat(bus); err == nil {
		return nil
	}
	msg := "the kernel's rbd driver is not loaded and could not be loaded: the kernel needs CONFIG_BLK_DEV_RBD and the node its rbd module"
	return &Error{Errno: syscall.ENODEV, Msg: msg, Err: perr}
}

// modprobeRBD runs `modprobe rbd` (kmod), which also loads libceph.
func modprobeRBD(ctx context.Context) error {
	path, err := exec.LookPath("modprobe")
	if err != nil {
		for _, p := range []string{"/usr/sbin/modprobe", "/sbin/modprobe"} {
			if _, serr := os.Stat(p); serr == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("modprobe not found: %w", err)
	}
	out, err := exec.CommandContext(ctx, path, "rbd").CombinedOutput()
	if err != nil {
		return fmt.Errorf("modprobe rbd: %w: %s", err, trimOutput(out))
	}
	return nil
}

func trimOutput(b []byte) string {
	const max = 512
	s := string(b)
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// pickControl returns BUS/NAME_single_major, or BUS/NAME where the module
// runs without single_major (then the _single_major files are hidden and,
// conversely, plain add/remove fail with EINVAL when single_major is on).
func pickControl(bus, name string) (string, error) {
	for _, p := range []string{filepath.Join(bus, name+"_single_major"), filepath.Join(bus, name)} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", &Error{Errno: syscall.ENODEV, Msg: fmt.Sprintf("%s has neither %s_single_major nor %s: not an rbd driver this package knows", bus, name, name)}
}

// lockDir takes an exclusive flock on dir, polling so ctx can end the wait.
// Strata's mappers on one node serialise on SYSFS/bus/rbd so that two units
// mapping the same image at boot end up sharing one device.
func lockDir(ctx context.Context, dir string) (func(), error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &Error{Msg: "cannot open " + dir + " to lock it", Err: &fs.PathError{Op: "open", Path: dir, Err: err}}
	}
	if err := flock.Exclusive(ctx, fd); err != nil {
		unix.Close(fd)
		if ctx.Err() != nil {
			return nil, &Error{Msg: "gave up waiting for another map or unmap on this node", Err: err}
		}
		return nil, &Error{Msg: "cannot lock " + dir, Err: err}
	}
	return func() { unix.Flock(fd, unix.LOCK_UN); unix.Close(fd) }, nil
}

func (m *Mapper) write(path string, data []byte) error {
	if m.Write != nil {
		return m.Write(path, data)
	}
	return writeSysfs(path, data)
}

// writeSysfs is exactly one write(2). A sysfs store method sees one
// buffer per write; os.File.Write would retry a short write with the rest of
// the data, which the kernel would take as a second, bogus request.
func writeSysfs(path string, data []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	n, err := unix.Write(fd, data)
	// EINTR means the store method gave up before doing anything (do_rbd_add
	// undoes a half-done map); try again, a bounded number of times.
	for i := 0; err == unix.EINTR && i < 3; i++ {
		n, err = unix.Write(fd, data)
	}
	if err != nil {
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	if n != len(data) {
		return &fs.PathError{Op: "write", Path: path, Err: io.ErrShortWrite}
	}
	return nil
}

func isOpenError(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Op == "open"
}

func (m *Mapper) statDevice(path string) (DevNode, error) {
	if m.StatDevice != nil {
		return m.StatDevice(path)
	}
	return statDevNode(path)
}

func statDevNode(path string) (DevNode, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return DevNode{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return DevNode{
		Block: st.Mode&unix.S_IFMT == unix.S_IFBLK,
		Major: unix.Major(uint64(st.Rdev)),
		Minor: unix.Minor(uint64(st.Rdev)),
	}, nil
}

func (m *Mapper) logf(format string, args ...any) {
	if m.Logf != nil {
		m.Logf(format, args...)
	}
}

// finishError makes every returned error an *Error for op/target with all
// text redacted.
func finishError(err error, op, target string, r redactor) error {
	e, ok := err.(*Error)
	if !ok {
		e = &Error{Err: err}
	}
	if e.Op == "" {
		e.Op = op
	}
	if e.Target == "" {
		e.Target = target
	}
	return e.redact(r)
}

// lineParts is a line with its monitors resolved, ready to render with
// whichever Auth the keyring step settles on.
type lineParts struct {
	spec    Spec
	mons    []string
	dropped []string
}

func prepareLine(ctx context.Context, spec Spec) (lineParts, error) {
	mons, dropped, err := monitorAddrs(ctx, spec.Monitors, spec.Options, spec.Resolver)
	if err != nil {
		return lineParts{dropped: dropped}, err
	}
	return lineParts{spec: spec, mons: mons, dropped: dropped}, nil
}

func (p lineParts) render(auth Auth) (string, error) {
	return buildLine(p.spec, p.mons, auth)
}
