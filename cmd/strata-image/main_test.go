package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/strata-project/strata/image"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: strata-image"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"help"}, 0, "oci-archive:FILE"},
		{[]string{"version"}, 0, "strata-image dev"},
		{[]string{"build"}, 2, "want one DIR, TARBALL, SQUASHFS file or OCI image, got 0"},
		{[]string{"build", "/tmp"}, 2, "--pool and --image are required"},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "a/b"}, 2, "must not contain"},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--size", "12Q"}, 2, "--size"},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--compressor", "lzo"}, 2, "unknown compressor"},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--protect"}, 2, "--protect needs --snapshot"},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--fs", "ext4"}, 2, `--fs "ext4": want squashfs or erofs`},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--object-size", "3M"}, 2, "object layout: object size 3.0 MiB: want a power of two"},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--object-size", "x"}, 2, `--object-size "x"`},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--stripe-unit", "8M"}, 2, "up to the object size (4.0 MiB)"},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--stripe-count", "0"}, 2, "--stripe-count 0"},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--fs", "erofs", "--erofs-compress", "xz"}, 2, `unknown erofs compressor "xz"`},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--fs", "erofs", "--compressor", "xz"}, 2, "--compressor is not an option of --fs erofs"},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--erofs-compress", "lz4"}, 2, "--erofs-compress is not an option of --fs squashfs"},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--in-flight", "0"}, 2, "--in-flight"},
		{[]string{"build", "/tmp", "--pool", "rbd", "--image", "i", "--progress", "fancy"}, 2, "--progress"},
		{[]string{"build", "/tmp", "--no-such-flag"}, 2, "no-such-flag"},
		{[]string{"build", "/nonexistent", "--pool", "rbd", "--image", "i"}, 1, "/nonexistent"},
		{[]string{"info"}, 2, "no image given"},
		{[]string{"info", "a", "b"}, 2, "one image, please"},
		{[]string{"info", "p/i", "--image", "j"}, 2, "image given twice"},
		{[]string{"rm", "p/i@s"}, 2, "not snapshots"},
		{[]string{"ls", "a/b/c"}, 2, "want POOL or POOL/NAMESPACE"},
		{[]string{"build", "/tmp", "--output", "/tmp/x.img", "--pool", "p"}, 2, "--output makes a file"},
		{[]string{"build", "/tmp", "--output", "/tmp/x.img", "--verity", "--no-verity"}, 2, "--verity and --no-verity: choose one"},
		{[]string{"info", "--file", "/nonexistent.img"}, 1, "/nonexistent.img"},
		{[]string{"info", "--file", "/tmp/x.img", "p/i"}, 2, "--file or an RBD image"},
	} {
		code, out, errOut := runCmd(c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("%q: exit %d (want %d), output %q %q, want %q", c.args, code, c.code, out, errOut, c.want)
		}
	}
}

func TestRefFromArgs(t *testing.T) {
	r, err := ref([]string{"p/ns/i@s"}, "", "", "", "")
	if err != nil || r.String() != "p/ns/i@s" {
		t.Errorf("%v %v", r, err)
	}
	r, err = ref(nil, "", "", "i", "")
	if err != nil || r.String() != "rbd/i" {
		t.Errorf("%v %v", r, err)
	}
	r, err = ref([]string{"i"}, "pool", "ns", "", "snap")
	if err != nil || r.String() != "pool/ns/i@snap" {
		t.Errorf("%v %v", r, err)
	}
}

func TestParseInterleaved(t *testing.T) {
	fs := newFlagSet("x", nil)
	a := fs.String("a", "", "")
	b := fs.Bool("b", false, "")
	pos, err := parse(fs, []string{"one", "-a", "x", "two", "--b", "three"})
	if err != nil || *a != "x" || !*b || strings.Join(pos, ",") != "one,two,three" {
		t.Errorf("pos %v a %q b %v err %v", pos, *a, *b, err)
	}
}

// build --output prints the root hash (verity is the default) that info
// --file then reads from the file's trailer.
func TestBuildFileVerityCLI(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "layer.img")
	code, stdout, stderr := runCmd("build", src, "--output", out, "--progress", "none")
	m := regexp.MustCompile(`verity: root hash ([0-9a-f]{64})`).FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("build: exit %d, %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd("info", "--file", out)
	if code != 0 || !strings.Contains(stdout, "root hash:  "+m[1]) {
		t.Errorf("info --file: exit %d, %q %q, want root hash %s", code, stdout, stderr, m[1])
	}
}

// build --no-verity makes an image without a hash tree or trailer: nothing
// about verity is printed, and info --file says there is none.
func TestBuildFileNoVerityCLI(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "plain.img")
	for _, off := range []string{"--no-verity", "--verity=false"} {
		code, stdout, stderr := runCmd("build", src, "--output", out, "--force", off, "--progress", "none")
		if code != 0 || strings.Contains(stdout, "verity") {
			t.Fatalf("build %s: exit %d, %q %q", off, code, stdout, stderr)
		}
		if _, err := image.ReadVerity(out); err == nil || !strings.Contains(err.Error(), "built with --no-verity") {
			t.Errorf("a %s image's trailer: %v, want none", off, err)
		}
	}
	// The same build with --verity given as well as the default is the default.
	code, stdout, stderr := runCmd("build", src, "--output", out, "--force", "--verity", "--progress", "none")
	if code != 0 || !strings.Contains(stdout, "verity: root hash ") {
		t.Errorf("build --verity: exit %d, %q %q", code, stdout, stderr)
	}
}
