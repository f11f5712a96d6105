package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// ent is one tar entry of a test layer.
type ent struct {
	name, body, link string
	typ              byte
	mode             int64
	uid, gid         int
	major, minor     int64
	xattr            map[string]string
}

var epoch = time.Unix(1700000000, 0)

func layerOf(t *testing.T, ents ...ent) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Devmajor: e.major, Devminor: e.minor, ModTime: epoch, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = map[bool]int64{true: 0o755, false: 0o644}[h.Typeflag == tar.TypeDir]
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: h.Typeflag, Name: e.name, PAXRecords: map[string]string{"comment": "strata"}}
		}
		for k, v := range e.xattr {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf stacks layers (the first at the bottom) into an image for plat.
func imageOf(t *testing.T, plat v1.Platform, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant, cf.Config = plat.OS, plat.Architecture, plat.Variant, cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.MediaType(img, types.OCIManifestSchema1)
}

// layeredImage has what flattening must get right, layer by layer.
func layeredImage(t *testing.T) v1.Image {
	bottom := layerOf(t,
		ent{name: "etc/", typ: tar.TypeDir},
		ent{name: "etc/a", body: "a1"},
		ent{name: "etc/owned", body: "o", uid: 1000, gid: 1001, mode: 0o640},
		ent{name: "usr/bin/su", body: "su", mode: 0o4755},
		ent{name: "opq/old", body: "old"},
		ent{name: "opq/sub/deep", body: "deep"},
		ent{name: "wh/gone", body: "gone"},
		ent{name: "wh/kept", body: "kept"},
		ent{name: "wh/dir/inner", body: "inner"},
		ent{name: "hard/orig", body: "shared"},
		ent{name: "hard/replaced", body: "old"},
		ent{name: "hard/keeps-old", typ: tar.TypeLink, link: "hard/replaced"},
		ent{name: "usr/lib/climb", typ: tar.TypeSymlink, link: "../../../../lib/foo"},
		ent{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666},
		ent{name: "dev/loop0", typ: tar.TypeBlock, major: 7, minor: 0, mode: 0o660, gid: 6},
		ent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		ent{name: "cap/ping", body: "ping", xattr: map[string]string{"user.strata": "yes"}},
		ent{name: "lnk", typ: tar.TypeSymlink, link: "etc/a"},
		ent{name: "becomes-file/child", body: "c"},
	)
	top := layerOf(t,
		ent{name: "./etc/a", body: "a2"},
		ent{name: "opq/", typ: tar.TypeDir, mode: 0o750},
		ent{name: "opq/new", body: "new"},
		ent{name: "opq/.wh..wh..opq"},
		ent{name: "wh/.wh.gone"},
		ent{name: "wh/.wh.dir"},
		ent{name: "hard/link", typ: tar.TypeLink, link: "hard/orig"},
		ent{name: "hard/one", body: "one"},
		ent{name: "hard/two", typ: tar.TypeLink, link: "hard/one"},
		ent{name: "hard/replaced", body: "new"},
		ent{name: "becomes-file", body: "file now"},
	)
	return imageOf(t, v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Config{}, bottom, top)
}

// wantTree is layeredImage flattened: path → what describe says.
var wantTree = map[string]string{
	"/":                 "dir 755 0:0",
	"/etc":              "dir 755 0:0",
	"/etc/a":            "file 644 0:0 a2",
	"/etc/owned":        "file 640 1000:1001 o",
	"/usr":              "dir 755 0:0",
	"/usr/bin":          "dir 755 0:0",
	"/usr/bin/su":       "file 4755 0:0 su",
	"/opq":              "dir 750 0:0",
	"/opq/new":          "file 644 0:0 new",
	"/wh":               "dir 755 0:0",
	"/wh/kept":          "file 644 0:0 kept",
	"/hard":             "dir 755 0:0",
	"/hard/orig":        "file 644 0:0 shared links=2",
	"/hard/link":        "file 644 0:0 shared links=2",
	"/hard/one":         "file 644 0:0 one links=2",
	"/hard/two":         "file 644 0:0 one links=2",
	"/hard/replaced":    "file 644 0:0 new",
	"/hard/keeps-old":   "file 644 0:0 old",
	"/usr/lib":          "dir 755 0:0",
	"/usr/lib/climb":    "symlink 0:0 ../../../../lib/foo",
	"/dev":              "dir 755 0:0",
	"/dev/null":         "char 666 0:0 1,3",
	"/dev/loop0":        "block 660 0:6 7,0",
	"/run":              "dir 755 0:0",
	"/run/fifo":         "fifo 600 0:0",
	"/cap":              "dir 755 0:0",
	"/cap/ping":         "file 644 0:0 ping user.strata=yes",
	"/lnk":              "symlink 0:0 etc/a",
	"/becomes-file":     "file 644 0:0 file now",
	"/hard/link#same":   "/hard/orig",
	"/hard/one#same":    "/hard/two",
	"/etc/a#mtime":      "1700000000",
	"/opq#mtime":        "1700000000",
	"/usr/bin/su#mtime": "1700000000",
	"/lnk#mtime":        "1700000000",
	"/dev/null#mtime":   "1700000000",
	"/cap/ping#mtime":   "1700000000",
	"/hard/link#mtime":  "1700000000",
	"/etc/owned#mtime":  "1700000000",
	"/wh/kept#mtime":    "1700000000",
	"/run/fifo#mtime":   "1700000000",
}

// describeTree says what each file under root is, for comparing trees.
func describeTree(t *testing.T, root string, mtimes map[string]bool) map[string]string {
	t.Helper()
	got := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		st := fi.Sys().(*syscall.Stat_t)
		perm := fmt.Sprintf("%o", st.Mode&0o7777)
		own := fmt.Sprintf("%d:%d", st.Uid, st.Gid)
		var d string
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			d = "dir " + perm + " " + own
		case syscall.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			d = "file " + perm + " " + own + " " + string(b)
			if st.Nlink > 1 {
				d += fmt.Sprintf(" links=%d", st.Nlink)
				if first, ok := inodes[st.Ino]; ok {
					got[first+"#same"] = rel
				} else {
					inodes[st.Ino] = rel
				}
			}
		case syscall.S_IFLNK:
			target, _ := os.Readlink(p)
			d = "symlink " + own + " " + target
		case syscall.S_IFCHR, syscall.S_IFBLK:
			kind := map[bool]string{true: "char", false: "block"}[st.Mode&syscall.S_IFMT == syscall.S_IFCHR]
			d = fmt.Sprintf("%s %s %s %d,%d", kind, perm, own, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case syscall.S_IFIFO:
			d = "fifo " + perm + " " + own
		}
		if sz, _ := unix.Lgetxattr(p, "user.strata", nil); sz > 0 {
			v := make([]byte, sz)
			unix.Lgetxattr(p, "user.strata", v)
			d += " user.strata=" + string(v)
		}
		got[rel] = d
		if mtimes[rel] {
			got[rel+"#mtime"] = fmt.Sprint(st.Mtim.Sec)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func compareTree(t *testing.T, what string, got map[string]string, want map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s: %s: got %q, want %q", what, k, got[k], want[k])
		}
	}
}

func flatWant() (map[string]string, map[string]bool) {
	want, mtimes := map[string]string{}, map[string]bool{}
	for k, v := range wantTree {
		if p, ok := strings.CutSuffix(k, "#mtime"); ok {
			mtimes[p] = true
		}
		want[k] = v
	}
	return want, mtimes
}

func openImage(t *testing.T, img v1.Image) *OCIImage {
	t.Helper()
	o := &OCIImage{Ref: OCIRef{Transport: "test"}, Image: img, Platform: HostPlatform()}
	if err := o.describe(); err != nil {
		t.Fatal(err)
	}
	return o
}

// Flattening: whiteouts, opaque directories, a non-directory over a
// directory, hard links across layers (one whose target an upper layer
// replaces keeps the old content), a symbolic link climbing above the
// root, devices, set-id bits, owners,
// xattrs and times, checked file by file; and the same after a round trip
// through mksquashfs and unsquashfs.
func TestFlatten(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	n, err := Flatten(context.Background(), openImage(t, layeredImage(t)), dir, NopProgress{})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("Flatten counted no bytes")
	}
	want, mtimes := flatWant()
	compareTree(t, "flattened", describeTree(t, dir, mtimes), want)

	needTool(t, "unsquashfs")
	sq := filepath.Join(t.TempDir(), "img.sqfs")
	if err := MakeSquashfs(context.Background(), dir, sq, SquashfsOptions{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x")
	if b, err := exec.Command("unsquashfs", "-no-progress", "-d", out, sq).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v: %s", err, b)
	}
	compareTree(t, "through squashfs", describeTree(t, out, mtimes), want)
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is needed (test/setup-host.sh installs it): %v", name, err)
	}
}

