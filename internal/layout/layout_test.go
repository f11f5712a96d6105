package layout

import (
	"strings"
	"testing"

	"github.com/strata-project/strata/units"
)

func TestUnitNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ContainerUnit("test"), "systemd-nspawn@test.service"},
		{AttachUnit("rbd_image1_0123456789"), "strata-attach@rbd_image1_0123456789.service"},
		{CleanupUnit("test"), "strata-cleanup@test.service"},
		{UpperUnit("test"), "strata-upper-test.service"},
		{ContainerRoot("test"), "/var/lib/machines/test"},
		{LayersDir, "/run/strata/layers"},
		{StateDir, "/run/strata/state"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestInstance(t *testing.T) {
	for _, c := range []struct {
		unit, prefix, want string
		ok                 bool
	}{
		{"systemd-nspawn@test.service", ContainerPrefix, "test", true},
		{"strata-attach@loop_a_01.service", AttachPrefix, "loop_a_01", true},
		{"strata-upper-x.service", UpperPrefix, "x", true},
		{"strata-attach@x.service", CleanupPrefix, "", false},
		{"strata-cleanup@x.mount", CleanupPrefix, "", false},
	} {
		got, ok := Instance(c.unit, c.prefix)
		if got != c.want || ok != c.ok {
			t.Errorf("Instance(%q, %q) = %q, %v; want %q, %v", c.unit, c.prefix, got, ok, c.want, c.ok)
		}
	}
}

func TestRBDDevicePath(t *testing.T) {
	for _, c := range []struct{ pool, ns, image, snap, want string }{
		{"rbd", "", "image1", "", "/dev/rbd/rbd/image1"},
		{"rbd", "ns", "image1", "", "/dev/rbd/rbd/ns/image1"},
		{"rbd", "ns", "image1", "s1", "/dev/rbd/rbd/ns/image1@s1"},
		{"p", "", "i", "s", "/dev/rbd/p/i@s"},
	} {
		if got := RBDDevicePath(c.pool, c.ns, c.image, c.snap); got != c.want {
			t.Errorf("RBDDevicePath(%q, %q, %q, %q) = %q, want %q", c.pool, c.ns, c.image, c.snap, got, c.want)
		}
	}
}

// The mount-unit prefixes are systemd's escaping of the directories.
func TestMountPrefixes(t *testing.T) {
	for dir, prefix := range map[string]string{RunDir: RunMountPrefix, MachinesDir: MachinesMountPrefix} {
		if got := strings.TrimSuffix(units.MountName(dir), ".mount") + "-"; got != prefix {
			t.Errorf("mount units below %s begin %q, layout says %q", dir, got, prefix)
		}
	}
	if got := units.MountName(ContainerRoot("a-b")); !strings.HasPrefix(got, MachinesMountPrefix) {
		t.Errorf("%s does not begin with %s", got, MachinesMountPrefix)
	}
}
