//go:build linux

package krbd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Device is a mapped image.
type Device struct {
	ID        int    // N in /sys/bus/rbd/devices/N
	Name      string // "rbdN", the kernel's disk name
	Path      string // DEVROOT/rbdN
	Major     uint32
	Minor     uint32
	Pool      string
	Namespace string
	Image     string
	Snapshot  string // "" for the image head
	// Reused is true when Map found the mapping already in place and wrote
	// nothing.
	Reused bool
}

func busDir(sysfsRoot string) string     { return filepath.Join(sysfsRoot, "bus", "rbd") }
func devicesDir(sysfsRoot string) string { return filepath.Join(busDir(sysfsRoot), "devices") }

// readAttr reads a sysfs attribute the way ceph-rbdnamer's `cat` inside
// backticks does: the kernel's trailing newline removed.
func readAttr(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// deviceIDs lists the ids under SYSFS/bus/rbd/devices, ascending.
func deviceIDs(sysfsRoot string) ([]int, error) {
	ents, err := os.ReadDir(devicesDir(sysfsRoot))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var ids []int
	for _, e := range ents {
		if id, err := strconv.Atoi(e.Name()); err == nil && id >= 0 && strconv.Itoa(id) == e.Name() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// readDevice reads one device's identity. pool_ns is missing on kernels
// before namespace support; like krbd.cc, that reads as no namespace.
func readDevice(sysfsRoot string, id int) (Device, error) {
	dir := filepath.Join(devicesDir(sysfsRoot), strconv.Itoa(id))
	d := Device{ID: id, Name: "rbd" + strconv.Itoa(id)}
	var err error
	if d.Pool, err = readAttr(dir, "pool"); err != nil {
		return d, err
	}
	if d.Image, err = readAttr(dir, "name"); err != nil {
		return d, err
	}
	snap, err := readAttr(dir, "current_snap")
	if err != nil {
		return d, err
	}
	if snap != snapHead {
		d.Snapshot = snap
	}
	if ns, err := readAttr(dir, "pool_ns"); err == nil {
		d.Namespace = ns
	} else if !errors.Is(err, fs.ErrNotExist) {
		return d, err
	}
	// major/minor are best effort: they let us check the /dev node.
	if v, err := readAttr(dir, "major"); err == nil {
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			d.Major = uint32(n)
		}
	}
	if v, err := readAttr(dir, "minor"); err == nil {
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			d.Minor = uint32(n)
		}
	}
	return d, nil
}

func (d Device) matches(s Spec) bool {
	return d.Pool == s.Pool && d.Namespace == s.Namespace && d.Image == s.Image && d.Snapshot == s.Snapshot
}

// List returns every mapping the kernel has, like `rbd device list`, with
// Path under devRoot. Devices that vanish while being read are skipped.
func List(sysfsRoot, devRoot string) ([]Device, error) {
	ids, err := deviceIDs(sysfsRoot)
	if err != nil {
		return nil, err
	}
	var out []Device
	for _, id := range ids {
		d, err := readDevice(sysfsRoot, id)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // unmapped meanwhile
			}
			return nil, fmt.Errorf("read %s: %w", filepath.Join(devicesDir(sysfsRoot), strconv.Itoa(id)), err)
		}
		d.Path = filepath.Join(devRoot, d.Name)
		out = append(out, d)
	}
	return out, nil
}

// Find returns the lowest-numbered existing mapping of the spec's
// pool/namespace/image/snapshot, if any.
func Find(sysfsRoot, devRoot string, spec Spec) (Device, bool, error) {
	devs, err := List(sysfsRoot, devRoot)
	if err != nil {
		return Device{}, false, err
	}
	for _, d := range devs {
		if d.matches(spec) {
			return d, true, nil
		}
	}
	return Device{}, false, nil
}