// A hard link to a file that an upper layer whited out is an error that
// names both, not a dangling or silently dropped link.
func TestFlattenLinkToNothing(t *testing.T) {
	img := imageOf(t, HostPlatform(), v1.Config{},
		layerOf(t, ent{name: "a", body: "a"}),
		layerOf(t, ent{name: ".wh.a"}, ent{name: "b", typ: tar.TypeLink, link: "a"}))
	_, err := Flatten(context.Background(), openImage(t, img), t.TempDir(), NopProgress{})
	if err == nil || !strings.Contains(err.Error(), "b: hard link to a, which is not in the image") {
		t.Fatalf("got %v", err)
	}
}

// A symbolic link cannot carry a later entry outside the root (hard links
// and whiteouts: TestFlattenHostile).
func TestFlattenSymlinkParent(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	img := imageOf(t, HostPlatform(), v1.Config{},
		layerOf(t, ent{name: "esc/evil", body: "lower"}),
		layerOf(t, ent{name: "esc", typ: tar.TypeSymlink, link: outside},
			ent{name: "esc/evil2", body: "x"}, ent{name: "x", typ: tar.TypeLink, link: "esc/secret"}))
	_, err := Flatten(context.Background(), openImage(t, img), t.TempDir(), NopProgress{})
	if err == nil || !strings.Contains(err.Error(), "esc/evil2: its parent /esc is a symbolic link") {
		t.Fatalf("got %v", err)
	}
	for _, f := range []string{"evil", "evil2"} {
		if _, err := os.Stat(filepath.Join(outside, f)); err == nil {
			t.Errorf("%s was written outside the root", f)
		}
	}
}

