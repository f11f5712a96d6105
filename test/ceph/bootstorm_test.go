//go:build ceph && pacific && cgo

// The boot-storm replay: N clients (librbd through go-ceph, each with its
// own cluster connection, as N nodes would have) replay a recorded boot
// read trace against one snapshot at once; then the same N read the whole
// image (the Warewulf model: each node copies the image into RAM). For
// each N: time to complete per client (median, p99), the reads and bytes
// the cluster served, and reads per RADOS object.
//
// The smoke run (N = 1, 2) is part of make check-ceph; the benchmark is
// test/bench/bootstorm.sh (STRATA_STORM_N="1 2 4 8 16 32 64",
// STRATA_STORM_OUT=FILE for the table).
package ceph_test

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	cephtest "github.com/strata-project/strata/test/ceph"
	"github.com/strata-project/strata/test/testbed"
)

// objectSize is the image's (strata image build's default, order 22).
const objectSize = 4 << 20

// bootTrace is a recorded boot: reads as byte offset and length, in issue
// order, of an image of Size bytes (test/bench/boottrace/*.csv).
type bootTrace struct {
	Reads  [][2]int64
	Size   int64
	SHA256 string
}

func loadTrace(t *testing.T, path string) bootTrace {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tr bootTrace
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		l := sc.Text()
		if v, ok := strings.CutPrefix(l, "# image-size: "); ok {
			tr.Size, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(l, "# image-sha256: "); ok {
			tr.SHA256 = v
		}
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		a, b, ok := strings.Cut(l, ",")
		off, err1 := strconv.ParseInt(a, 10, 64)
		n, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || off < 0 || n <= 0 {
			t.Fatalf("%s:%d: %q is not offset,length", path, line, l)
		}
		tr.Reads = append(tr.Reads, [2]int64{off, n})
	}
	if tr.Size == 0 || len(tr.Reads) == 0 {
		t.Fatalf("%s: no image-size header or no reads", path)
	}
	for _, r := range tr.Reads {
		if r[0]+r[1] > tr.Size {
			t.Fatalf("%s: read %d+%d past the image's %d bytes", path, r[0], r[1], tr.Size)
		}
	}
	return tr
}

func (tr bootTrace) bytes() (n int64) {
	for _, r := range tr.Reads {
		n += r[1]
	}
	return n
}

// perObject is what one client asks each RADOS object for: librbd splits
// a read at object boundaries into one op per object.
type perObject struct{ ops, bytes []int64 }

func split(reads [][2]int64, size int64) perObject {
	objs := int((size + objectSize - 1) / objectSize)
	p := perObject{make([]int64, objs), make([]int64, objs)}
	for _, r := range reads {
		for off, end := r[0], r[0]+r[1]; off < end; {
			o := off / objectSize
			next := min(end, (o+1)*objectSize)
			p.ops[o]++
			p.bytes[o] += next - off
			off = next
		}
	}
	return p
}

// layout is an RBD object layout: object size, stripe unit and count
// (unit = object size and count 1 is no striping).
type layout struct {
	name                string
	object, unit, count int64
}

// objectOf is the object holding image offset off (Ceph's striping:
// stripe units go round-robin over count objects, object set by object
// set).
func (l layout) objectOf(off int64) int64 {
	block := off / l.unit
	stripe, pos := block/l.count, block%l.count
	set := stripe / (l.object / l.unit)
	return set*l.count + pos
}

// hottest says, for one client's reads under layout l, how many objects
// they touch and how many reads the busiest one serves: one op per object
// a read touches (librbd sends one op per object extent of a read).
func (l layout) hottest(reads [][2]int64) (touched int, most int64) {
	ops := map[int64]int64{}
	for _, r := range reads {
		seen := map[int64]bool{}
		for off := r[0]; off < r[0]+r[1]; off = (off/l.unit + 1) * l.unit {
			seen[l.objectOf(off)] = true
		}
		for o := range seen {
			ops[o]++
		}
	}
	for _, v := range ops {
		most = max(most, v)
	}
	return len(ops), most
}

