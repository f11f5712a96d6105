//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/test/testbed"
)

// bootRead is what booting a container read from its layer.
type bootRead struct {
	Bytes int64         // read from the layer's loop device, attach to ready
	Start time.Duration // systemctl start of the container (its systemd ready)
}

var loopRE = regexp.MustCompile(`^loop[0-9]+$`)

// sectorsRead is field 3 of /sys/block/DEV/stat: 512-byte sectors read
// since the device was created (the counters are cumulative per device).
func (n *node) sectorsRead(dev string) int64 {
	n.t.Helper()
	stat := n.run("cat", "/sys/block/"+dev+"/stat")
	f := strings.Fields(stat)
	if len(f) < 3 {
		n.t.Fatalf("/sys/block/%s/stat: %q", dev, stat)
	}
	v, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		n.t.Fatalf("/sys/block/%s/stat: %q: %v", dev, stat, err)
	}
	return v
}

// measureBoot defines container name with def (a loopback layer whose
// image file is named file), attaches the layer, then starts the container
// and counts what its loop device read meanwhile: the superblock, the
// metadata and the files systemd and its units touch on their way to
// ready. It stops and removes the container afterwards.
func (n *node) measureBoot(name, file, def string) bootRead {
	n.t.Helper()
	n.define(name+".json", def)
	n.run("systemctl", "daemon-reload")
	// The only loopback attachment defined (its name escapes the file's).
	ids := strings.Fields(n.run("sh", "-c", "cd /run/systemd/generator && ls -d strata-attach@loop_*.service.d"))
	if len(ids) != 1 {
		n.t.Fatalf("want one loopback attach unit for %s, got %q", file, ids)
	}
	attach := strings.TrimSuffix(ids[0], ".d")
	attachment := strings.TrimSuffix(strings.TrimPrefix(attach, "strata-attach@"), ".service")
	n.run("systemctl", "start", attach)
	var dev string
	n.waitUntil("the device link of "+attachment, func() (bool, string) {
		out, code := n.try("readlink", "-e", layout.DevDir+"/"+attachment)
		dev = filepath.Base(out)
		return code == 0 && loopRE.MatchString(dev), out
	})
	// A device node used before may hold cached blocks of an older image.
	n.run("blockdev", "--flushbufs", "/dev/"+dev)
	before := n.sectorsRead(dev)
	start := time.Now()
	n.run("systemctl", "start", "systemd-nspawn@"+name+".service")
	took := time.Since(start)
	after := n.sectorsRead(dev)
	chain := n.strataUnits()
	n.run("systemctl", "stop", "systemd-nspawn@"+name+".service")
	n.waitInactive(chain...)
	if err := os.Remove(filepath.Join(n.defs, name+".json")); err != nil {
		n.t.Fatal(err)
	}
	n.run("systemctl", "daemon-reload")
	return bootRead{Bytes: (after - before) * 512, Start: took}
}

// The working set is measured (the smoke run of test/bench/workingset.sh):
// booting the testbed's root reads some of its squashfs, not none and not
// more than all of it.
func TestWorkingSetSmoke(t *testing.T) {
	n := boot(t, testbed.Options{})
	st, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	r := n.measureBoot("ws", "base.sqfs", layerDef("/srv/images/base.sqfs", "squashfs"))
	t.Logf("boot read %d of %d bytes (%.1f%%) in %s", r.Bytes, st.Size(), 100*float64(r.Bytes)/float64(st.Size()), r.Start.Round(time.Millisecond))
	if r.Bytes < 1<<20 || r.Bytes > st.Size() {
		t.Errorf("boot read %d bytes of a %d-byte image: want more than 1 MiB, at most the image", r.Bytes, st.Size())
	}
	n.assertReleased()
}
