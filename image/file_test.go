package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
	if _, err := ReadVerity(out); err == nil || !strings.Contains(err.Error(), "built without --verity") {
		t.Errorf("ReadVerity of a plain squashfs: %v", err)
	}
}