var layouts = []layout{
	{"4 MiB objects (the default)", 4 << 20, 4 << 20, 1},
	{"1 MiB objects", 1 << 20, 1 << 20, 1},
	{"4 MiB objects, stripe unit 64 KiB, count 16", 4 << 20, 64 << 10, 16},
	{"1 MiB objects, stripe unit 64 KiB, count 16", 1 << 20, 64 << 10, 16},
}

func TestLayoutObjectOf(t *testing.T) {
	striped := layout{object: 4 << 20, unit: 64 << 10, count: 16}
	for _, c := range []struct {
		l    layout
		off  int64
		want int64
	}{
		{layouts[0], 0, 0}, {layouts[0], 4<<20 - 1, 0}, {layouts[0], 4 << 20, 1},
		{striped, 0, 0}, {striped, 64 << 10, 1}, {striped, 15 * 64 << 10, 15},
		{striped, 16 * 64 << 10, 0}, // the second stripe starts over at object 0
		{striped, 64 << 20, 16},     // 16 objects of 4 MiB filled: the next set
		{striped, 64<<20 - 1, 15},
	} {
		if got := c.l.objectOf(c.off); got != c.want {
			t.Errorf("%+v objectOf(%d) = %d, want %d", c.l, c.off, got, c.want)
		}
	}
	// One read over two stripe units is two ops, on two objects.
	if n, most := striped.hottest([][2]int64{{0, 128 << 10}}); n != 2 || most != 1 {
		t.Errorf("hottest = %d, %d; want 2 objects, 1 read each", n, most)
	}
}

func (p perObject) touched() (n int) {
	for _, v := range p.ops {
		if v > 0 {
			n++
		}
	}
	return n
}

func sum(v []int64) (n int64) {
	for _, x := range v {
		n += x
	}
	return n
}

// wholeImage is the Warewulf model's reads: the image front to back in
// object-sized reads.
func wholeImage(size int64) [][2]int64 {
	var out [][2]int64
	for off := int64(0); off < size; off += objectSize {
		out = append(out, [2]int64{off, min(objectSize, size-off)})
	}
	return out
}

// stormClient is one node: its own connection and its open snapshot.
type stormClient struct {
	conn *rados.Conn
	ioc  *rados.IOContext
	img  *rbd.Image
}

// openClient connects as the cluster's read-only node user, without
// librbd's cache or readahead, so that every read of the trace is a read
// the cluster serves (a krbd node has neither: the page cache above the
// device is what the trace was recorded under).
func openClient(c *cephtest.Cluster, image, snap string) (*stormClient, error) {
	conn, err := rados.NewConnWithUser(c.Node.ID)
	if err != nil {
		return nil, err
	}
	sc := &stormClient{conn: conn}
	for _, kv := range [][2]string{{"rbd_cache", "false"}, {"rbd_readahead_max_bytes", "0"}} {
		if err := conn.SetConfigOption(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	if err := conn.ReadConfigFile(c.Conf); err != nil {
		return nil, err
	}
	if err := conn.SetConfigOption("keyring", c.Node.Keyring); err != nil {
		return nil, err
	}
	if err := conn.Connect(); err != nil {
		return nil, err
	}
	if sc.ioc, err = conn.OpenIOContext(c.Pool); err != nil {
		sc.close()
		return nil, err
	}
	if sc.img, err = rbd.OpenImageReadOnly(sc.ioc, image, snap); err != nil {
		sc.close()
		return nil, err
	}
	return sc, nil
}

func (sc *stormClient) close() {
	if sc.img != nil {
		sc.img.Close()
	}
	if sc.ioc != nil {
		sc.ioc.Destroy()
	}
	sc.conn.Shutdown()
}

// replay reads reads in order, depth at a time (1: each after the one
// before, as a boot's mostly dependent reads go), and returns the bytes
// read.
func (sc *stormClient) replay(reads [][2]int64, depth int) (int64, error) {
	var next, total atomic.Int64
	errs := make([]error, depth)
	var wg sync.WaitGroup
	for w := range depth {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, objectSize)
			for i := next.Add(1) - 1; i < int64(len(reads)); i = next.Add(1) - 1 {
				r := reads[i]
				got, err := sc.img.ReadAt(buf[:r[1]], r[0])
				if err != nil {
					errs[w] = fmt.Errorf("read %d+%d: %w", r[0], r[1], err)
					return
				}
				total.Add(int64(got))
			}
		}()
	}
	wg.Wait()
	return total.Load(), errors.Join(errs...)
}