// writeLayout writes images into an OCI layout, each tagged.
func writeLayout(t *testing.T, dir string, tagged map[string]v1.Image) {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for tag := range tagged {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	for _, tag := range tags {
		if err := p.AppendImage(tagged[tag], layout.WithAnnotations(map[string]string{refNameAnnotation: tag})); err != nil {
			t.Fatal(err)
		}
	}
}

// tarDir writes dir's files into a tar file (an oci-archive).
func tarDir(t *testing.T, dir, file string) {
	t.Helper()
	if b, err := exec.Command("tar", "-C", dir, "-cf", file, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, b)
	}
}

// Every local transport finds the image, by tag or digest, and gives the
// same digest; missing tags and other platforms are clear errors.
func TestOpenOCI(t *testing.T) {
	ctx := context.Background()
	img := layeredImage(t)
	dig, _ := img.Digest()
	arm := imageOf(t, v1.Platform{OS: "linux", Architecture: "arm64"}, v1.Config{}, layerOf(t, ent{name: "x", body: "x"}))
	armDig, _ := arm.Digest()
	tmp := t.TempDir()
	lay := filepath.Join(tmp, "layout")
	writeLayout(t, lay, map[string]v1.Image{"v1": img, "arm": arm})
	single := filepath.Join(tmp, "single")
	writeLayout(t, single, map[string]v1.Image{"only": img})
	archive := filepath.Join(tmp, "img.oci.tar")
	tarDir(t, single, archive)
	docker := filepath.Join(tmp, "img.docker.tar")
	tag, _ := name.NewTag("example.org/app:1.0")
	if err := tarball.WriteToFile(docker, tag, img); err != nil {
		t.Fatal(err)
	}
	amd := v1.Platform{OS: "linux", Architecture: "amd64"}

	for _, src := range []string{"oci:" + lay + ":v1", "oci:" + lay + "@" + dig.String(), "oci:" + single,
		"oci-archive:" + archive, "oci-archive:" + archive + ":only", "docker-archive:" + docker,
		"docker-archive:" + docker + ":example.org/app:1.0"} {
		r, ok, err := ParseOCIRef(src)
		if !ok || err != nil {
			t.Fatalf("ParseOCIRef(%q) = %v, %v", src, ok, err)
		}
		o, err := OpenOCI(ctx, r, amd, tmp)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if src[:3] != "doc" && o.Digest != dig {
			t.Errorf("%s: digest %s, want %s", src, o.Digest, dig)
		}
		o.Close()
	}
	// docker save rewrites the manifest (its own media types), so the
	// digest differs; the content does not.
	for src, want := range map[string]string{
		"oci:" + lay + ":v2":  `no tag "v2" in the layout (tags: arm, v1)`,
		"oci:" + lay:          "the layout holds 2 images: name one as :TAG or @DIGEST (tags: arm, v1)",
		"oci:" + lay + ":arm": "the image is for linux/arm64, not linux/amd64 (choose with --platform)",
		"oci:" + lay + "@sha256:" + strings.Repeat("0", 64): "no manifest sha256:000",
		"oci:" + tmp + "/nothing":                           "not an OCI image layout",
		"oci-archive:" + docker:                             "not an OCI image layout",
		"docker-archive:" + docker + ":other:1":             "other:1",
	} {
		r, _, err := ParseOCIRef(src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = OpenOCI(ctx, r, amd, tmp)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", src, err, want)
		}
	}
	r, _, _ := ParseOCIRef("oci:" + lay + ":arm")
	o, err := OpenOCI(ctx, r, v1.Platform{OS: "linux", Architecture: "arm64"}, tmp)
	if err != nil || o.Digest != armDig {
		t.Fatalf("arm64 image: %v", err)
	}
}

