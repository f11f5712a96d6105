package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"auto": 0, "": 0, "AUTO": 0, "1": 1, "4096": 4096, "4K": 4 << 10, "4k": 4 << 10,
		"10M": 10 << 20, "10MiB": 10 << 20, "10MB": 10 << 20, "2G": 2 << 30, "1T": 1 << 40, "3gib": 3 << 30,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-1", "abc", "1X", "1.5G", "M", "99999999999999999999", "20000000000T"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestAutoSize(t *testing.T) {
	for n, want := range map[int64]uint64{0: ObjectSize, 1: ObjectSize, ObjectSize: ObjectSize,
		ObjectSize + 1: 2 * ObjectSize, 196 << 20: 196 << 20, 197<<20 + 5: 200 << 20} {
		if got := AutoSize(n); got != want {
			t.Errorf("AutoSize(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestParseRef(t *testing.T) {
	good := map[string]Ref{
		"img":             {Pool: "rbd", Image: "img"},
		"p/img":           {Pool: "p", Image: "img"},
		"p/ns/img":        {Pool: "p", Namespace: "ns", Image: "img"},
		"p/img@s1":        {Pool: "p", Image: "img", Snapshot: "s1"},
		"p/ns/img@s1":     {Pool: "p", Namespace: "ns", Image: "img", Snapshot: "s1"},
		"p/image.v1-2_x":  {Pool: "p", Image: "image.v1-2_x"},
		"img@snap":        {Pool: "rbd", Image: "img", Snapshot: "snap"},
		"pool/with space": {Pool: "pool", Image: "with space"},
	}
	for in, want := range good {
		got, err := ParseRef(in, "rbd")
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if back, err := ParseRef(got.String(), "other"); err != nil || back != got {
			t.Errorf("ParseRef(%q) (from %q) = %+v, %v", got.String(), in, back, err)
		}
	}
	for _, in := range []string{"", "p/", "/img", "p//img", "a/b/c/d", "p/img@", "p/im\x01g", "@s"} {
		if got, err := ParseRef(in, "rbd"); err == nil {
			t.Errorf("ParseRef(%q) = %+v, want an error", in, got)
		}
	}
	r := Ref{Pool: "p", Namespace: "n", Image: "i", Snapshot: "s"}
	if r.String() != "p/n/i@s" || r.PoolSpec() != "p/n" {
		t.Errorf("String %q PoolSpec %q", r.String(), r.PoolSpec())
	}
}

func TestSquashfsArgs(t *testing.T) {
	o := SquashfsOptions{NoCompressInodes: true, NoCompressXattrs: true, ExtraArgs: []string{"-b", "1M"}}
	want := []string{"-noappend", "-no-progress", "-comp", "zstd", "-noI", "-noX", "-b", "1M"}
	if got := o.args(); !reflect.DeepEqual(got, want) {
		t.Errorf("args = %q, want %q", got, want)
	}
	o = SquashfsOptions{Compressor: "xz", NoXattrs: true, AllRoot: true}
	want = []string{"-noappend", "-no-progress", "-comp", "xz", "-no-xattrs", "-all-root"}
	if got := o.args(); !reflect.DeepEqual(got, want) {
		t.Errorf("args = %q, want %q", got, want)
	}
	for _, c := range []string{"zstd", "xz", "gzip", ""} {
		if err := (SquashfsOptions{Compressor: c}).Validate(); err != nil {
			t.Errorf("compressor %q: %v", c, err)
		}
	}
	if err := (SquashfsOptions{Compressor: "lz5"}).Validate(); err == nil || !strings.Contains(err.Error(), "zstd, xz, gzip") {
		t.Errorf("compressor lz5: %v", err)
	}
}

func TestParseSuperblock(t *testing.T) {
	if _, err := ParseSuperblock(make([]byte, 10)); err == nil {
		t.Error("short superblock accepted")
	}
	b := make([]byte, SuperblockSize)
	copy(b, "EXT4")
	if _, err := ParseSuperblock(b); err == nil || !strings.Contains(err.Error(), "hsqs") {
		t.Errorf("non-squashfs: %v", err)
	}
}

// testTree makes a small tree: files, a symlink, an empty directory, odd
// modes.
func testTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"etc/hostname":     "node\n",
		"etc/os-release":   "ID=strata-test\n",
		"usr/bin/tool":     strings.Repeat("binary?", 5000),
		"var/lib/empty/.k": "",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "usr/bin/tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("hostname", filepath.Join(dir, "etc/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			// Not a skip: `make setup` (test/setup-host.sh) installs them.
			t.Fatalf("%s not found: run make setup (squashfs-tools)", tool)
		}
	}
}

