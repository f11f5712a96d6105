//go:build integration && bench

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	strataimage "github.com/strata-project/strata/image"
	"github.com/strata-project/strata/test/testbed"
)

// wsVariant is one way to make the testbed root's image.
type wsVariant struct {
	fs   string // squashfs or erofs
	comp string // the compressor (erofs: lz4hc, lz4 or none)
	bs   string // squashfs block size (-b)
}

func (v wsVariant) name() string {
	if v.fs == strataimage.FSErofs {
		return "erofs-" + v.comp
	}
	return "squashfs-" + v.comp + "-" + v.bs
}

// wsVariants: $STRATA_WS_VARIANTS (names as above, space-separated) or
// every compressor mksquashfs has at 128K and 1M, and erofs's three.
func wsVariants(t *testing.T) []wsVariant {
	var all []wsVariant
	for _, bs := range []string{"128K", "1M"} {
		for _, c := range []string{"gzip", "xz", "zstd", "lz4"} {
			all = append(all, wsVariant{fs: strataimage.FSSquashfs, comp: c, bs: bs})
		}
	}
	for _, c := range []string{"none", "lz4", "lz4hc"} {
		all = append(all, wsVariant{fs: strataimage.FSErofs, comp: c})
	}
	want := strings.Fields(os.Getenv("STRATA_WS_VARIANTS"))
	if len(want) == 0 {
		return all
	}
	var picked []wsVariant
	for _, w := range want {
		found := false
		for _, v := range all {
			if v.name() == w {
				picked, found = append(picked, v), true
			}
		}
		if !found {
			t.Fatalf("STRATA_WS_VARIANTS: unknown variant %q", w)
		}
	}
	return picked
}

// make builds the variant's image of the testbed root in dir.
func (v wsVariant) make(t *testing.T, dir string) (string, time.Duration) {
	t.Helper()
	out := filepath.Join(dir, v.name())
	if _, err := os.Stat(out); err == nil {
		t.Logf("%s: made before, in %s", v.name(), dir)
		return out, 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	var err error
	// Made under another name: an interrupted build is never reused.
	final, out := out, out+".part"
	defer os.Remove(out)
	if v.fs == strataimage.FSErofs {
		err = strataimage.MakeErofs(ctx, testbed.DefaultRootDir(), out, dir, strataimage.ErofsOptions{Compressor: v.comp})
	} else {
		// mksquashfs itself: strata image build offers zstd, xz and gzip only.
		var o []byte
		o, err = exec.CommandContext(ctx, "mksquashfs", testbed.DefaultRootDir(), out,
			"-noappend", "-no-progress", "-quiet", "-comp", v.comp, "-b", v.bs).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("mksquashfs: %v: %s", err, o)
		}
	}
	if err == nil {
		err = os.Rename(out, final)
	}
	if err != nil {
		t.Fatalf("%s: %v", v.name(), err)
	}
	return final, time.Since(start)
}

// TestWorkingSet measures, for each variant, the bytes a node reads from
// the layer device to boot the testbed's root to ready (median of
// $RUNS, default 3), against the image size, and writes a Markdown table
// to $STRATA_WS_TABLE (and the log). test/bench/workingset.sh runs it.
func TestWorkingSet(t *testing.T) {
	runs, _ := strconv.Atoi(envOr("RUNS", "3"))
	if runs < 1 {
		runs = 1
	}
	// $STRATA_WS_DIR keeps the images between runs (they take minutes).
	dir := envOr("STRATA_WS_DIR", t.TempDir())
	variants := wsVariants(t)
	var binds []testbed.Bind
	files := map[string]string{}
	made := map[string]time.Duration{}
	for _, v := range variants {
		f, took := v.make(t, dir)
		files[v.name()], made[v.name()] = f, took
		binds = append(binds, testbed.Bind{Host: f, Guest: "/srv/ws/" + v.name(), ReadOnly: true})
	}
	// The host's loop nodes are bound in at boot: enough for every attach,
	// should detached devices not be free again yet.
	n := boot(t, testbed.Options{Binds: binds, LoopDevices: len(variants)*runs + 4})
	var b strings.Builder
	fmt.Fprintf(&b, "| image | size | read to boot | read/size | start (median) | mkfs |\n|---|---:|---:|---:|---:|---:|\n")
	for _, v := range variants {
		st, err := os.Stat(files[v.name()])
		if err != nil {
			t.Fatal(err)
		}
		var reads []int64
		var starts []time.Duration
		for i := 0; i < runs; i++ {
			r := n.measureBoot("ws", v.name(), layerDef("/srv/ws/"+v.name(), v.fs))
			reads, starts = append(reads, r.Bytes), append(starts, r.Start)
		}
		sort.Slice(reads, func(i, j int) bool { return reads[i] < reads[j] })
		sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
		read := reads[len(reads)/2]
		fmt.Fprintf(&b, "| %s | %.1f MiB | %.1f MiB | %.1f%% | %s | %s |\n", v.name(), mib(st.Size()), mib(read),
			100*float64(read)/float64(st.Size()), starts[len(starts)/2].Round(time.Millisecond), made[v.name()].Round(100*time.Millisecond))
		if reads[0] != reads[len(reads)-1] {
			t.Logf("%s: reads vary between runs: %v", v.name(), reads)
		}
	}
	n.assertReleased()
	t.Logf("working set of the testbed root (%d runs each):\n%s", runs, b.String())
	if out := os.Getenv("STRATA_WS_TABLE"); out != "" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
