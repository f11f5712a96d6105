//go:build linux

package krbd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-project/strata/internal/layout"
)

func TestStablePath(t *testing.T) {
	cases := []struct {
		spec Spec
		want string
	}{
		{Spec{Pool: "rbd", Image: "img"}, "/dev/rbd/rbd/img"},
		{Spec{Pool: "rbd", Namespace: "ns", Image: "img"}, "/dev/rbd/rbd/ns/img"},
		{Spec{Pool: "rbd", Image: "img", Snapshot: "s1"}, "/dev/rbd/rbd/img@s1"},
		{Spec{Pool: "rbd", Namespace: "ns", Image: "img", Snapshot: "s1"}, "/dev/rbd/rbd/ns/img@s1"},
		// udev keeps #+-.:=@_ and UTF-8, turns the rest into '_'.
		{Spec{Pool: "p#1", Image: "a+b-c.d:e=f_g", Snapshot: "x!y(z)"}, "/dev/rbd/p#1/a+b-c.d:e=f_g@x_y_z_"},
		{Spec{Pool: "données", Image: "imagé"}, "/dev/rbd/données/imagé"},
		{Spec{Pool: "p", Image: "bad\xffutf8"}, "/dev/rbd/p/bad_utf8"},
		{Spec{Pool: "p", Image: `esc\x2fok`}, `/dev/rbd/p/esc\x2fok`},
	}
	for _, c := range cases {
		if got := StablePath(c.spec); got != c.want {
			t.Errorf("StablePath(%s) = %q, want %q", c.spec, got, c.want)
		}
	}
}

func TestNamer(t *testing.T) {
	k := newFakeKernel(t)
	k.makeDevice(0, "rbd", "", "img", "-", "")
	k.makeDevice(1, "pool", "tenant", "root", "snap-1", "")
	k.makeDevice(12, "p", "", "i", "s", "")
	os.Remove(filepath.Join(k.sysfs, "bus/rbd/devices/12/pool_ns")) // old kernel
	cases := map[string]string{
		"rbd0":    "rbd/img",
		"rbd0p1":  "rbd/img",
		"rbd1":    "pool/tenant/root@snap-1",
		"rbd1p15": "pool/tenant/root@snap-1",
		"rbd12":   "p/i@s",
	}
	for dev, want := range cases {
		got, err := Namer(k.sysfs, dev)
		if err != nil || got != want {
			t.Errorf("Namer(%q) = %q, %v; want %q", dev, got, err, want)
		}
	}
	for _, dev := range []string{"sda", "rbd", "rbd9", "../rbd0", "rbd0p"} {
		if got, err := Namer(k.sysfs, dev); err == nil {
			t.Errorf("Namer(%q) = %q, want error", dev, got)
		}
	}
	// Namer after udev's cleaning is exactly StablePath's tail.
	spec := Spec{Pool: "pool", Namespace: "tenant", Image: "root", Snapshot: "snap-1"}
	if got, _ := Namer(k.sysfs, "rbd1"); "/dev/rbd/"+udevSanitize(got) != StablePath(spec) {
		t.Errorf("Namer and StablePath disagree: %q vs %q", got, StablePath(spec))
	}
}

func TestUdevRules(t *testing.T) {
	for _, w := range []string{
		`KERNEL=="rbd[0-9]*", ENV{DEVTYPE}=="disk", PROGRAM="` + layout.HelperPath + ` rbd-namer %k", SYMLINK+="rbd/%c"`,
		`KERNEL=="rbd[0-9]*", ENV{DEVTYPE}=="partition", PROGRAM="` + layout.HelperPath + ` rbd-namer %k", SYMLINK+="rbd/%c-part%n"`,
		`ACTION=="remove", GOTO="strata_rbd_end"`,
		`LABEL="strata_rbd_end"`,
	} {
		if !strings.Contains(UdevRules, w+"\n") {
			t.Errorf("rules lack %q", w)
		}
	}
}
