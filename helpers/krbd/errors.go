//go:build linux

package krbd

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Error is a failed map or unmap. Errno is the kernel's answer to the sysfs
// write when there was one; errors.Is(err, syscall.ENOENT) and the like work
// on it. All text in it has been redacted of the secret.
type Error struct {
	Op        string        // "map" or "unmap"
	Target    string        // pool[/ns]/image[@snap], or rbdN for unmap
	Errno     syscall.Errno // 0 when the failure did not come from the kernel
	Msg       string        // what happened and what to check
	KernelLog []string      // rbd:/libceph: lines the kernel logged meanwhile
	Line      string        // the line written to add, secret redacted
	Tries     string        // how often and how long a map was tried, when retried
	Err       error         // underlying cause, if any
	cause     string        // Err's text, redacted
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "krbd %s %s: %s", e.Op, e.Target, e.Msg)
	if e.Errno != 0 {
		fmt.Fprintf(&b, " (%s)", errnoName(e.Errno))
	}
	if e.Tries != "" {
		fmt.Fprintf(&b, "; %s", e.Tries)
	}
	if e.cause != "" {
		fmt.Fprintf(&b, ": %s", e.cause)
	}
	if len(e.KernelLog) > 0 {
		fmt.Fprintf(&b, "; kernel log: %s", strings.Join(e.KernelLog, " | "))
	}
	if e.Line != "" {
		fmt.Fprintf(&b, "; line: %q", e.Line)
	}
	return b.String()
}

// Unwrap exposes both the errno and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Errno != 0 {
		out = append(out, e.Errno)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// redact scrubs every text field; called on every *Error before it leaves
// the package.
func (e *Error) redact(r redactor) *Error {
	e.Msg = r.apply(e.Msg)
	e.Line = r.apply(e.Line)
	e.Target = r.apply(e.Target)
	for i, l := range e.KernelLog {
		e.KernelLog[i] = r.apply(l)
	}
	if e.Err != nil {
		// errors.Join separates with newlines; an error is one line.
		e.cause = r.apply(strings.ReplaceAll(e.Err.Error(), "\n", "; "))
	}
	return e
}

func errnoName(e syscall.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n + ": " + e.Error()
	}
	return "errno " + strconv.Itoa(int(e)) + ": " + e.Error()
}

// kernelErrno extracts the errno from a failed write(2).
func kernelErrno(err error) (syscall.Errno, bool) {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno, true
	}
	return 0, false
}

// EBLOCKLISTED is libceph's name for ESHUTDOWN: the cluster has blocklisted
// this client.
const eBlocklisted = syscall.ESHUTDOWN

// mapContext is what the decoder knows about the attempt.
type mapContext struct {
	spec      Spec
	monitors  []string // as written in the line
	auth      Auth
	kernelLog []string
	supported string // contents of bus/rbd/supported_features, if read
}

var (
	kmsgPoolDNE  = regexp.MustCompile(`^rbd: pool (.+) does not exist$`)
	kmsgImageDNE = regexp.MustCompile(`^rbd: image (.+) does not exist$`)
	kmsgSnapDNE  = regexp.MustCompile(`^rbd: snap (.+) does not exist$`)
	kmsgUnsup    = regexp.MustCompile(`unsupported features: (0x[0-9a-fA-F]+)`)
	kmsgNoKey    = regexp.MustCompile(`key not found`)
	kmsgNoExcl   = regexp.MustCompile(`exclusive-lock feature is not enabled`)
	kmsgUnknown  = regexp.MustCompile(`(?i)unknown parameter '([^']+)'`)
)

// optionSince is the Linux release that added each map option newer than
// the oldest kernels sites run (EL8's 4.18, Debian 11's 5.10, Ubuntu
// 22.04's 5.15): on an older kernel the map fails with EINVAL and the
// kernel logs "Unknown parameter". Distribution kernels may backport one,
// so the kernel's answer decides, not its version.
var optionSince = map[string]string{
	"alloc_size":        "5.1",
	"read_from_replica": "5.8",
	"crush_location":    "5.8",
	"compression_hint":  "5.8",
	"ms_mode":           "5.11",
	"rxbounce":          "5.17",
}

// osrelease is where the running kernel's release is read, for messages.
var osrelease = "/proc/sys/kernel/osrelease"

// unknownOptionMessage explains an option the running kernel does not know.
func unknownOptionMessage(name string) string {
	kernel := "this kernel"
	if b, err := os.ReadFile(osrelease); err == nil {
		kernel = "this node's kernel (" + strings.TrimSpace(string(b)) + ")"
	}
	msg := fmt.Sprintf("%s does not know the map option %s", kernel, name)
	if v, ok := optionSince[name]; ok {
		msg += fmt.Sprintf(": Linux %s added it", v)
	}
	return msg + "; drop it from the definition's rbd options or run a newer kernel"
}

