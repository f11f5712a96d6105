package mountinfo

import (
	"reflect"
	"strings"
	"testing"
)

const table = `22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/a
90 22 7:0 / /run/strata/layers/loop_x_1 ro,relatime - squashfs /dev/loop0 ro,errors=continue
91 22 0:50 / /run/strata/upper/demo rw - tmpfs tmpfs rw,size=1048576k,mode=755
92 22 0:51 / /var/lib/machines/demo rw - overlay overlay rw,lowerdir=/run/strata/layers/loop_x_1:/run/strata/layers/a\:b,upperdir=/run/strata/upper/demo/upper,workdir=/run/strata/upper/demo/work
93 22 0:52 / /mnt/with\040space rw shared:5 - tmpfs tmp\134x rw
`

func TestParse(t *testing.T) {
	ms, err := Parse(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 5 {
		t.Fatalf("got %d mounts", len(ms))
	}
	if ms[1].ID != 90 || ms[1].Point != "/run/strata/layers/loop_x_1" || ms[1].Source != "/dev/loop0" || ms[1].FSType != "squashfs" || ms[1].Device != "7:0" {
		t.Errorf("layer: %+v", ms[1])
	}
	if got, want := ms[3].Lowers(), []string{"/run/strata/layers/loop_x_1", "/run/strata/layers/a:b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lowers %q, want %q", got, want)
	}
	if up, ok := ms[3].Option("upperdir"); !ok || up != "/run/strata/upper/demo/upper" {
		t.Errorf("upperdir %q %v", up, ok)
	}
	if ms[4].Point != "/mnt/with space" || ms[4].Source != `tmp\x` {
		t.Errorf("escapes: %+v", ms[4])
	}
	if ms[4].Line != strings.Split(table, "\n")[4] {
		t.Errorf("line %q is not the kernel's", ms[4].Line)
	}
	if ms[1].Lowers() != nil {
		t.Error("a squashfs has no lowers")
	}
}

func TestParseRefusesGarbage(t *testing.T) {
	if _, err := Parse(strings.NewReader("1 2 3\n")); err == nil {
		t.Error("a short line was accepted")
	}
	if _, err := Parse(strings.NewReader("x 1 0:21 / / rw - tmpfs tmpfs rw\n")); err == nil {
		t.Error("a line without a numeric mount ID was accepted")
	}
}

func TestReadsTheRealTable(t *testing.T) {
	ms, err := Read(Path)
	if err != nil {
		t.Fatal(err)
	}
	root := false
	ids := map[int]bool{}
	for _, m := range ms {
		root = root || m.Point == "/"
		if m.ID <= 0 || ids[m.ID] {
			t.Errorf("mount ID %d of %s is not a positive ID of its own", m.ID, m.Point)
		}
		ids[m.ID] = true
	}
	if !root {
		t.Errorf("no / in the real mount table (%d entries)", len(ms))
	}
}

func TestUnder(t *testing.T) {
	for _, c := range []struct {
		p, dir string
		want   bool
	}{{"/a/b", "/a", true}, {"/a", "/a", true}, {"/ab", "/a", false}, {"/a/b", "/a/", true}} {
		if got := Under(c.p, c.dir); got != c.want {
			t.Errorf("Under(%q, %q) = %v", c.p, c.dir, got)
		}
	}
}
