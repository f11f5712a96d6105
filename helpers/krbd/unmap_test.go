//go:build linux

package krbd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestUnmapExactBytes(t *testing.T) {
	cases := []struct {
		dev   string
		force bool
		want  string
	}{
		{"3", false, "3"},
		{"rbd3", true, "3 force"},
		{"/dev/rbd3", false, "3"},
	}
	for _, c := range cases {
		k := newFakeKernel(t)
		k.makeDevice(3, "p", "", "i", "-", "")
		if err := k.mapper().Unmap(k.sysfs, c.dev, c.force); err != nil {
			t.Fatalf("Unmap(%q): %v", c.dev, err)
		}
		rm := k.writesTo("remove")
		if len(rm) != 1 || rm[0].file != "remove_single_major" || rm[0].data != c.want {
			t.Errorf("Unmap(%q, %v) wrote %+v, want %q", c.dev, c.force, rm, c.want)
		}
		got, _ := os.ReadFile(filepath.Join(k.sysfs, "bus/rbd/remove_single_major"))
		if string(got) != c.want {
			t.Errorf("remove_single_major holds %q", got)
		}
		if _, err := os.Stat(filepath.Join(k.sysfs, "bus/rbd/devices/3")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("device still there")
		}
	}
}

func TestUnmapByStableLink(t *testing.T) {
	k := newFakeKernel(t)
	k.makeDevice(5, "p", "", "i", "-", "")
	link := filepath.Join(k.dev, "rbd", "p", "i")
	must(t, os.MkdirAll(filepath.Dir(link), 0o755))
	must(t, os.Symlink("../../rbd5", link))
	if err := k.mapper().Unmap(k.sysfs, link, false); err != nil {
		t.Fatal(err)
	}
	if rm := k.writesTo("remove"); len(rm) != 1 || rm[0].data != "5" {
		t.Errorf("wrote %+v", rm)
	}
}

func TestUnmapIdempotent(t *testing.T) {
	k := newFakeKernel(t)
	// Not mapped: nothing written, no error.
	if err := k.mapper().Unmap(k.sysfs, "rbd7", false); err != nil {
		t.Fatal(err)
	}
	if len(k.writes) != 0 {
		t.Errorf("wrote %+v", k.writes)
	}
	// Gone between the check and the write: ENOENT is success.
	k.makeDevice(7, "p", "", "i", "-", "")
	k.removeErr = []syscall.Errno{syscall.ENOENT}
	if err := k.mapper().Unmap(k.sysfs, "rbd7", false); err != nil {
		t.Fatal(err)
	}
	// Driver not even loaded.
	must(t, os.RemoveAll(filepath.Join(k.sysfs, "bus/rbd")))
	if err := k.mapper().Unmap(k.sysfs, "rbd7", false); err != nil {
		t.Fatal(err)
	}
}

func TestUnmapBadDevice(t *testing.T) {
	k := newFakeKernel(t)
	for _, dev := range []string{"", "sda", "/dev/sda", "rbd", "rbd1p1", "-1"} {
		err := k.mapper().Unmap(k.sysfs, dev, false)
		if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "not an rbd device") {
			t.Errorf("Unmap(%q) = %v", dev, err)
		}
	}
}

func TestUnmapBusyRetriesThenSucceeds(t *testing.T) {
	k := newFakeKernel(t)
	k.makeDevice(1, "p", "", "i", "-", "")
	k.removeErr = []syscall.Errno{syscall.EBUSY, syscall.EBUSY}
	if err := k.mapper().Unmap(k.sysfs, "rbd1", false); err != nil {
		t.Fatal(err)
	}
	if n := len(k.writesTo("remove")); n != 3 {
		t.Errorf("%d remove writes, want 3", n)
	}
}