// decodeMapErrno turns the errno of a write to add_single_major into advice.
// Each case is where Linux 6.1 returns it:
//
//	EPERM      do_rbd_add without CAP_SYS_ADMIN; libceph get_secret when the
//	           key= lookup fails; an OSD refusing an op the caps do not allow
//	           (e.g. the header watch of a read-write map with rbd-read-only)
//	EACCES     the monitors refusing cephx authentication (bad key, unknown
//	           user), delivered through monc auth_err
//	ENOENT     pool (ceph_pg_poolid_by_name), image (rbd_dev_image_id /
//	           header watch) or snapshot (rbd_spec_fill_snap_id) missing
//	ETIMEDOUT  __ceph_open_session after mount_timeout; exclusive lock not
//	           acquired within lock_timeout
//	ENXIO      image features the kernel lacks (_rbd_dev_v2_snap_features),
//	           or a corrupt format 1 header
//	EINVAL     option or argument parse errors; exclusive/lock_on_read on an
//	           image without exclusive-lock (rbd_add_acquire_lock)
//	ENODEV     the module going away (try_module_get)
func decodeMapErrno(errno syscall.Errno, c mapContext) string {
	s := c.spec
	switch errno {
	case syscall.ENOENT:
		return notFoundMessage(c)
	case syscall.EACCES, syscall.EPERM, syscall.EKEYREJECTED, syscall.EKEYEXPIRED, syscall.EKEYREVOKED:
		return permissionMessage(errno, c)
	case syscall.ETIMEDOUT, syscall.EAGAIN:
		timeout := "60 (the default)"
		if v, ok := optionValue(s.Options, "mount_timeout"); ok {
			timeout = v
		}
		msg := fmt.Sprintf("no answer from the monitors %s within mount_timeout=%s seconds: check that they are reachable from this node (v1 port 6789, v2 port 3300, firewalls), that ms_mode matches what they offer, or raise mount_timeout", strings.Join(c.monitors, ","), timeout)
		if hasOption(s.Options, "exclusive") || hasOption(s.Options, "lock_on_read") {
			msg += "; with exclusive/lock_on_read it can also be the exclusive lock not acquired within lock_timeout (another client holds it: `rbd status " + imageSpec(s) + "`)"
		}
		return msg
	case syscall.ENXIO:
		return featuresMessage(c)
	case syscall.EINVAL:
		msg := "the kernel rejected the request as invalid: an option value it does not accept, an unparsable monitor address"
		for _, l := range c.kernelLog {
			if kmsgNoExcl.MatchString(l) {
				return "exclusive or lock_on_read needs the image's exclusive-lock feature: enable it (`rbd feature enable " + imageSpec(s) + " exclusive-lock`) or drop the option"
			}
			if m := kmsgUnknown.FindStringSubmatch(l); m != nil {
				return unknownOptionMessage(m[1])
			}
		}
		if hasOption(s.Options, "exclusive") || hasOption(s.Options, "lock_on_read") {
			msg += ", or exclusive/lock_on_read on an image without the exclusive-lock feature"
		}
		return msg + " (the kernel log names it: `dmesg | tail`)"
	case syscall.ENODEV:
		return "the kernel's rbd driver is missing or being unloaded: check `modprobe rbd` and that the kernel has CONFIG_BLK_DEV_RBD"
	case syscall.ENAMETOOLONG:
		return fmt.Sprintf("the snapshot name is longer than the kernel's limit of %d bytes", maxSnapNameLen)
	case eBlocklisted:
		return "this client is blocklisted by the cluster: check `ceph osd blocklist ls` and remove the entry, then retry"
	case syscall.ENOSPC:
		return "the kernel has no free rbd device id: too many images are mapped on this node"
	case syscall.ENOMEM:
		return "the kernel ran out of memory while mapping"
	case syscall.EIO:
		return "I/O error talking to the cluster or reading the image header (`dmesg | tail` shows more)"
	case syscall.EINTR, syscall.ERESTART:
		return "the map was interrupted by a signal: retry"
	}
	return "the kernel refused the map request (`dmesg | tail` shows its reason)"
}

func hasOption(opts []string, name string) bool {
	for _, o := range opts {
		if o == name {
			return true
		}
	}
	return false
}

func notFoundMessage(c mapContext) string {
	s := c.spec
	for _, l := range c.kernelLog {
		if m := kmsgPoolDNE.FindStringSubmatch(l); m != nil {
			return fmt.Sprintf("pool %q does not exist (check `ceph osd pool ls`)", m[1])
		}
		if m := kmsgSnapDNE.FindStringSubmatch(l); m != nil {
			return fmt.Sprintf("snapshot %s does not exist (check `rbd snap ls %s`)", m[1], imageSpec(s))
		}
		if m := kmsgImageDNE.FindStringSubmatch(l); m != nil {
			ns := ""
			if s.Namespace != "" {
				ns = fmt.Sprintf(" in namespace %q", s.Namespace)
			}
			return fmt.Sprintf("image %s does not exist%s (check `rbd ls %s`)", m[1], ns, lsSpec(s))
		}
	}
	// Without the kernel log the errno cannot tell which one is missing.
	parts := []string{fmt.Sprintf("pool %q (`ceph osd pool ls`)", s.Pool)}
	if s.Namespace != "" {
		parts = append(parts, fmt.Sprintf("namespace %q (`rbd namespace ls %s`)", s.Namespace, s.Pool))
	}
	parts = append(parts, fmt.Sprintf("image %q (`rbd ls %s`)", s.Image, lsSpec(s)))
	if s.Snapshot != "" {
		parts = append(parts, fmt.Sprintf("snapshot %q (`rbd snap ls %s`)", s.Snapshot, imageSpec(s)))
	}
	return "not found: one of " + strings.Join(parts, ", ") + " does not exist"
}

