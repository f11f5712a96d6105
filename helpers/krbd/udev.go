//go:build linux

package krbd

import (
	_ "embed"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/strata-project/strata/internal/layout"
)

// UdevRules is the udev rule Strata installs on nodes without ceph-common,
// as /usr/lib/udev/rules.d/50-strata-rbd.rules. It is Ceph's
// udev/50-rbd.rules with Strata's helper in place of ceph-rbdnamer; the
// helper's "rbd-namer" subcommand must print Namer's output, nothing else,
// without a newline.
//
//go:embed 50-strata-rbd.rules
var UdevRules string

// StablePath is the link udev makes for a mapping of spec with Ceph's rule
// (KERNEL=="rbd[0-9]*", ENV{DEVTYPE}=="disk", SYMLINK+="rbd/%c", where %c is
// ceph-rbdnamer's output): /dev/rbd/POOL[/NS]/IMAGE[@SNAP]. Partitions get
// the same path with "-partN" appended. Characters udev does not allow in a
// link name are replaced the way udev replaces them.
func StablePath(spec Spec) string {
	return layout.RBDDir + udevSanitize(namerOutput(spec.Pool, spec.Namespace, spec.Image, spec.snapToken()))
}

// namerOutput is what ceph-rbdnamer prints for these attribute values
// (snap is the kernel's token: snapHead for the image's head).
func namerOutput(pool, ns, image, snap string) string {
	if snap == snapHead {
		snap = ""
	}
	return layout.RBDLinkName(pool, ns, image, snap)
}

// namerArg is what ceph-rbdnamer accepts as %k: a disk (rbd3) or one of its
// partitions (rbd3p1).
var namerArg = regexp.MustCompile(`^rbd([0-9]+)(p[0-9]+)?$`)

// Namer prints what Ceph's ceph-rbdnamer prints for a kernel device name
// ("rbd3" or a partition "rbd3p1"): pool[/namespace]/image[@snapshot] from
// SYSFS/bus/rbd/devices/N/{pool,pool_ns,name,current_snap}, where a missing
// pool_ns (older kernels) and the head snapshot "-" print nothing. udev
// cleans the characters; the output is raw, as the script's is.
func Namer(sysfsRoot, devname string) (string, error) {
	m := namerArg.FindStringSubmatch(devname)
	if m == nil {
		return "", fmt.Errorf("%q is not an rbd device name (rbdN or rbdNpM)", devname)
	}
	id, err := strconv.Atoi(m[1])
	if err != nil {
		return "", fmt.Errorf("%q: %w", devname, err)
	}
	d, err := readDevice(sysfsRoot, id)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", filepath.Join(devicesDir(sysfsRoot), m[1]), err)
	}
	snap := d.Snapshot
	if snap == "" {
		snap = snapHead
	}
	return namerOutput(d.Pool, d.Namespace, d.Image, snap), nil
}

// udevSanitize mirrors systemd-udevd's udev_replace_chars(str, "/ ") applied
// to SYMLINK values: ASCII letters and digits, "#+-.:=@_", '/', "\x"
// escapes and valid multi-byte UTF-8 stay; whitespace and everything else
// becomes '_' (whitespace would otherwise split the value into several
// links; names with whitespace are refused earlier anyway).
func udevSanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("#+-.:=@_/", c) >= 0:
			b.WriteByte(c)
			i++
		case c == '\\' && i+1 < len(s) && s[i+1] == 'x':
			b.WriteString(`\x`)
			i += 2
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n <= 1 {
				b.WriteByte('_')
				i++
				continue
			}
			b.WriteString(s[i : i+n])
			i += n
		default:
			b.WriteByte('_')
			i++
		}
	}
	return b.String()
}