// storm opens n clients, then starts them together and returns each one's
// time to finish reads.
func storm(t *testing.T, c *cephtest.Cluster, image, snap string, n, depth int, reads [][2]int64, want int64) []time.Duration {
	t.Helper()
	clients := make([]*stormClient, n)
	for i := range clients {
		sc, err := openClient(c, image, snap)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		clients[i] = sc
		defer sc.close()
	}
	took := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i, sc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			start := time.Now()
			got, err := sc.replay(reads, depth)
			took[i] = time.Since(start)
			if err == nil && got != want {
				err = fmt.Errorf("read %d bytes, want %d", got, want)
			}
			errs[i] = err
		}()
	}
	close(gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d of %d: %v", i, n, err)
		}
	}
	slices.Sort(took)
	return took
}

// quantile is the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// osdReads is the OSD's count of client read ops (osd.op_r).
func osdReads(t *testing.T, c *cephtest.Cluster) int64 {
	t.Helper()
	out := c.Run(t, "ceph", "tell", "osd.0", "perf", "dump", "osd")
	var dump struct {
		OSD struct {
			OpR int64 `json:"op_r"`
		} `json:"osd"`
	}
	if err := json.Unmarshal([]byte(out), &dump); err != nil {
		t.Fatalf("ceph tell osd.0 perf dump: %v: %s", err, out)
	}
	return dump.OSD.OpR
}

// stormImage puts the image the trace was recorded from (the testbed's
// root squashfs, when this machine has the same one) or random bytes of
// its size into pool/name and snapshots it: what is read does not change
// what the cluster does, only where.
func stormImage(t *testing.T, c *cephtest.Cluster, tr bootTrace, name string) string {
	t.Helper()
	file := testbed.DefaultRootDir() + ".sqfs"
	if st, err := os.Stat(file); err != nil || st.Size() != tr.Size {
		file = filepath.Join(t.TempDir(), "random.img")
		data := make([]byte, tr.Size)
		rand.Read(data)
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s is not the traced image: replaying against %d random bytes", testbed.DefaultRootDir()+".sqfs", tr.Size)
	}
	spec := c.Pool + "/" + name
	c.Run(t, "rbd", "import", "--no-progress", "--object-size", strconv.Itoa(objectSize), file, spec)
	c.Run(t, "rbd", "snap", "create", spec+"@boot")
	t.Cleanup(func() {
		c.Command("rbd", "snap", "purge", spec).Run()
		c.Command("rbd", "rm", "--no-progress", spec).Run()
	})
	return "boot"
}

func stormSizes(t *testing.T) []int {
	v := os.Getenv("STRATA_STORM_N")
	if v == "" {
		return []int{1, 2}
	}
	var out []int
	for _, f := range strings.Fields(v) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			t.Fatalf("STRATA_STORM_N: %q is not a client count", f)
		}
		out = append(out, n)
	}
	return out
}

