package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A verity image file built from a directory: the real veritysetup
// verifies it with the parameters the trailer gives, the squashfs in front
// still lists with unsquashfs, and the file is exactly squashfs (rounded
// up), hash area and trailer.
func TestBuildFileVerity(t *testing.T) {
	needTools(t, "mksquashfs", "unsquashfs", "veritysetup")
	src := t.TempDir()
	for i := 0; i < 50; i++ {
		body := strings.Repeat(strconv.Itoa(i*7919)+"\n", 2000+i*37)
		if err := os.WriteFile(filepath.Join(src, "f"+strconv.Itoa(i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "layer.img")
	res, err := BuildFile(context.Background(), src, out, BuildOptions{Verity: true, Squashfs: SquashfsOptions{NoCompressInodes: true}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := ReadVerity(out)
	if err != nil {
		t.Fatal(err)
	}
	if v.RootHashHex() != res.Verity.RootHashHex() || v.HashOffset != uint64(res.SquashfsSize+4095)/4096*4096 {
		t.Errorf("trailer says root %s at %d, build said %s, squashfs %d bytes", v.RootHashHex(), v.HashOffset,
			res.Verity.RootHashHex(), res.SquashfsSize)
	}
	st, _ := os.Stat(out)
	if st.Size() != res.FileSize || uint64(st.Size()) != v.HashOffset+uint64(len(res.Verity.HashArea))+4096 {
		t.Errorf("file has %d bytes, build said %d", st.Size(), res.FileSize)
	}
	cmd := exec.Command("veritysetup", "verify", "--hash-offset="+strconv.FormatUint(v.HashOffset, 10), out, out, v.RootHashHex())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("veritysetup verify: %v\n%s", err, b)
	}
	if b, err := exec.Command("unsquashfs", "-l", out).CombinedOutput(); err != nil || !strings.Contains(string(b), "f49") {
		t.Errorf("unsquashfs -l of the verity file: %v\n%s", err, b)
	}
	// The same file twice: refused without Force, and a verity file is
	// never hashed again.
	if _, err := BuildFile(context.Background(), src, out, BuildOptions{Verity: true}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("building over an existing file: %v, want a refusal naming --force", err)
	}
	if _, err := AppendVerity(out, nil); err == nil || !strings.Contains(err.Error(), "verity trailer already") {
		t.Errorf("AppendVerity of a verity file: %v", err)
	}
}

// A file built without verity has no trailer, and ReadVerity says so.
func TestReadVerityWithout(t *testing.T) {
	needTools(t, "mksquashfs")
	out := filepath.Join(t.TempDir(), "plain.img")
	if _, err := BuildFile(context.Background(), t.TempDir(), out, BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadVerity(out); err == nil || !strings.Contains(err.Error(), "built with --no-verity") {
		t.Errorf("ReadVerity of a plain squashfs: %v", err)
	}
}

// BuildFile takes every source with Verity: an OCI layout (flattened, its
// digest in the result) and a squashfs file made before (copied, the
// source left as it was); the real veritysetup verifies both files.
func TestBuildFileVerityEverySource(t *testing.T) {
	needTools(t, "mksquashfs", "unsquashfs", "veritysetup")
	img := layeredImage(t)
	dig, _ := img.Digest()
	lay := filepath.Join(t.TempDir(), "layout")
	writeLayout(t, lay, map[string]v1.Image{"v1": img})
	dir := t.TempDir()
	fromOCI := filepath.Join(dir, "oci.img")
	res, err := BuildFile(context.Background(), "oci:"+lay+":v1", fromOCI, BuildOptions{Verity: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.OCI == nil || res.OCI.Digest != dig.String() || res.Verity == nil {
		t.Fatalf("OCI %+v, verity %v", res.OCI, res.Verity)
	}
	checkVerityFile(t, fromOCI, res)
	if b, err := exec.Command("unsquashfs", "-l", fromOCI).CombinedOutput(); err != nil || !strings.Contains(string(b), "etc/owned") {
		t.Errorf("unsquashfs -l of the OCI verity file: %v\n%s", err, b)
	}

	plain := filepath.Join(dir, "plain.sqfs")
	if _, err := BuildFile(context.Background(), "oci:"+lay+":v1", plain, BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(plain)
	fromSqfs := filepath.Join(dir, "sqfs.img")
	res, err = BuildFile(context.Background(), plain, fromSqfs, BuildOptions{Verity: true})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(plain); after.Size() != before.Size() || res.SquashfsSize != before.Size() {
		t.Errorf("source squashfs %d bytes, then %d; build says %d", before.Size(), after.Size(), res.SquashfsSize)
	}
	checkVerityFile(t, fromSqfs, res)
	if _, err := ReadVerity(plain); err == nil {
		t.Error("the source squashfs got a verity trailer")
	}
}

// checkVerityFile checks file against what BuildFile said of it.
func checkVerityFile(t *testing.T, file string, res *BuildResult) {
	t.Helper()
	v, err := ReadVerity(file)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(file)
	if v.RootHashHex() != res.Verity.RootHashHex() || st.Size() != res.FileSize {
		t.Errorf("%s: root %s, %d bytes; build said %s, %d bytes", file, v.RootHashHex(), st.Size(), res.Verity.RootHashHex(), res.FileSize)
	}
	cmd := exec.Command("veritysetup", "verify", "--hash-offset="+strconv.FormatUint(v.HashOffset, 10), file, file, v.RootHashHex())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("veritysetup verify %s: %v\n%s", file, err, b)
	}
}
