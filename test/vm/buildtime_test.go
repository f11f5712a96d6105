//go:build vm && bench

package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBuildTime measures issue 5's "whole build time against the seed's manual
// procedure" where that procedure can run: in the VM (the ceph-common root, which has
// rbd, the rbd kernel module and squashfs-tools), against the suite's cluster, on the
// same source directory (a tmpfs copy of the VM root's /usr/bin by default) with the
// same compressor and the seed's -noI -noX:
//
//   - seed: `rbd create --image-feature layering --image-shared -s 10G`, `rbd device
//     map`, `mksquashfs . /dev/rbdN -noI -noX -noappend -comp C` from the directory,
//     `rbd device unmap`: from start to the unmapped image;
//   - strata-image: `strata-image build DIR --pool rbd --image I --force
//     --no-compress-inodes --no-compress-xattrs --compressor C` (squashfs into a
//     temporary file, librbd writes, read-back verification), and once more with
//     --no-verify.
//
// The methods alternate; medians of the times measured inside the guest. Both images
// of the last round are mapped read-only and mounted, and their file counts and
// squashfs sizes compared with each other (sanity, not timing). No timing is asserted;
// a failing procedure fails the test.
//
// Environment: STRATA_VM_BUILDTIME_ROUNDS (default 3), STRATA_VM_BUILDTIME_SRC (guest
// directory copied to the tmpfs source, default /usr/bin), STRATA_VM_BUILDTIME_COMP
// (default gzip, mksquashfs's own default).
func TestBuildTime(t *testing.T) {
	if imageTool != "strata-image" {
		t.Fatalf("TestBuildTime needs cmd/strata-image (image tool is %q)", imageTool)
	}
	t0 := time.Now()
	rootImg := ensureCephRoot(t)
	t.Logf("ceph-common root ready in %s", time.Since(t0).Round(time.Millisecond))
	rounds := 3
	if v := os.Getenv("STRATA_VM_BUILDTIME_ROUNDS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			rounds = n
		}
	}
	srcFrom := "/usr/bin"
	if v := os.Getenv("STRATA_VM_BUILDTIME_SRC"); v != "" {
		srcFrom = v
	}
	comp := "gzip"
	if v := os.Getenv("STRATA_VM_BUILDTIME_COMP"); v != "" {
		comp = v
	}

	binds := append(strataBinds(), Bind{Host: filepath.Join(binDir, "strata-image"), Guest: "/usr/local/bin/strata-image"})
	// Memory: the tmpfs source, strata-image's temporary squashfs in /tmp (tmpfs overlay)
	// and the page cache of both.
	e := newRBDEnv(t, Options{RootImage: rootImg, Binds: binds, Memory: 3072})
	e.must("modprobe", "rbd")
	const user = "strata-build" // osd 'profile rbd pool=rbd': may create and write images
	kr := "/etc/ceph/ceph.client." + user + ".keyring"
	if err := e.vm.WriteFile(kr, []byte(readHost(t, e.cl.Keyring(user))), 0o600); err != nil {
		t.Fatal(err)
	}
	mon := e.cl.MonV1()
	rbdConn := []string{"-m", mon, "--id", user, "--keyring", kr}

	// Versions in the guest (also: every tool is there).
	vers := strings.TrimSpace(e.must("sh", "-c", "mksquashfs -version 2>&1 | head -1; rbd --version; strata-image version; nproc"))
	t.Logf("guest tools:\n%s", vers)
	if out := e.must("sh", "-c", "ldd /usr/local/bin/strata-image | grep -c 'not found' || true"); strings.TrimSpace(out) != "0" {
		t.Fatalf("strata-image lacks libraries in the guest:\n%s", e.must("ldd", "/usr/local/bin/strata-image"))
	}

	// The source: a copy on a tmpfs of its own, so both read the same files from memory.
	src := "/run/buildtime-src"
	e.must("mkdir", "-p", src)
	e.must("mount", "-t", "tmpfs", "-o", "size=1536m", "buildtime-src", src)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = e.vm.Run(ctx, "umount", "-l", src)
	})
	e.must("cp", "-a", srcFrom+"/.", src+"/")
	srcBytes := strings.Fields(e.must("du", "-sb", src))[0]
	srcFiles := strings.TrimSpace(e.must("sh", "-c", "find "+src+" -mindepth 1 | wc -l"))
	t.Logf("source: copy of the guest's %s on tmpfs: %s bytes, %s entries; compressor %s", srcFrom, srcBytes, srcFiles, comp)

	timed := func(what string, d time.Duration, args ...string) (*Result, time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		r, err := e.vm.Exec(ctx, Command{Args: args, Dir: src})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if r.ExitCode != 0 {
			t.Fatalf("%s failed: %s", what, r)
		}
		return r, r.InGuest
	}

	// The seed's procedure as one shell script (timed inside the guest from its start to
	// the unmapped image). rbd device map prints the device (/dev/rbd0 in the seed).
	seed := func(img string) (*Result, time.Duration) {
		q := func(a []string) string { return strings.Join(a, " ") }
		script := fmt.Sprintf(`set -e
rbd %[1]s create --image-feature layering --image-shared -s 10G rbd/%[2]s
dev=$(rbd %[1]s device map rbd/%[2]s)
echo "mapped $dev"
cd %[3]s
t0=$(date +%%s%%N)
mksquashfs . "$dev" -noI -noX -noappend -comp %[4]s -no-progress
t1=$(date +%%s%%N)
echo "mksquashfs-ns $((t1-t0))"
rbd device unmap "$dev"
`, q(rbdConn), img, src, comp)
		return timed("seed procedure ("+img+")", 30*time.Minute, "sh", "-c", script)
	}
	strata := func(img string, extra ...string) (*Result, time.Duration) {
		// --no-verity: the seed procedure writes no hash tree either.
		args := append([]string{"strata-image", "build", src, "--pool", "rbd", "--image", img, "--force", "--no-verity",
			"--no-compress-inodes", "--no-compress-xattrs", "--compressor", comp,
			"--mon", mon, "--id", user, "--keyring", kr, "--progress", "none", "--tmpdir", "/tmp"}, extra...)
		return timed("strata-image build ("+img+")", 30*time.Minute, args...)
	}
	rm := func(img string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		r, err := e.vm.Run(ctx, append(append([]string{"rbd"}, rbdConn...), "rm", "--no-progress", "rbd/"+img)...)
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("rbd rm %s: %v %v", img, err, r)
		}
	}

	// The squashfs phase of each: mksquashfs onto the device (seed), mksquashfs into
	// the temporary file (strata-image's own report).
	seedPhase := func(r *Result) time.Duration {
		m := regexp.MustCompile(`mksquashfs-ns (\d+)`).FindStringSubmatch(r.Stdout)
		if m == nil {
			t.Fatalf("seed procedure: no mksquashfs time in its output:\n%s", r)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return time.Duration(n)
	}
	strataPhase := func(r *Result) time.Duration {
		m := regexp.MustCompile(`squashfs (\S+), upload`).FindStringSubmatch(r.Stdout)
		if m == nil {
			t.Fatalf("strata-image build: no squashfs time in its output:\n%s", r)
		}
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatalf("strata-image build: squashfs time %q: %v", m[1], err)
		}
		return d
	}
	type method struct {
		name  string
		run   func(img string) (*Result, time.Duration)
		phase func(r *Result) time.Duration
	}
	methods := []method{
		{"seed: rbd create + rbd device map + mksquashfs onto /dev/rbdN + rbd device unmap", seed, seedPhase},
		{"strata-image build DIR (verify on, the default)", func(img string) (*Result, time.Duration) { return strata(img) }, strataPhase},
		{"strata-image build DIR --no-verify", func(img string) (*Result, time.Duration) { return strata(img, "--no-verify") }, strataPhase},
	}
	times := make([][]time.Duration, len(methods))
	phases := make([][]time.Duration, len(methods))
	rests := make([][]time.Duration, len(methods))
	var last []*Result
	for round := 1; round <= rounds; round++ {
		last = make([]*Result, len(methods))
		// Alternate the order from round to round (a rotation), so neither always
		// runs first after the other's writes.
		for k := range methods {
			i := (k + round - 1) % len(methods)
			m := methods[i]
			img := fmt.Sprintf("bt-%d", i)
			// Same starting state for each: no image of that name, nothing mapped.
			e.must("sync")
			r, d := m.run(img)
			ph := m.phase(r)
			times[i] = append(times[i], d)
			phases[i] = append(phases[i], ph)
			rests[i] = append(rests[i], d-ph)
			last[i] = r
			t.Logf("round %d: %s: %s (mksquashfs %s, the rest %s)", round, m.name, d.Round(time.Millisecond),
				ph.Round(time.Millisecond), (d - ph).Round(time.Millisecond))
			if round < rounds {
				rm(img)
			}
		}
		if devs := e.rbdDevices(); len(devs) != 0 {
			t.Fatalf("round %d: still mapped: %v", round, devs)
		}
	}

	// Sanity: each image of the last round holds a squashfs that mounts, with the same
	// number of entries as the source, and the sizes are of the same class.
	sizes := make([]int64, len(methods))
	for i := range methods {
		img := fmt.Sprintf("bt-%d", i)
		dev := strings.TrimSpace(e.must(append(append([]string{"rbd"}, rbdConn...), "device", "map", "--read-only", "rbd/"+img)...))
		info := e.must("unsquashfs", "-s", dev)
		m := regexp.MustCompile(`Filesystem size (\d+) bytes`).FindStringSubmatch(info)
		if m == nil {
			t.Fatalf("%s: unsquashfs -s %s: no size:\n%s", img, dev, info)
		}
		sizes[i], _ = strconv.ParseInt(m[1], 10, 64)
		if !strings.Contains(info, "Compression "+comp) {
			t.Errorf("%s: not compressed with %s:\n%s", img, comp, info)
		}
		mnt := "/mnt/" + img
		e.must("mkdir", "-p", mnt)
		e.must("mount", "-t", "squashfs", "-o", "ro", dev, mnt)
		n := strings.TrimSpace(e.must("sh", "-c", "find "+mnt+" -mindepth 1 | wc -l"))
		diff, code, _ := e.try(5*time.Minute, "diff", "-r", "--no-dereference", src, mnt)
		e.must("umount", mnt)
		e.must("rbd", "device", "unmap", dev)
		if n != srcFiles {
			t.Errorf("%s: %s entries in the image, %s in the source", img, n, srcFiles)
		}
		if code != 0 {
			t.Errorf("%s: contents differ from the source:\n%.2000s", img, diff)
		}
		t.Logf("%s (%s): squashfs %d bytes, %s entries, mounts, same contents as the source", img, methods[i].name, sizes[i], n)
	}
	for i := 1; i < len(sizes); i++ {
		r := float64(sizes[i]) / float64(sizes[0])
		if r < 0.9 || r > 1.1 {
			t.Errorf("squashfs sizes differ by more than 10%%: %s %d bytes vs seed %d bytes", methods[i].name, sizes[i], sizes[0])
		}
	}
	for i := range methods {
		rm(fmt.Sprintf("bt-%d", i))
	}

	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	sec := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	var b strings.Builder
	fmt.Fprintf(&b, "\nwhole image build in the VM (QEMU TCG, %s, 2 vCPUs), source: tmpfs copy of %s (%s bytes, %s entries), -comp %s -noI -noX, %d rounds, alternating, medians (min-max) of the time inside the guest:\n\n",
		strings.TrimSpace(readHost(t, filepath.Join(DefaultKernel(), "version"))), srcFrom, srcBytes, srcFiles, comp, rounds)
	fmt.Fprintf(&b, "| method | whole build | of which mksquashfs | the rest (Ceph, map/upload, verify) | squashfs size | whole vs seed |\n|---|---:|---:|---:|---:|---:|\n")
	ref := med(times[0])
	for i, m := range methods {
		mn, mx := minmax(times[i])
		fmt.Fprintf(&b, "| %s | %s (%s-%s) | %s | %s | %d | %.2fx |\n", m.name, sec(med(times[i])), sec(mn), sec(mx),
			sec(med(phases[i])), sec(med(rests[i])), sizes[i], float64(med(times[i]))/float64(ref))
	}
	for i := 1; i < len(methods); i++ {
		if out := strings.TrimSpace(last[i].Stdout); out != "" {
			fmt.Fprintf(&b, "\nlast round's %s said:\n%s\n", methods[i].name, out)
		}
	}
	t.Log(b.String())
	fmt.Println(b.String())
}