// listing is `unsquashfs -lln` of a squashfs file, without the time
// stamps, with the root as "squashfs-root".
func listing(t *testing.T, file string) string {
	t.Helper()
	out, err := exec.Command("unsquashfs", "-lln", file).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -lln %s: %v\n%s", file, err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || !strings.Contains(f[len(f)-1], "squashfs-root") && !strings.Contains(l, "squashfs-root") {
			continue
		}
		// mode owner size date time name [-> target]
		lines = append(lines, strings.Join(append(f[:3:3], f[5:]...), " "))
	}
	return strings.Join(lines, "\n")
}

// extract unpacks a squashfs file and returns the directory.
func extract(t *testing.T, file string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command("unsquashfs", "-d", dir, file).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	return dir
}

// sameTree compares two trees: names, types, modes, contents, link targets.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.Walk(want, func(p string, wi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: missing: %v", rel, err)
			return nil
		}
		if rel != "." && gi.Mode() != wi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		switch {
		case wi.Mode().IsRegular():
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(filepath.Join(got, rel))
			if !bytes.Equal(a, b) {
				t.Errorf("%s: contents differ", rel)
			}
		case wi.Mode()&os.ModeSymlink != 0:
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(filepath.Join(got, rel))
			if a != b {
				t.Errorf("%s: link %q, want %q", rel, b, a)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = filepath.Walk(got, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		if !seen[rel] {
			t.Errorf("%s: not in the source", rel)
		}
		return nil
	})
}

func TestMakeSquashfsFromDirectory(t *testing.T) {
	needTools(t, "mksquashfs", "unsquashfs")
	src := testTree(t)
	for _, comp := range Compressors {
		t.Run(comp, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "img.sqfs")
			o := SquashfsOptions{Compressor: comp, NoCompressInodes: true, NoCompressXattrs: true}
			if err := MakeSquashfs(context.Background(), src, out, o); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			sb, err := ParseSuperblock(data)
			if err != nil {
				t.Fatal(err)
			}
			if sb.Compression != comp || sb.Major != 4 || sb.BytesUsed == 0 || sb.BytesUsed > uint64(len(data)) {
				t.Errorf("superblock %+v (file %d bytes)", sb, len(data))
			}
			// -noI: the inode table is stored uncompressed (flag bit 0).
			if sb.Flags&1 == 0 {
				t.Errorf("flags %#x: -noI did not leave the inodes uncompressed", sb.Flags)
			}
			if kind, err := Source(out); err != nil || kind != SourceSquashfs {
				t.Errorf("Source(squashfs) = %v, %v", kind, err)
			}
			sameTree(t, src, extract(t, out))
		})
	}
}

func TestMakeSquashfsIsReproducible(t *testing.T) {
	needTools(t, "mksquashfs")
	src := testTree(t)
	var sums [][]byte
	for i := 0; i < 2; i++ {
		out := filepath.Join(t.TempDir(), "img.sqfs")
		if err := MakeSquashfs(context.Background(), src, out, SquashfsOptions{}); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, data)
	}
	if !bytes.Equal(sums[0], sums[1]) {
		t.Error("two builds of the same tree differ")
	}
}

