//go:build integration && bench

package integration

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/test/testbed"
)

// floorStart and floorStop do by hand what Strata's units do, as a minimal
// shell script would: the floor Strata's start and stop are measured against.
const floorStart = `set -e
dev=$(losetup --find --show --read-only /srv/images/base.sqfs)
mkdir -p /run/floor/layer /run/floor/upper /var/lib/machines/floor
mount -t squashfs -o ro "$dev" /run/floor/layer
mount -t tmpfs -o mode=0755,size=25% tmpfs /run/floor/upper
mkdir -p /run/floor/upper/upper /run/floor/upper/work
mount -t overlay -o lowerdir=/run/floor/layer,upperdir=/run/floor/upper/upper,workdir=/run/floor/upper/work overlay /var/lib/machines/floor
systemd-run --quiet --unit=floor --service-type=notify -p KillMode=mixed -p Delegate=yes -p Slice=machine.slice \
  systemd-nspawn --quiet --keep-unit --register=yes --machine=floor --directory=/var/lib/machines/floor --boot --notify-ready=yes
`

const floorStop = `set -e
systemctl stop floor.service
umount /var/lib/machines/floor
umount /run/floor/upper
dev=$(findmnt -n -o SOURCE /run/floor/layer)
umount /run/floor/layer
losetup -d "$dev"
`

// TestStartStopLatency measures `systemctl start` (→ the machine's systemd
// is ready) and `systemctl stop` (→ every unit of the chain inactive) of a
// Strata container against the floor script, alternating, and prints the
// medians and ratios for docs/PERFORMANCE.md.
func TestStartStopLatency(t *testing.T) {
	for _, pause := range []time.Duration{1200 * time.Millisecond, 0} {
		t.Run(fmt.Sprintf("pause=%s", pause), func(t *testing.T) { latency(t, pause) })
	}
}

func latency(t *testing.T, pause time.Duration) {
	n := boot(t, testbed.Options{})
	n.define("demo.json", demo)
	n.run("systemctl", "daemon-reload")
	rounds := 7
	var sStart, sStop, fStart, fStop []time.Duration
	// A pause before each step lets systemd's mountinfo rate limit (5
	// events a second) recover, as it would between real starts; without
	// it a start right after a stop waits up to a second on the limit.
	timed := func(f func()) time.Duration {
		time.Sleep(pause)
		t0 := time.Now()
		f()
		return time.Since(t0)
	}
	for i := 0; i < rounds+1; i++ {
		a := timed(func() { n.run("systemctl", "start", "systemd-nspawn@demo.service") })
		b := timed(func() {
			n.run("systemctl", "stop", "systemd-nspawn@demo.service")
			n.waitInactive(n.strataUnits()...)
		})
		c := timed(func() { n.run("sh", "-c", floorStart) })
		d := timed(func() { n.run("sh", "-c", floorStop) })
		if i == 0 {
			continue // warm-up: page cache, first daemon-reload effects
		}
		sStart, sStop, fStart, fStop = append(sStart, a), append(sStop, b), append(fStart, c), append(fStop, d)
	}
	n.assertReleased()
	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 0, 64) }
	var b strings.Builder
	fmt.Fprintf(&b, "\npause %s between steps\n\n| | Strata (median of %d) | floor script | ratio |\n|---|---|---|---|\n", pause, rounds)
	fmt.Fprintf(&b, "| start → machine ready | %s ms | %s ms | %.2f |\n", ms(med(sStart)), ms(med(fStart)), float64(med(sStart))/float64(med(fStart)))
	fmt.Fprintf(&b, "| stop → all released | %s ms | %s ms | %.2f |\n", ms(med(sStop)), ms(med(fStop)), float64(med(sStop))/float64(med(fStop)))
	fmt.Print(b.String())
	t.Logf("all: strata start %v stop %v; floor start %v stop %v", sStart, sStop, fStart, fStop)
}

// TestRollOutLatency measures a roll-out as users do it (edit the image,
// daemon-reload, restart: until the machine is ready on the new image and
// the old one is released) against a plain restart of an unchanged
// definition, alternating, for docs/PERFORMANCE.md.
func TestRollOutLatency(t *testing.T) {
	n := boot(t, testbed.Options{})
	defs := []string{demo, n.version("/var/tmp/v2.sqfs")}
	n.define("demo.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@demo.service")
	rounds := 7
	var plain, rollout []time.Duration
	cur := 0
	for i := 0; i < rounds+1; i++ {
		time.Sleep(1200 * time.Millisecond) // the mountinfo rate limit, as in latency()
		t0 := time.Now()
		n.run("systemctl", "daemon-reload")
		n.run("systemctl", "restart", "systemd-nspawn@demo.service")
		a := time.Since(t0)
		time.Sleep(1200 * time.Millisecond)
		cur = 1 - cur
		n.define("demo.json", defs[cur])
		t0 = time.Now()
		n.run("systemctl", "daemon-reload")
		n.run("systemctl", "restart", "systemd-nspawn@demo.service")
		n.onlyNeeded()
		b := time.Since(t0)
		if i > 0 {
			plain, rollout = append(plain, a), append(rollout, b)
		}
	}
	n.stopAll("demo")
	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	fmt.Printf("\n| | median of %d |\n|---|---|\n| reload + restart, unchanged | %d ms |\n| reload + restart onto a new image, old one released | %d ms |\n| ratio | %.2f |\n",
		rounds, med(plain).Milliseconds(), med(rollout).Milliseconds(), float64(med(rollout))/float64(med(plain)))
	t.Logf("plain %v; roll-out %v", plain, rollout)
}