func TestUnmapBusyNamesHolders(t *testing.T) {
	k := newFakeKernel(t)
	k.makeDevice(3, "p", "", "i", "-", "") // 251:48, partitions 251:49..63
	// Mounted: the disk and a partition.
	mountinfo := "22 1 0:21 / /proc rw - proc proc rw\n" +
		"36 22 251:48 / /mnt/data rw,relatime - ext4 /dev/rbd3 rw\n" +
		"37 22 251:49 / /srv/with\\040space rw - xfs /dev/rbd3p1 rw\n" +
		"38 22 251:64 / /mnt/other rw - ext4 /dev/rbd4 rw\n"
	must(t, os.WriteFile(filepath.Join(k.proc, "self", "mountinfo"), []byte(mountinfo), 0o644))
	// A device-mapper device on top.
	must(t, os.MkdirAll(filepath.Join(k.sysfs, "block/rbd3/holders/dm-0"), 0o755))
	// A process with it open.
	fd := filepath.Join(k.proc, "4242", "fd")
	must(t, os.MkdirAll(fd, 0o755))
	must(t, os.Symlink(filepath.Join(k.dev, "rbd3"), filepath.Join(fd, "7")))
	must(t, os.WriteFile(filepath.Join(k.proc, "4242", "comm"), []byte("qemu-system-x86\n"), 0o644))
	// And one with an unrelated file open.
	other := filepath.Join(k.proc, "99", "fd")
	must(t, os.MkdirAll(other, 0o755))
	must(t, os.Symlink("/etc/hostname", filepath.Join(other, "1")))

	k.removeErr = []syscall.Errno{syscall.EBUSY, syscall.EBUSY, syscall.EBUSY}
	err := k.mapper().Unmap(k.sysfs, "rbd3", false)
	if !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("err = %v", err)
	}
	for _, w := range []string{"rbd3 is in use", "mounted on /mnt/data", "mounted on /srv/with space",
		"held by dm-0", "open by pid 4242 (qemu-system-x86)", "unmap with force"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not mention %q", err, w)
		}
	}
	for _, w := range []string{"/mnt/other", "pid 99"} {
		if strings.Contains(err.Error(), w) {
			t.Errorf("error %q mentions unrelated %q", err, w)
		}
	}
	if n := len(k.writesTo("remove")); n != 3 {
		t.Errorf("%d attempts, want 3 (1 + 2 retries)", n)
	}
	// force goes through.
	if err := k.mapper().Unmap(k.sysfs, "rbd3", true); err != nil {
		t.Fatal(err)
	}
	if rm := k.writesTo("remove"); rm[len(rm)-1].data != "3 force" {
		t.Errorf("last write %q", rm[len(rm)-1].data)
	}
}

func TestUnmapBusyNoVisibleHolder(t *testing.T) {
	k := newFakeKernel(t)
	k.makeDevice(0, "p", "", "i", "-", "")
	k.removeErr = []syscall.Errno{syscall.EBUSY, syscall.EBUSY, syscall.EBUSY}
	err := k.mapper().Unmap(k.sysfs, "0", false)
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "another mount namespace") {
		t.Errorf("err = %v", err)
	}
}

func TestUnmapOtherErrors(t *testing.T) {
	for _, c := range []struct {
		errno syscall.Errno
		want  string
	}{
		{syscall.EPERM, "CAP_SYS_ADMIN"},
		{syscall.EINVAL, "rejected the device id"},
		{syscall.EIO, "refused the unmap"},
	} {
		k := newFakeKernel(t)
		k.makeDevice(0, "p", "", "i", "-", "")
		k.removeErr = []syscall.Errno{c.errno}
		err := k.mapper().Unmap(k.sysfs, "rbd0", false)
		var e *Error
		if !errors.Is(err, c.errno) || !errors.As(err, &e) || e.Op != "unmap" || e.Target != "rbd0" ||
			!strings.Contains(err.Error(), c.want) {
			t.Errorf("errno %v: err = %v", c.errno, err)
		}
	}
	// EINPROGRESS: another unmap finishes meanwhile.
	k := newFakeKernel(t)
	k.makeDevice(0, "p", "", "i", "-", "")
	k.removeErr = []syscall.Errno{syscall.EINPROGRESS}
	go func() { os.RemoveAll(filepath.Join(k.sysfs, "bus/rbd/devices/0")) }()
	if err := k.mapper().Unmap(k.sysfs, "rbd0", false); err != nil {
		t.Errorf("EINPROGRESS then gone: %v", err)
	}
}

func TestUnmapSpec(t *testing.T) {
	k := newFakeKernel(t)
	k.makeDevice(0, "p", "", "other", "-", "")
	k.makeDevice(1, "p", "ns", "img", "s", "")
	k.makeDevice(2, "p", "ns", "img", "s", "") // mapped twice: lowest goes
	spec := Spec{Pool: "p", Namespace: "ns", Image: "img", Snapshot: "s"}
	if err := k.mapper().UnmapSpec(k.sysfs, spec, false); err != nil {
		t.Fatal(err)
	}
	if rm := k.writesTo("remove"); len(rm) != 1 || rm[0].data != "1" {
		t.Errorf("wrote %+v, want \"1\"", rm)
	}
	// Not mapped (other snapshot): success, nothing written.
	spec.Snapshot = "t"
	if err := k.mapper().UnmapSpec(k.sysfs, spec, true); err != nil {
		t.Fatal(err)
	}
	if n := len(k.writesTo("remove")); n != 1 {
		t.Errorf("%d remove writes", n)
	}
	// Busy: the error names the spec and the device.
	spec.Snapshot = "s"
	k.removeErr = []syscall.Errno{syscall.EBUSY, syscall.EBUSY, syscall.EBUSY}
	err := k.mapper().UnmapSpec(k.sysfs, spec, false)
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "krbd unmap p/ns/img@s: rbd2 is in use") {
		t.Errorf("err = %v", err)
	}
}