// tarOf writes the tree at dir as a tar stream with a "./" root entry of
// mode 0750.
func tarOf(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = "./" + rel
		if rel == "." {
			hdr.Name = "./"
			hdr.Mode = 0o750
		}
		if fi.IsDir() && rel != "." {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "root", "root"
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t *testing.T, data []byte, how string) []byte {
	t.Helper()
	switch how {
	case "":
		return data
	case "gzip":
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close()
		return b.Bytes()
	}
	needTools(t, how)
	cmd := exec.Command(how, "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s -c: %v", how, err)
	}
	return out
}

func TestMakeSquashfsFromTarball(t *testing.T) {
	needTools(t, "mksquashfs", "unsquashfs")
	src := testTree(t)
	raw := tarOf(t, src)
	for _, how := range []string{"", "gzip", "bzip2", "xz", "zstd"} {
		name := how
		if name == "" {
			name = "plain"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			tarball := filepath.Join(dir, "root.tar")
			if err := os.WriteFile(tarball, compress(t, raw, how), 0o644); err != nil {
				t.Fatal(err)
			}
			if kind, err := Source(tarball); err != nil || kind != SourceTar {
				t.Fatalf("Source = %v, %v", kind, err)
			}
			out := filepath.Join(dir, "img.sqfs")
			if err := MakeSquashfs(context.Background(), tarball, out, SquashfsOptions{Compressor: "gzip"}); err != nil {
				t.Fatal(err)
			}
			sameTree(t, src, extract(t, out))
			// The root directory keeps the tarball's "./" entry.
			first := strings.SplitN(listing(t, out), "\n", 2)[0]
			if !strings.HasPrefix(first, "drwxr-x--- 0/0") {
				t.Errorf("root: %q, want drwxr-x--- 0/0", first)
			}
		})
	}
}

func TestSource(t *testing.T) {
	dir := t.TempDir()
	if k, err := Source(dir); err != nil || k != SourceDir {
		t.Errorf("dir: %v %v", k, err)
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte(strings.Repeat("x", 1000)), 0o644)
	if _, err := Source(junk); err == nil || !strings.Contains(err.Error(), "neither a directory") {
		t.Errorf("junk: %v", err)
	}
	if _, err := Source(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing source accepted")
	}
	err := MakeSquashfs(context.Background(), junk, filepath.Join(dir, "o"), SquashfsOptions{})
	if err == nil {
		t.Error("MakeSquashfs(junk) succeeded")
	}
}

func TestMakeSquashfsReportsMksquashfsErrors(t *testing.T) {
	needTools(t, "mksquashfs")
	src := testTree(t)
	err := MakeSquashfs(context.Background(), src, filepath.Join(t.TempDir(), "o"),
		SquashfsOptions{ExtraArgs: []string{"-no-such-option"}})
	if err == nil || !strings.Contains(err.Error(), "-no-such-option failed") || !strings.Contains(err.Error(), "invalid option") || strings.Contains(err.Error(), "SYNTAX") {
		t.Errorf("err = %v, want mksquashfs's complaint about -no-such-option", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := MakeSquashfs(ctx, src, filepath.Join(t.TempDir(), "o"), SquashfsOptions{}); err == nil {
		t.Error("a cancelled build succeeded")
	}
}

func TestRootEntryArgs(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	r := rootEntry{mode: 0o40755, uid: 1, gid: 2, mtime: time.Unix(1700000000, 0), found: true}
	want := []string{"-root-mode", "755", "-root-uid", "1", "-root-gid", "2", "-root-time", "1700000000"}
	if got := r.args(); !reflect.DeepEqual(got, want) {
		t.Errorf("args = %q, want %q", got, want)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1")
	if got := r.args(); len(got) != 6 {
		t.Errorf("with SOURCE_DATE_EPOCH: %q (mksquashfs refuses both)", got)
	}
	if got := (rootEntry{}).args(); !reflect.DeepEqual(got, []string{"-root-mode", "0755", "-root-uid", "0", "-root-gid", "0"}) {
		t.Errorf("no root entry: %q", got)
	}
}
