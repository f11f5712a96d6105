//go:build vm && bench

package vm

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/image"
)

// TestVerityCost measures what dm-verity costs (docs/PERFORMANCE.md), as
// ratios against the same squashfs without it: the image file build on
// the host, and in the VM (the stock kernel's dm-verity, QEMU TCG) the
// start of a booting container to machine ready (systemctl start returns
// when the nested systemd says READY: --notify-ready) and a sequential
// read of the root's largest files inside the container, after dropping
// the page cache. Loop images (no cluster): the verity step is the same
// over RBD. Rounds alternate plain and verified; the first is a warm-up.
func TestVerityCost(t *testing.T) {
	dir := t.TempDir()
	plain, verified := filepath.Join(dir, "plain.img"), filepath.Join(dir, "verity.img")
	t0 := time.Now()
	if _, err := image.BuildFile(context.Background(), rootSqfs, plain, image.BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	buildPlain := time.Since(t0)
	t0 = time.Now()
	res, err := image.BuildFile(context.Background(), rootSqfs, verified, image.BuildOptions{Verity: true})
	if err != nil {
		t.Fatal(err)
	}
	buildVerity := time.Since(t0)
	vm, err := Boot(t, Options{Binds: append(strataBinds(), Bind{Host: dir, Guest: "/srv/images"})})
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	e := &rbdEnv{t: t, vm: vm}
	e.define(map[string]string{
		"plain":  overlayDefinition(map[string]any{"kind": "attach", "attach": map[string]any{"fs_type": "squashfs", "attach": map[string]any{"kind": "loopback", "loopback": map[string]any{"base": "root", "path": "/srv/images/plain.img"}}}}),
		"verity": verityDefinition("/srv/images/verity.img", res.Verity.RootHashHex()),
	})
	const rounds = 3
	var starts, reads, randoms [2][]float64 // [plain, verity]: seconds, MiB/s, reads/s
	for round := 0; round <= rounds; round++ {
		for i, name := range []string{"plain", "verity"} {
			d := e.startContainer(name)
			e.checkMachineRunning(name)
			e.must("sh", "-c", "sync && echo 3 > /proc/sys/vm/drop_caches")
			rate := e.sequentialRead(name)
			e.must("sh", "-c", "sync && echo 3 > /proc/sys/vm/drop_caches")
			iops := e.randomRead(name)
			e.stop(name)
			e.waitReleased(2 * time.Minute)
			t.Logf("round %d %s: start %s, read %.1f MiB/s, %.0f random reads/s", round, name, d.Round(time.Millisecond), rate, iops)
			if round > 0 {
				starts[i] = append(starts[i], d.Seconds())
				reads[i] = append(reads[i], rate)
				randoms[i] = append(randoms[i], iops)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\ndm-verity against the same squashfs without it (%s squashfs; VM: QEMU TCG, %s; %d rounds after a warm-up, alternating, medians):\n\n",
		image.FormatBytes(res.SquashfsSize), strings.TrimSpace(readHost(t, filepath.Join(DefaultKernel(), "version"))), rounds)
	fmt.Fprintf(&b, "| | without verity | with verity | ratio |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| image file build (host, one run) | %s | %s | %.2fx |\n", buildPlain.Round(time.Millisecond), buildVerity.Round(time.Millisecond), buildVerity.Seconds()/buildPlain.Seconds())
	fmt.Fprintf(&b, "| start to machine ready | %.1f s | %.1f s | %.2fx |\n", median(starts[0]), median(starts[1]), median(starts[1])/median(starts[0]))
	fmt.Fprintf(&b, "| sequential read in the container, cold cache | %.1f MiB/s | %.1f MiB/s | %.2fx |\n", median(reads[0]), median(reads[1]), median(reads[1])/median(reads[0]))
	fmt.Fprintf(&b, "| random 4 KiB reads in the container, cold cache | %.0f /s | %.0f /s | %.2fx |\n", median(randoms[0]), median(randoms[1]), median(randoms[1])/median(randoms[0]))
	t.Log(b.String())
}

// randomRead reads 2000 random 4 KiB blocks of the 20 largest files under
// the container's /usr (the same blocks from either image: a fixed seed)
// and returns reads per second, timed inside the container. Perl because
// perl-base is essential in Debian, so the container has it, and one
// process keeps fork and exec out of the measure.
func (e *rbdEnv) randomRead(name string) float64 {
	e.t.Helper()
	out := e.must("systemd-run", "--machine="+name, "--wait", "--pipe", "--quiet", "/bin/sh", "-c",
		`f=$(find /usr -xdev -type f -size +1M -printf '%s %p\n' | sort -n | tail -20 | cut -d' ' -f2)
s=$(date +%s%N)
n=$(perl -e 'srand(42); my @h = map { open(my $h, "<", $_) or die "$_: $!"; $h } sort @ARGV;
my $n = 0; for (1..2000) { my $h = $h[int(rand(@h))]; my $blocks = int((-s $h) / 4096);
sysseek($h, int(rand($blocks)) * 4096, 0) or die; $n += sysread($h, my $b, 4096) == 4096 } print $n' $f)
t=$(date +%s%N)
echo $((t-s)) $n`)
	var ns, n float64
	if _, err := fmt.Sscan(out, &ns, &n); err != nil || ns <= 0 || n != 2000 {
		e.t.Fatalf("the random read in %s printed %q (want the time and 2000 full reads)", name, out)
	}
	return n / (ns / 1e9)
}

// sequentialRead reads the 20 largest files under the container's /usr
// (the same files from either image) and returns MiB/s, timed inside the
// container.
func (e *rbdEnv) sequentialRead(name string) float64 {
	e.t.Helper()
	out := e.must("systemd-run", "--machine="+name, "--wait", "--pipe", "--quiet", "/bin/sh", "-c",
		`f=$(find /usr -xdev -type f -size +1M -printf '%s %p\n' | sort -n | tail -20 | cut -d' ' -f2)
s=$(date +%s%N); cat $f > /dev/null; t=$(date +%s%N)
echo $((t-s)) $(cat $f | wc -c)`)
	var ns, bytes float64
	if _, err := fmt.Sscan(out, &ns, &bytes); err != nil || ns <= 0 {
		e.t.Fatalf("the read in %s printed %q", name, out)
	}
	return bytes / (1 << 20) / (ns / 1e9)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
