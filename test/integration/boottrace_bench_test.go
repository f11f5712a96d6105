//go:build integration && bench

package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/test/testbed"
)

// TestRecordBootTrace records the reads a boot makes from its layer, for
// the boot-storm replay (test/ceph/bootstorm_test.go): the kernel's
// block_rq_issue tracepoint (what blktrace records as "D"), through a
// tracefs instance of its own filtered on the loop device under the
// testbed's layer, from the container's start to its systemd's ready.
// blktrace itself cannot open its relay files on every kernel (EPERM on
// this machine's); the tracepoint is the same. Writes $STRATA_TRACE_OUT
// (default test/bench/boottrace/testbed-root.csv); test/bench/boottrace.sh
// runs it.
func TestRecordBootTrace(t *testing.T) {
	out := envOr("STRATA_TRACE_OUT", "../bench/boottrace/testbed-root.csv")
	n := boot(t, testbed.Options{})
	n.define("trace.json", layerDef("/srv/images/base.sqfs", "squashfs"))
	n.run("systemctl", "daemon-reload")
	ids := strings.Fields(n.run("sh", "-c", "cd /run/systemd/generator && ls -d strata-attach@loop_*.service.d"))
	if len(ids) != 1 {
		t.Fatalf("want one loopback attach unit, got %q", ids)
	}
	attach := strings.TrimSuffix(ids[0], ".d")
	attachment := strings.TrimSuffix(strings.TrimPrefix(attach, "strata-attach@"), ".service")
	n.run("systemctl", "start", attach)
	var dev string
	n.waitUntil("the device link of "+attachment, func() (bool, string) {
		o, code := n.try("readlink", "-e", layout.DevDir+"/"+attachment)
		dev = filepath.Base(o)
		return code == 0 && loopRE.MatchString(dev), o
	})
	n.run("blockdev", "--flushbufs", "/dev/"+dev)

	// The loop device is the host's: it is traced here, not in the testbed.
	tr := startIssueTrace(t, dev)
	start := time.Now()
	n.run("systemctl", "start", "systemd-nspawn@trace.service")
	took := time.Since(start)
	reads := tr.stop(t)
	n.run("systemctl", "stop", "systemd-nspawn@trace.service")

	var total int64
	for _, r := range reads {
		total += r[1]
	}
	st, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot (%s) issued %d reads, %.1f MiB of the %.1f MiB image", took.Round(time.Millisecond), len(reads), mib(total), mib(st.Size()))
	if total < 1<<20 || total > st.Size() {
		t.Fatalf("the trace reads %d bytes of a %d-byte image: want more than 1 MiB, at most the image", total, st.Size())
	}
	writeTrace(t, out, reads, st.Size(), dev)
}

// issueTrace is a tracefs instance recording block_rq_issue of one device.
type issueTrace struct {
	dir     string // the instance
	mounted bool   // tracefs was mounted for it
}

const tracefs = "/sys/kernel/tracing"

func startIssueTrace(t *testing.T, dev string) *issueTrace {
	t.Helper()
	tr := &issueTrace{dir: filepath.Join(tracefs, "instances", "strata-boottrace-"+strconv.Itoa(os.Getpid()))}
	if _, err := os.Stat(filepath.Join(tracefs, "instances")); err != nil {
		if out, err := exec.Command("mount", "-t", "tracefs", "tracefs", tracefs).CombinedOutput(); err != nil {
			t.Fatalf("mount tracefs: %v: %s", err, out)
		}
		tr.mounted = true
	}
	t.Cleanup(tr.remove)
	if err := os.Mkdir(tr.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mm, err := os.ReadFile("/sys/block/" + dev + "/dev")
	if err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(string(mm), "%d:%d", &major, &minor); err != nil {
		t.Fatalf("/sys/block/%s/dev: %q", dev, mm)
	}
	ev := filepath.Join(tr.dir, "events", "block", "block_rq_issue")
	// The event's dev is the kernel's dev_t: major << 20 | minor.
	tr.write(t, filepath.Join(ev, "filter"), fmt.Sprintf("dev == %d", major<<20|minor))
	tr.write(t, filepath.Join(tr.dir, "buffer_size_kb"), "8192")
	tr.write(t, filepath.Join(ev, "enable"), "1")
	return tr
}

func (tr *issueTrace) write(t *testing.T, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
}

// stop ends the recording and returns the reads, in issue order.
func (tr *issueTrace) stop(t *testing.T) [][2]int64 {
	t.Helper()
	tr.write(t, filepath.Join(tr.dir, "events", "block", "block_rq_issue", "enable"), "0")
	b, err := os.ReadFile(filepath.Join(tr.dir, "trace"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("LOST")) {
		t.Fatal("the trace lost events: raise buffer_size_kb")
	}
	return issuedReads(t, bytes.NewReader(b))
}

func (tr *issueTrace) remove() {
	os.Remove(tr.dir)
	if tr.mounted {
		exec.Command("umount", tracefs).Run()
	}
}

// rqIssue is a block_rq_issue line: "MAJ,MIN RWBS BYTES (CMD) SECTOR + SECTORS".
var rqIssue = regexp.MustCompile(`block_rq_issue: \d+,\d+ (\S+) \d+ \(.*?\) (\d+) \+ (\d+)`)

// issuedReads picks the reads (RWBS with R, readahead included) as byte
// offset and length.
func issuedReads(t *testing.T, r io.Reader) [][2]int64 {
	t.Helper()
	var out [][2]int64
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := rqIssue.FindStringSubmatch(sc.Text())
		if m == nil || !strings.Contains(m[1], "R") || strings.Contains(m[1], "W") {
			continue
		}
		sector, _ := strconv.ParseInt(m[2], 10, 64)
		sectors, _ := strconv.ParseInt(m[3], 10, 64)
		if sectors > 0 {
			out = append(out, [2]int64{sector * 512, sectors * 512})
		}
	}
	if len(out) == 0 {
		t.Fatal("no reads issued to the loop device were traced")
	}
	return out
}

// writeTrace writes the trace with a header saying how it was made.
func writeTrace(t *testing.T, path string, reads [][2]int64, size int64, dev string) {
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	var b strings.Builder
	fmt.Fprintf(&b, "# Boot read trace: the reads issued to the layer's loop device (%s) while\n", dev)
	fmt.Fprintf(&b, "# the testbed (test/testbed, systemd under systemd-nspawn) started a container\n")
	fmt.Fprintf(&b, "# on it, from systemctl start to its systemd's ready: the block_rq_issue\n")
	fmt.Fprintf(&b, "# tracepoint (blktrace's D) with RWBS R, through tracefs, by TestRecordBootTrace\n")
	fmt.Fprintf(&b, "# (test/bench/boottrace.sh) on %s, Linux %s.\n", time.Now().UTC().Format("2006-01-02"), strings.TrimSpace(string(kernel)))
	fmt.Fprintf(&b, "# image: %s (the testbed root, squashfs zstd 128K)\n", filepath.Base(image))
	fmt.Fprintf(&b, "# image-size: %d\n# image-sha256: %s\n", size, hex.EncodeToString(h.Sum(nil)))
	fmt.Fprintf(&b, "# offset,length (bytes), in issue order\n")
	for _, r := range reads {
		fmt.Fprintf(&b, "%d,%d\n", r[0], r[1])
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d reads)", path, len(reads))
}
