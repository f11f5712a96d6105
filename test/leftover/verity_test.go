package leftover

import (
	"reflect"
	"strings"
	"testing"
)

// verityTable is a node running "v" on a verified layer: the layer is
// mounted from the verity device, which stands on the mapped RBD image and
// a loop device over the image's hash tree.
const verityTable = `22 1 0:21 / / rw - ext4 /dev/vda rw
50 22 253:0 / /run/strata/layers/verity_r ro - squashfs /dev/mapper/verity_r ro
51 22 0:41 / /run/strata/upper/v rw - tmpfs tmpfs rw
52 22 0:42 / /var/lib/machines/v rw - overlay overlay rw,lowerdir=/run/strata/layers/verity_r,upperdir=/run/strata/upper/v/upper,workdir=/run/strata/upper/v/work
`

func verityView(t *testing.T, mounts string, running bool) View {
	t.Helper()
	v := view(t, mounts)
	v.Loops = map[string]string{"/dev/loop1": "/dev/rbd0"}
	v.Mapped = map[string]string{"/dev/rbd0": "rbd/img@v1"}
	v.Verity = map[string][]string{"/dev/mapper/verity_r": {"/dev/loop1", "/dev/rbd0"}}
	v.Attachments, v.Links, v.Containers = []string{"rbd_r", "verity_r"}, nil, []string{"v"}
	v.Units = []string{"strata-attach@rbd_r.service", "strata-attach@verity_r.service", "run-strata-layers-verity_r.mount"}
	v.Running = map[string]bool{"v": running}
	return v
}

func TestVerityLayerNeedsItsDeviceImageAndHashLoop(t *testing.T) {
	if extra := verityView(t, verityTable, true).Extra(); len(extra) != 0 {
		t.Errorf("a running container's verity device, its image and its hash tree's loop device are needed:\n%s", strings.Join(extra, "\n"))
	}
}

func TestVerityDeviceLeftAfterTheStop(t *testing.T) {
	v := verityView(t, strings.SplitAfter(verityTable, "\n")[0], false)
	v.Units, v.Containers = nil, nil
	want := []string{
		"mapped /dev/rbd0 rbd/img@v1",
		"loop device /dev/loop1 on /dev/rbd0",
		"verity device /dev/mapper/verity_r over /dev/loop1 /dev/rbd0",
		"2 attachment records [rbd_r verity_r] and 0 device links [] for the attached devices in use []",
	}
	if got := v.Extra(); !reflect.DeepEqual(got, want) {
		t.Errorf("extra:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