func imageSpec(s Spec) string {
	t := s
	t.Snapshot = ""
	return t.String()
}

func lsSpec(s Spec) string {
	if s.Namespace != "" {
		return s.Pool + "/" + s.Namespace
	}
	return s.Pool
}

func permissionMessage(errno syscall.Errno, c mapContext) string {
	s := c.spec
	for _, l := range c.kernelLog {
		if kmsgNoKey.MatchString(l) {
			return fmt.Sprintf("the kernel did not find key %s in the writing thread's keyrings", s.keyName())
		}
	}
	ro := hasOption(s.Options, "ro") || hasOption(s.Options, "read_only") || s.Snapshot != ""
	caps := fmt.Sprintf("`ceph auth get %s` should show mon 'profile rbd' and osd 'profile rbd pool=%s'", s.keyName(), s.Pool)
	if ro {
		caps += fmt.Sprintf(" (or osd 'profile rbd-read-only pool=%s' for this read-only map)", s.Pool)
	} else {
		caps += "; a user with only 'profile rbd-read-only' must map with the ro option"
	}
	msg := fmt.Sprintf("cephx permission denied for %s: check its key and caps: %s", s.keyName(), caps)
	if errno == syscall.EPERM {
		msg += "; EPERM also means this process lacks CAP_SYS_ADMIN"
		if c.auth.mode == authKey {
			msg += ", or that the kernel did not find the key in the writing thread's keyring"
		}
	}
	return msg
}

// rbdFeatures names the image feature bits (librbd's RBD_FEATURE_*).
var rbdFeatures = []struct {
	bit  uint64
	name string
}{
	{1 << 0, "layering"},
	{1 << 1, "striping"},
	{1 << 2, "exclusive-lock"},
	{1 << 3, "object-map"},
	{1 << 4, "fast-diff"},
	{1 << 5, "deep-flatten"},
	{1 << 6, "journaling"},
	{1 << 7, "data-pool"},
	{1 << 8, "operations"},
	{1 << 9, "migrating"},
	{1 << 10, "non-primary"},
	{1 << 11, "dirty-cache"},
}

// disableable are the features `rbd feature disable` can turn off.
var disableable = map[string]bool{
	"exclusive-lock": true, "object-map": true, "fast-diff": true,
	"deep-flatten": true, "journaling": true,
}

func featureNames(mask uint64) []string {
	var out []string
	for _, f := range rbdFeatures {
		if mask&f.bit != 0 {
			out = append(out, f.name)
			mask &^= f.bit
		}
	}
	if mask != 0 {
		out = append(out, fmt.Sprintf("0x%x", mask))
	}
	return out
}

func featuresMessage(c mapContext) string {
	s := imageSpec(c.spec)
	for _, l := range c.kernelLog {
		m := kmsgUnsup.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(m[1]), "0x"), 16, 64)
		if err != nil {
			break
		}
		names := featureNames(mask)
		var off, other []string
		for _, n := range names {
			if disableable[n] {
				off = append(off, n)
			} else {
				other = append(other, n)
			}
		}
		msg := fmt.Sprintf("the image uses features this kernel cannot map: %s", strings.Join(names, ", "))
		if len(off) > 0 {
			msg += fmt.Sprintf("; disable them with `rbd feature disable %s %s`", s, strings.Join(off, " "))
		}
		if len(other) > 0 {
			msg += fmt.Sprintf("; %s cannot be disabled (finish or abort a migration with `rbd migration commit|abort`, or use a newer kernel)", strings.Join(other, ", "))
		}
		return msg
	}
	msg := "the image uses a feature this kernel cannot map"
	if c.supported != "" {
		if mask, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(c.supported), "0x"), 16, 64); err == nil {
			msg += fmt.Sprintf(" (it supports %s)", strings.Join(featureNames(mask), ", "))
		}
	}
	return msg + fmt.Sprintf(": compare with `rbd info %s` and disable the rest, e.g. `rbd feature disable %s journaling` (kernels before 5.3 also need object-map fast-diff deep-flatten disabled)", s, s)
}

// decodeUnmapErrno turns the errno of a write to remove_single_major into
// advice (do_rbd_remove in drivers/block/rbd.c). EBUSY is handled by the
// caller, which knows who holds the device.
func decodeUnmapErrno(errno syscall.Errno) string {
	switch errno {
	case syscall.EPERM:
		return "permission denied: unmapping needs CAP_SYS_ADMIN"
	case syscall.EINVAL:
		return "the kernel rejected the device id or the option"
	case syscall.ENODEV:
		return "the kernel's rbd driver is missing"
	}
	return "the kernel refused the unmap request"
}
