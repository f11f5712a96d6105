//go:build ceph && pacific && cgo && cephbench

// The upload benchmark: strata-image build against `rbd import` of the same
// squashfs, in the same run, on a throwaway cluster. Run it with
// test/ceph/bench-upload.sh (or: CGO_ENABLED=1 go test -tags 'ceph pacific
// cephbench' -run TestUploadThroughput -v ./test/ceph).
//
// Environment: STRATA_BENCH_MIB (squashfs size, default 196),
// STRATA_BENCH_RUNS (default 5), STRATA_BENCH_OUT (also write the table
// there).
package ceph_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/image"
	cephtest "github.com/strata-project/strata/test/ceph"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func rate(n int64, d time.Duration) string {
	return fmt.Sprintf("%.2f GiB/s", float64(n)/d.Seconds()/(1<<30))
}

func TestUploadThroughput(t *testing.T) {
	mib := envInt("STRATA_BENCH_MIB", 196)
	runs := envInt("STRATA_BENCH_RUNS", 5)
	c := cephtest.StartWith(t, cephtest.Options{MemstoreBytes: int64(3*mib+256) << 20})
	tmp := t.TempDir()

	// strata-image, built as a user would (cgo, -tags pacific).
	bin := filepath.Join(tmp, "strata-image")
	root := filepath.Join(cephtest.ScriptDir(), "..", "..")
	build := exec.Command("go", "build", "-tags", "pacific", "-o", bin, "./cmd/strata-image")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/strata-image: %v\n%s", err, out)
	}

	// A squashfs of about mib MiB of incompressible data.
	src := filepath.Join(tmp, "src")
	os.MkdirAll(src, 0o755)
	chunk := make([]byte, 4<<20)
	for i := 0; i < mib/4; i++ {
		rand.Read(chunk)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("blob%03d", i)), chunk, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sq := filepath.Join(tmp, "bench.sqfs")
	if err := image.MakeSquashfs(context.Background(), src, sq, image.SquashfsOptions{}); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(src)
	st, _ := os.Stat(sq)
	size := st.Size()

	conn, err := image.Connect(context.Background(), image.ConnectOptions{Conf: c.Conf, User: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	rm := func(name string) {
		if err := conn.Remove(image.Ref{Pool: "rbd", Image: name}, true); err != nil {
			t.Fatal(err)
		}
	}
	type series struct {
		name string
		d    []time.Duration
	}
	var (
		strataProc   = series{name: "strata-image build SQUASHFS --no-verify (whole process)"}
		strataVerify = series{name: "strata-image build SQUASHFS, verify on (whole process, upload + read-back)"}
		strataUpload = series{name: "strata-image build: upload phase (8 x 4 MiB in flight, incl. flush)"}
		rbdImport    = series{name: "rbd import --image-feature layering (whole process)"}
		inproc1      = series{name: "image.Upload in process, 1 x 4 MiB in flight"}
		inproc8      = series{name: "image.Upload in process, 8 x 4 MiB in flight"}
		inproc16     = series{name: "image.Upload in process, 16 x 4 MiB in flight"}
	)
	runStrataVerify := func(i int) {
		name := fmt.Sprintf("strata-verify-%d", i)
		// --no-verity: rbd import, the reference, writes no hash tree.
		cmd := exec.Command(bin, "build", sq, "--conf", c.Conf, "--id", "admin", "--pool", "rbd", "--image", name,
			"--no-verity", "--progress", "none")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("strata-image build: %v\n%s", err, out)
		}
		strataVerify.d = append(strataVerify.d, time.Since(start))
		rm(name)
	}
	runStrata := func(i int) {
		name := fmt.Sprintf("strata-%d", i)
		cmd := exec.Command(bin, "build", sq, "--conf", c.Conf, "--id", "admin", "--pool", "rbd", "--image", name,
			"--no-verity", "--no-verify", "--json", "--progress", "none")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("strata-image build: %v\n%s", err, errb.String())
		}
		strataProc.d = append(strataProc.d, time.Since(start))
		var res struct {
			UploadSeconds float64 `json:"upload_seconds"`
			SquashfsSize  int64   `json:"squashfs_size"`
		}
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.SquashfsSize != size {
			t.Fatalf("strata-image --json: %v %s", err, out.String())
		}
		strataUpload.d = append(strataUpload.d, time.Duration(res.UploadSeconds*float64(time.Second)))
		rm(name)
	}
	runImport := func(i int) {
		name := fmt.Sprintf("import-%d", i)
		cmd := c.Command("rbd", "import", "--no-progress", "--image-feature", "layering", sq, "rbd/"+name)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rbd import: %v\n%s", err, out)
		}
		rbdImport.d = append(rbdImport.d, time.Since(start))
		rm(name)
	}
	runInProc := func(s *series, inFlight, i int) {
		name := fmt.Sprintf("inproc-%d-%d", inFlight, i)
		res, err := conn.Upload(context.Background(), sq, image.Ref{Pool: "rbd", Image: name},
			image.UploadOptions{Write: image.WriteOptions{InFlight: inFlight, NoVerify: true}})
		if err != nil {
			t.Fatal(err)
		}
		s.d = append(s.d, res.Upload)
		rm(name)
	}
	// One warm-up of each (first writes allocate memstore pages), then
	// the measured runs, alternating which goes first.
	runStrata(-1)
	runImport(-1)
	strataProc.d, strataUpload.d, rbdImport.d = nil, nil, nil
	for i := 0; i < runs; i++ {
		if i%2 == 0 {
			runStrata(i)
			runImport(i)
		} else {
			runImport(i)
			runStrata(i)
		}
		runStrataVerify(i)
		runInProc(&inproc1, 1, i)
		runInProc(&inproc8, 8, i)
		runInProc(&inproc16, 16, i)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Upload of a %s squashfs (incompressible data) into a memstore OSD over loopback, %d runs each, medians:\n\n",
		image.FormatBytes(size), runs)
	fmt.Fprintf(&b, "| method | median time | median throughput | min-max time |\n|---|---|---|---|\n")
	for _, s := range []series{strataProc, rbdImport, strataUpload, strataVerify, inproc1, inproc8, inproc16} {
		sorted := append([]time.Duration(nil), s.d...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		m := median(s.d)
		fmt.Fprintf(&b, "| %s | %s | %s | %s-%s |\n", s.name, m.Round(time.Millisecond), rate(size, m),
			sorted[0].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond))
	}
	ratioProc := median(rbdImport.d).Seconds() / median(strataProc.d).Seconds()
	ratioUpload := median(rbdImport.d).Seconds() / median(strataUpload.d).Seconds()
	fmt.Fprintf(&b, "\nstrata-image / rbd import throughput: %.2fx (whole processes), %.2fx (upload phase against the whole rbd import)\n",
		ratioProc, ratioUpload)
	fmt.Print("\n" + b.String())
	if out := os.Getenv("STRATA_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
