//go:build vm

package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// ensureCephRoot builds the VM root variant with ceph-common.
func ensureCephRoot(t *testing.T) string {
	return ensureRootVariant(t, "STRATA_VM_CEPH_ROOT", "/var/lib/strata-vm/root-ceph", "ceph-common")
}

// TestMapLatency measures mapping rbd/image1 (read-only, restricted user) in the VM:
// strata-helper rbd-map (what the attach unit runs: sysfs, key in the kernel keyring,
// wait for /dev/rbd/rbd/image1) against `rbd device map` from ceph-common (which waits
// for udev too), `rbd device map -o noudev`, and a bare write to add_single_major from
// the shell (the kernel's own share). Each map is followed by its unmap; the methods
// alternate; the first round is a warm-up. Times are measured inside the guest (the
// agent's fork to exit), so the host round trip is not in them.
func TestMapLatency(t *testing.T) {
	t0 := time.Now()
	rootImg := ensureCephRoot(t)
	t.Logf("ceph-common root ready in %s", time.Since(t0).Round(time.Millisecond))
	// Strata's rule is not bound in: the test switches between it and Ceph's.
	binds := []Bind{}
	for _, b := range strataBinds() {
		if !strings.HasSuffix(b.Guest, ".rules") {
			binds = append(binds, b)
		}
	}
	e := newRBDEnv(t, Options{RootImage: rootImg, Binds: binds})
	e.must("modprobe", "rbd")
	kr := "/etc/ceph/ceph.client." + nodeUser + ".keyring"
	if err := e.vm.WriteFile(kr, []byte(readHost(t, e.cl.Keyring(nodeUser))), 0o600); err != nil {
		t.Fatal(err)
	}
	e.must("rbd", "--version")
	mon := e.monitor
	link := "/dev/rbd/rbd/image1"

	rule := readHost(t, filepath.Join(repoRoot, "helpers", "krbd", "50-strata-rbd.rules"))
	// Which udev rule makes /dev/rbd/POOL/IMAGE: Ceph's (ceph-common's 50-rbd.rules +
	// ceph-rbdnamer, a shell script) or Strata's (the helper's rbd-namer), never both.
	setRules := func(which string) {
		switch which {
		case "ceph":
			e.must("rm", "-f", "/etc/udev/rules.d/50-strata-rbd.rules", "/etc/udev/rules.d/50-rbd.rules")
		case "strata":
			if err := e.vm.WriteFile("/etc/udev/rules.d/50-strata-rbd.rules", []byte(rule), 0o644); err != nil {
				t.Fatal(err)
			}
			e.must("ln", "-sf", "/dev/null", "/etc/udev/rules.d/50-rbd.rules")
		}
		e.must("udevadm", "control", "--reload")
	}

	type method struct {
		rules string // the udev rule in place
		name  string
		mapc  []string
		unmap []string
		link  bool // the map waits for the /dev/rbd/rbd/image1 link
	}
	helper := "/usr/libexec/strata/strata-helper"
	helperMap := []string{helper, "rbd-map", "--pool=rbd", "--image=image1", "--monitors=" + mon, "--user=" + nodeUser, "--options=ro", "--keyring=" + kr}
	helperUnmap := []string{helper, "rbd-unmap", "--pool=rbd", "--image=image1"}
	rbdMap := []string{"rbd", "device", "map", "-m", mon, "--id", nodeUser, "--keyring", kr, "--read-only", "rbd/image1"}
	rbdUnmap := []string{"rbd", "device", "unmap", "rbd/image1"}
	line := fmt.Sprintf("%s:6789 name=%s,secret=%s,ro rbd image1 -", mon, nodeUser, e.key)
	shellMap := []string{"sh", "-c", "echo '" + line + "' > /sys/bus/rbd/add_single_major"}
	shellMapWait := []string{"sh", "-c", "echo '" + line + "' > /sys/bus/rbd/add_single_major && while [ ! -e " + link + " ]; do sleep 0.01; done"}
	shellUnmap := []string{"sh", "-c", "echo 0 > /sys/bus/rbd/remove_single_major"}
	methods := []method{
		{"strata", "strata-helper rbd-map", helperMap, helperUnmap, true},
		{"strata", "rbd device map", rbdMap, rbdUnmap, true},
		{"strata", "shell write + wait for the link", shellMapWait, shellUnmap, true},
		{"ceph", "strata-helper rbd-map", helperMap, helperUnmap, true},
		{"ceph", "rbd device map", rbdMap, rbdUnmap, true},
		{"ceph", "rbd device map -o noudev", append(append([]string(nil), rbdMap[:len(rbdMap)-1]...), "-o", "noudev", "rbd/image1"),
			[]string{"rbd", "device", "unmap", "-o", "noudev", "rbd/image1"}, false},
		{"ceph", "shell write + wait for the link", shellMapWait, shellUnmap, true},
		{"ceph", "shell write only", shellMap, shellUnmap, false},
	}
	rounds := 7
	if v := os.Getenv("STRATA_VM_LATENCY_ROUNDS"); v != "" {
		fmt.Sscan(v, &rounds)
	}
	maps := make([][]time.Duration, len(methods))
	unmaps := make([][]time.Duration, len(methods))
	timed := func(args []string) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		r, err := e.vm.Run(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		if r.ExitCode != 0 {
			t.Fatalf("%q: %s", args, r)
		}
		return r.InGuest
	}
	for round := 0; round <= rounds; round++ {
		cur := ""
		for i, m := range methods {
			if m.rules != cur {
				setRules(m.rules)
				cur = m.rules
			}
			// Nothing mapped before: device 0 every time, and the same starting state.
			if devs := e.rbdDevices(); len(devs) != 0 {
				t.Fatalf("before %s: still mapped: %v", m.name, devs)
			}
			dm := timed(m.mapc)
			if m.link {
				e.must("test", "-b", link)
			}
			// The unmap starts from a settled state whatever the map waited for.
			e.must("udevadm", "settle", "--timeout=60")
			du := timed(m.unmap)
			e.must("udevadm", "settle", "--timeout=60")
			if round == 0 {
				continue
			}
			maps[i] = append(maps[i], dm)
			unmaps[i] = append(unmaps[i], du)
		}
	}
	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	var b strings.Builder
	fmt.Fprintf(&b, "\nkrbd map latency in the VM (QEMU TCG, Debian %s), %d rounds after a warm-up, medians (min-max):\n\n",
		strings.TrimSpace(readHost(t, filepath.Join(DefaultKernel(), "version"))), rounds)
	fmt.Fprintf(&b, "| udev rule | method | map | unmap | map vs rbd device map (same rule) |\n|---|---|---|---|---|\n")
	ref := map[string]time.Duration{}
	for i, m := range methods {
		if m.name == "rbd device map" {
			ref[m.rules] = med(maps[i])
		}
	}
	for i, m := range methods {
		mn, mx := minmax(maps[i])
		un, ux := minmax(unmaps[i])
		fmt.Fprintf(&b, "| %s | %s | %s (%s-%s) | %s (%s-%s) | %.2fx |\n", m.rules, m.name,
			ms(med(maps[i])), ms(mn), ms(mx), ms(med(unmaps[i])), ms(un), ms(ux), float64(med(maps[i]))/float64(ref[m.rules]))
	}
	t.Log(b.String())
	// Issue 5's goal: the helper's map at most 0.5x of `rbd device map`, each with the
	// udev rule that comes with it (Strata's on Strata nodes, Ceph's with ceph-common).
	r := float64(med(maps[0])) / float64(ref["ceph"])
	t.Logf("strata-helper (Strata's rule) vs rbd device map (Ceph's rule): %.2fx (goal: at most 0.5x)", r)
	if r > 0.5 {
		// Measured, not asserted (a loaded machine slows TCG unevenly): reported.
		t.Logf("NOTE: above the 0.5x goal")
	}
}

func minmax(ds []time.Duration) (time.Duration, time.Duration) {
	mn, mx := ds[0], ds[0]
	for _, d := range ds {
		if d < mn {
			mn = d
		}
		if d > mx {
			mx = d
		}
	}
	return mn, mx
}