func TestBootStorm(t *testing.T) {
	tr := loadTrace(t, filepath.Join(cephtest.ScriptDir(), "..", "bench", "boottrace", "testbed-root.csv"))
	c := cephtest.Start(t)
	name := fmt.Sprintf("bootstorm-%d", os.Getpid())
	snap := stormImage(t, c, tr, name)

	whole := wholeImage(tr.Size)
	boot, copy := split(tr.Reads, tr.Size), split(whole, tr.Size)
	t.Logf("trace: %d reads, %.1f MiB of a %.1f MiB image; %d of %d objects of 4 MiB touched; hottest object: %d reads (Warewulf: %d)",
		len(tr.Reads), mib(tr.bytes()), mib(tr.Size), boot.touched(), len(boot.ops), slices.Max(boot.ops), slices.Max(copy.ops))

	t.Logf("reads per object, one client (object: reads, KiB): %s", objectList(boot))
	var lt strings.Builder
	fmt.Fprintf(&lt, "| layout | objects a boot reads | reads of the busiest object, per node | its share |\n|---|---:|---:|---:|\n")
	for _, l := range layouts {
		n, most := l.hottest(tr.Reads)
		fmt.Fprintf(&lt, "| %s | %d | %d | %.0f%% |\n", l.name, n, most, 100*float64(most)/float64(len(tr.Reads)))
	}
	t.Logf("the trace under other layouts (arithmetic):\n%s", lt.String())

	// $STRATA_STORM_DEPTH: reads in flight per client (default 1).
	depth := 1
	if v := os.Getenv("STRATA_STORM_DEPTH"); v != "" {
		if d, err := strconv.Atoi(v); err != nil || d < 1 {
			t.Fatalf("STRATA_STORM_DEPTH: %q is not a depth", v)
		} else {
			depth = d
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Reads in flight per client: %d.\n\n", depth)
	fmt.Fprintf(&b, "| N | Strata: median | p99 | Warewulf: median | p99 | time Strata/Warewulf (median) | cluster reads Strata / Warewulf | bytes Strata / Warewulf | reads of the hottest object, Strata / Warewulf |\n")
	fmt.Fprintf(&b, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range stormSizes(t) {
		before := osdReads(t, c)
		s := storm(t, c, name, snap, n, depth, tr.Reads, tr.bytes())
		mid := osdReads(t, c)
		w := storm(t, c, name, snap, n, depth, whole, tr.Size)
		after := osdReads(t, c)

		// The OSD served what the split says: the replay reached RADOS.
		sOps, wOps := mid-before, after-mid
		if want := int64(n) * sum(boot.ops); sOps < want {
			t.Errorf("N=%d: the OSD counted %d reads for the trace, want at least %d", n, sOps, want)
		}
		if want := int64(n) * sum(copy.ops); wOps < want {
			t.Errorf("N=%d: the OSD counted %d reads for the whole image, want at least %d", n, wOps, want)
		}
		sMed, wMed := quantile(s, 0.5), quantile(w, 0.5)
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %.2f | %d / %d | %.1f / %.1f MiB | %d / %d |\n", n,
			ms(sMed), ms(quantile(s, 0.99)), ms(wMed), ms(quantile(w, 0.99)), sMed.Seconds()/wMed.Seconds(),
			sOps, wOps, mib(int64(n)*tr.bytes()), mib(int64(n)*tr.Size),
			int64(n)*slices.Max(boot.ops), int64(n)*slices.Max(copy.ops))
	}
	t.Logf("boot storm (%s):\n%s", tr.SHA256[:12], b.String())
	if out := os.Getenv("STRATA_STORM_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(b.String()+"\n"+lt.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// objectList shows the objects a client reads, hottest first.
func objectList(p perObject) string {
	idx := make([]int, 0, len(p.ops))
	for i, v := range p.ops {
		if v > 0 {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int { return int(p.ops[b] - p.ops[a]) })
	var parts []string
	for _, i := range idx {
		parts = append(parts, fmt.Sprintf("%d: %d, %d", i, p.ops[i], p.bytes[i]>>10))
	}
	return strings.Join(parts, "; ")
}
