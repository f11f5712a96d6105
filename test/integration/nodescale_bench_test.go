//go:build integration && bench

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/test/testbed"
)

// TestNodeScale measures one node running many containers on one image
// (docs/SCALE.md, issue 11): for 1, 10 and 50 booting containers defined
// at once, the time from one `systemctl start` of all of them to all
// machines ready, the memory the machine slice holds then, what is
// attached (one attach unit and one layer mount, however many
// containers), and the time to stop them all with nothing left
// (test/leftover, assertReleased). STRATA_SCALE="1 10 50" changes the
// counts.
func TestNodeScale(t *testing.T) {
	counts := []int{1, 10, 50}
	if v := os.Getenv("STRATA_SCALE"); v != "" {
		counts = nil
		for _, f := range strings.Fields(v) {
			c, err := strconv.Atoi(f)
			if err != nil || c < 1 {
				t.Fatalf("STRATA_SCALE=%q: want counts of containers", v)
			}
			counts = append(counts, c)
		}
	}
	n := boot(t, testbed.Options{})
	var b strings.Builder
	fmt.Fprintf(&b, "\n| containers | start all → all ready | per container | machine.slice memory | per container | attach units | layer mounts | stop all → released |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, count := range counts {
		names := make([]string, count)
		units := make([]string, count)
		for i := range names {
			names[i] = fmt.Sprintf("scale%02d", i)
			units[i] = layout.ContainerUnit(names[i])
			n.define(names[i]+".json", demo)
		}
		n.run("systemctl", "daemon-reload")
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		res, err := n.Run(ctx, append([]string{"systemctl", "start"}, units...)...)
		cancel()
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("starting %d containers: %v %v", count, err, res)
		}
		start := time.Since(t0)
		for _, name := range names {
			if state, _ := n.try("machinectl", "show", "--property=State", "--value", name); state != "running" {
				t.Fatalf("machine %s is %q after the start returned", name, state)
			}
		}
		mem, _ := strconv.ParseInt(n.run("systemctl", "show", "--property=MemoryCurrent", "--value", "machine.slice"), 10, 64)
		attaches := 0
		for _, l := range strings.Split(n.run("systemctl", "list-units", "--state=active", "--plain", "--no-legend", layout.AttachPrefix+"*"), "\n") {
			if strings.TrimSpace(l) != "" {
				attaches++
			}
		}
		layers := len(strings.Fields(n.run("sh", "-c", "findmnt --noheadings --list --output TARGET | grep '^"+layout.LayersDir+"/' || true")))
		if layers != 1 || attaches != 1 {
			t.Errorf("%d containers on one image: %d attach units and %d layer mounts, want one each (shared by name)", count, attaches, layers)
		}
		n.onlyNeeded()
		t0 = time.Now()
		n.run(append([]string{"systemctl", "stop"}, units...)...)
		n.waitInactive(n.strataUnits()...)
		stop := time.Since(t0)
		n.onlyNeeded()
		n.assertReleased()
		for _, name := range names {
			os.Remove(filepath.Join(n.defs, name+".json"))
		}
		n.run("systemctl", "daemon-reload")
		fmt.Fprintf(&b, "| %d | %.1f s | %.2f s | %s | %s | %d | %d | %.1f s |\n", count, start.Seconds(), start.Seconds()/float64(count),
			memory(mem), memory(mem/int64(count)), attaches, layers, stop.Seconds())
		t.Logf("%d containers: start %s, stop %s, machine.slice %s", count, start.Round(time.Millisecond), stop.Round(time.Millisecond), memory(mem))
	}
	fmt.Print(b.String())
}

// memory shows a cgroup's MemoryCurrent ("n/a" without memory accounting).
func memory(b int64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MiB", mib(b))
}
