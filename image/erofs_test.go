package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// extractErofs unpacks an erofs file with fsck.erofs, which also checks
// every file's encoding, and returns the directory.
func extractErofs(t *testing.T, file string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command("fsck.erofs", "--extract="+dir, file).CombinedOutput(); err != nil {
		t.Fatalf("fsck.erofs --extract: %v\n%s", err, out)
	}
	return dir
}

func TestMakeErofsFromDirectory(t *testing.T) {
	needTools(t, "mkfs.erofs", "fsck.erofs")
	src := testTree(t)
	for _, comp := range []string{"lz4hc", "lz4hc,12", "lz4", "none"} {
		t.Run(comp, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "img.erofs")
			if err := MakeErofs(context.Background(), src, out, t.TempDir(), ErofsOptions{Compressor: comp}); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			head := make([]byte, erofsHeadSize)
			f.ReadAt(head, 0)
			sb, err := ParseErofsSuperblock(head)
			if err != nil {
				t.Fatal(err)
			}
			if sb.BlockSize != 4096 || sb.Bytes() != uint64(st.Size()) || sb.Inodes < 10 || sb.Compressed != (comp != "none") {
				t.Errorf("superblock %+v (file %d bytes)", sb, st.Size())
			}
			if fs, err := FSOf(f); err != nil || fs != FSErofs {
				t.Errorf("FSOf = %q, %v", fs, err)
			}
			if kind, err := Source(out); err != nil || kind != SourceErofs {
				t.Errorf("Source(erofs) = %v, %v", kind, err)
			}
			sameTree(t, src, extractErofs(t, out))
		})
	}
}

// Compression shows in the size: the test tree's tool is one repeated word.
func TestMakeErofsCompresses(t *testing.T) {
	needTools(t, "mkfs.erofs")
	src := testTree(t)
	size := map[string]int64{}
	for _, comp := range []string{"lz4hc", "none"} {
		out := filepath.Join(t.TempDir(), "img.erofs")
		if err := MakeErofs(context.Background(), src, out, t.TempDir(), ErofsOptions{Compressor: comp}); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(out)
		size[comp] = st.Size()
	}
	if size["lz4hc"] >= size["none"] {
		t.Errorf("lz4hc %d bytes, none %d: not compressed", size["lz4hc"], size["none"])
	}
}

func TestMakeErofsFromTarball(t *testing.T) {
	needTools(t, "mkfs.erofs", "fsck.erofs", "tar", "zstd")
	src := testTree(t)
	dir := t.TempDir()
	tarball := filepath.Join(dir, "root.tar.zst")
	if err := os.WriteFile(tarball, compress(t, tarOf(t, src), "zstd"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "img.erofs")
	tmp := t.TempDir()
	if err := MakeErofs(context.Background(), tarball, out, tmp, ErofsOptions{}); err != nil {
		t.Fatal(err)
	}
	got := extractErofs(t, out)
	sameTree(t, src, got)
	// The tarball's "./" entry (0750, see tarOf) is the root's mode.
	if st, err := os.Stat(got); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("root: %v %v, want 0750", st.Mode(), err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the unpacked tree was left in %s: %v", tmp, left)
	}
}

func TestErofsOptions(t *testing.T) {
	for _, c := range []string{"", "lz4", "lz4hc", "none", "lz4hc,1", "lz4hc,12"} {
		if err := (ErofsOptions{Compressor: c}).Validate(); err != nil {
			t.Errorf("%q: %v", c, err)
		}
	}
	for _, c := range []string{"lzma", "zstd", "lz4hc,0", "lz4hc,13", "lz4hc,x", "lz4,3", "none,1", "lz4hc,"} {
		if err := (ErofsOptions{Compressor: c}).Validate(); err == nil {
			t.Errorf("%q accepted", c)
		}
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	o := ErofsOptions{Compressor: "none", NoXattrs: true, AllRoot: true, ExtraArgs: []string{"-E", "legacy-compress"}}
	want := []string{"-T1700000000", "-x-1", "--all-root", "-E", "legacy-compress"}
	if got := o.args(); !reflect.DeepEqual(got, want) {
		t.Errorf("args = %q, want %q", got, want)
	}
	if got := (ErofsOptions{}).args()[0]; got != "-zlz4hc" {
		t.Errorf("default compression %q, want -zlz4hc", got)
	}
}

func TestBuildOptionsFS(t *testing.T) {
	if err := (BuildOptions{FS: "ext4"}).validateFS(); err == nil || !strings.Contains(err.Error(), "squashfs or erofs") {
		t.Errorf("ext4: %v", err)
	}
	if err := (BuildOptions{FS: FSErofs, Erofs: ErofsOptions{Compressor: "xz"}}).validateFS(); err == nil {
		t.Error("erofs with xz accepted")
	}
	if err := (BuildOptions{}).validateFS(); err != nil {
		t.Errorf("default: %v", err)
	}
}

func TestParseErofsSuperblock(t *testing.T) {
	if _, err := ParseErofsSuperblock(make([]byte, 100)); err == nil {
		t.Error("short superblock accepted")
	}
	if _, err := ParseErofsSuperblock(make([]byte, erofsHeadSize)); err == nil || !strings.Contains(err.Error(), "no erofs") {
		t.Errorf("zeros: %v", err)
	}
	if _, err := FSOf(strings.NewReader(strings.Repeat("x", 2000))); err == nil || !strings.Contains(err.Error(), "neither squashfs nor erofs") {
		t.Errorf("junk: %v", err)
	}
}

func TestMakeErofsReportsErrors(t *testing.T) {
	needTools(t, "mkfs.erofs")
	src := testTree(t)
	err := MakeErofs(context.Background(), src, filepath.Join(t.TempDir(), "o"), t.TempDir(),
		ErofsOptions{ExtraArgs: []string{"--no-such-option"}})
	if err == nil || !strings.Contains(err.Error(), "--no-such-option") {
		t.Errorf("err = %v, want mkfs.erofs's complaint", err)
	}
}