// A layer whose bytes changed after the manifest was written is refused.
func TestFlattenCorruptLayer(t *testing.T) {
	img := imageOf(t, HostPlatform(), v1.Config{}, layerOf(t, ent{name: "big", body: strings.Repeat("strata ", 10000)}))
	lay := filepath.Join(t.TempDir(), "layout")
	writeLayout(t, lay, map[string]v1.Image{"v1": img})
	ls, _ := img.Layers()
	d, _ := ls[0].Digest()
	blob := filepath.Join(lay, "blobs", d.Algorithm, d.Hex)
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, _, _ := ParseOCIRef("oci:" + lay + ":v1")
	o, err := OpenOCI(context.Background(), r, HostPlatform(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Flatten(context.Background(), o, t.TempDir(), NopProgress{})
	if err == nil || !strings.Contains(err.Error(), "corrupt layer") {
		t.Fatalf("got %v", err)
	}
	t.Log(err)
}

func TestParseOCIRef(t *testing.T) {
	for in, want := range map[string]OCIRef{
		"oci:/x/lay":                  {Transport: "oci", Path: "/x/lay"},
		"oci:/x/lay:v1":               {Transport: "oci", Path: "/x/lay", Tag: "v1"},
		"oci:lay@sha256:abc":          {Transport: "oci", Path: "lay", Digest: "sha256:abc"},
		"oci-archive:a.tar:latest":    {Transport: "oci-archive", Path: "a.tar", Tag: "latest"},
		"docker-archive:a.tar":        {Transport: "docker-archive", Path: "a.tar"},
		"docker-archive:a.tar:r:1":    {Transport: "docker-archive", Path: "a.tar", Tag: "r:1"},
		"docker://127.0.0.1:5000/a:1": {Transport: "docker", Path: "127.0.0.1:5000/a:1"},
	} {
		got, ok, err := ParseOCIRef(in)
		if !ok || err != nil || got != want {
			t.Errorf("ParseOCIRef(%q) = %+v, %v, %v; want %+v", in, got, ok, err, want)
		}
	}
	for _, in := range []string{"/some/dir", "rootfs.tar", "c:file"} {
		if _, ok, _ := ParseOCIRef(in); ok {
			t.Errorf("ParseOCIRef(%q): taken as OCI", in)
		}
	}
	for _, in := range []string{"docker:x", "docker://", "docker://UPPER/x:1", "oci:", "docker-archive:"} {
		if _, ok, err := ParseOCIRef(in); !ok || err == nil {
			t.Errorf("ParseOCIRef(%q): want an error", in)
		}
	}
}
