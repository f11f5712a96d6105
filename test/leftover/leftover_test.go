package leftover

import (
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-project/strata/internal/mountinfo"
)

// table is a node running "web" on an nfs-loopback layer (a loop device on
// a file of an NFS layer), a local layer (the node's /dev/sdb: an attach
// unit, no record) and a bind scheme's tree (a directory of the node's,
// mounted from its own disk), with "old" stopped: its RBD layer, root and
// records left behind.
const table = `22 1 0:21 / / rw - ext4 /dev/vda rw
30 22 0:40 / /run/strata/layers/nfs_a rw - nfs 10.99.0.1:/export rw
31 22 7:0 / /run/strata/layers/loop_b ro - squashfs /dev/loop0 ro
32 22 8:1 / /run/strata/layers/local_c ro - squashfs /dev/sdb ro
33 22 0:41 / /run/strata/upper/web rw - tmpfs tmpfs rw
35 22 8:2 / /srv/trees/v1 ro - ext4 /dev/sdc ro
34 22 0:42 / /var/lib/machines/web rw - overlay overlay rw,lowerdir=/run/strata/layers/loop_b:/run/strata/layers/local_c:/srv/trees/v1,upperdir=/run/strata/upper/web/upper,workdir=/run/strata/upper/web/work
40 22 251:0 / /run/strata/layers/rbd_d ro - squashfs /dev/rbd0 ro
41 22 0:43 / /var/lib/machines/old rw - overlay overlay rw,lowerdir=/run/strata/layers/rbd_d,upperdir=/u,workdir=/w
`

func view(t *testing.T, mounts string) View {
	t.Helper()
	ms, err := mountinfo.Parse(strings.NewReader(mounts))
	if err != nil {
		t.Fatal(err)
	}
	return View{
		Mounts:      ms,
		Loops:       map[string]string{"/dev/loop0": "/run/strata/layers/nfs_a/img.sqfs", "/dev/loop7": "/srv/other.img"},
		Mapped:      map[string]string{"/dev/rbd0": "rbd/old@v1"},
		Attachments: []string{"loop_b", "rbd_d"},
		Links:       []string{"loop_b"},
		Containers:  []string{"old", "web"},
		Running:     map[string]bool{"web": true},
		Units: []string{"strata-attach@loop_b.service", "strata-attach@local_c.service", "run-strata-layers-loop_b.mount", "run-strata-layers-nfs_a.mount",
			"run-strata-upper-web.mount", "strata-health@web.timer", "strata-cleanup@old.service"},
	}
}

func TestExtraNamesWhatNoRunningContainerNeeds(t *testing.T) {
	got := view(t, table).Extra()
	want := []string{
		"layer /run/strata/layers/rbd_d (squashfs /dev/rbd0)",
		"mount /var/lib/machines/old",
		"mapped /dev/rbd0 rbd/old@v1",
		"2 attachment records [loop_b rbd_d] and 1 device links [loop_b] for the attached devices in use [/dev/loop0]",
		"container record old",
		"active unit strata-cleanup@old.service",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("extra:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestExtraIsEmptyWhenOnlyTheNeededIsLeft(t *testing.T) {
	v := view(t, strings.Join(strings.Split(table, "\n")[:7], "\n")+"\n")
	v.Mapped, v.Attachments, v.Containers = nil, []string{"loop_b"}, []string{"web"}
	v.Units = v.Units[:6]
	if extra := v.Extra(); len(extra) != 0 {
		t.Errorf("the NFS layer under the loop device, the local layer with its attach unit, the bind tree and web's own units are needed:\n%s", strings.Join(extra, "\n"))
	}
	v.Units = append(v.Units, "strata-attach@x.service") // one more attach unit than devices
	v.Loops["/dev/loop3"] = "/run/strata/layers/nfs_a/old.sqfs"
	if extra := v.Extra(); len(extra) != 2 || !strings.HasPrefix(extra[0], "loop device /dev/loop3 on ") || !strings.HasPrefix(extra[1], "3 active attach units for 2 devices") {
		t.Errorf("extra %q", extra)
	}
}

// host is this machine as a Node: the real commands and files.
type host struct{}

func (host) Output(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).Output()
	return string(out), err
}

func (host) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

// TestReadsARealNode reads this machine's mount table, loop devices, RBD
// mappings and records (it runs no systemd: the units are the testbed's
// and the VM's to read, in test/integration and test/vm).
func TestReadsARealNode(t *testing.T) {
	v := View{Loops: map[string]string{}, Mapped: map[string]string{}, Running: map[string]bool{}}
	for _, step := range []func(Node) error{v.readLoops, v.readMapped, v.readRecords} {
		if err := step(host{}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := exec.Command("losetup", "--list", "--noheadings", "--output=NAME").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(strings.Fields(string(want))); got != len(v.Loops) {
		t.Errorf("%d loop devices read, losetup lists %d", len(v.Loops), got)
	}
	for dev, file := range v.Loops {
		if !strings.HasPrefix(dev, "/dev/loop") || !strings.HasPrefix(file, "/") {
			t.Errorf("loop device %q on %q", dev, file)
		}
	}
	full, err := Read(host{})
	if _, ok := full.Mount("/"); !ok {
		t.Errorf("no / among %d mounts (%v)", len(full.Mounts), err)
	}
}
