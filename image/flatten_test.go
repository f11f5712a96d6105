package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// flattenLayers flattens layers (the first at the bottom) into a new
// directory below a temporary one, so that what a hostile layer writes
// beside the root can be looked for; it returns the root and the image.
func flattenLayers(t *testing.T, layers ...[]ent) (string, v1.Image, error) {
	t.Helper()
	var ls []v1.Layer
	for _, l := range layers {
		ls = append(ls, layerOf(t, l...))
	}
	img := imageOf(t, HostPlatform(), v1.Config{}, ls...)
	root := filepath.Join(t.TempDir(), "root")
	_, err := Flatten(context.Background(), openImage(t, img), root, NopProgress{})
	return root, img, err
}

// Layers applied as the OCI image spec and containers/storage apply them,
// checked file by file (content, link target, mode, owner, and for hard
// links the inode: "#same" pairs share one, files without it do not).
func TestFlattenChangesets(t *testing.T) {
	for _, c := range []struct {
		name   string
		layers [][]ent
		want   map[string]string
	}{{
		// Legal in images (they resolve at the root at run time):
		// kept as written, never followed on the build host.
		name: "symbolic links that climb above the root or are absolute",
		layers: [][]ent{{
			{name: "usr/lib/foo", typ: tar.TypeSymlink, link: "../../../../lib/foo"},
			{name: "up", typ: tar.TypeSymlink, link: ".."},
			{name: "abs", typ: tar.TypeSymlink, link: "/etc/passwd"},
		}},
		want: map[string]string{
			"/": "dir 755 0:0", "/usr": "dir 755 0:0", "/usr/lib": "dir 755 0:0",
			"/usr/lib/foo": "symlink 0:0 ../../../../lib/foo",
			"/up":          "symlink 0:0 ..",
			"/abs":         "symlink 0:0 /etc/passwd",
		},
	}, {
		// The upper layer's a is a new inode: the lower link keeps the old.
		name: "a hard link keeps the old content when an upper layer replaces its target",
		layers: [][]ent{
			{{name: "a", body: "old"}, {name: "b", typ: tar.TypeLink, link: "a"}},
			{{name: "a", body: "new", mode: 0o600}},
		},
		want: map[string]string{
			"/":  "dir 755 0:0",
			"/a": "file 600 0:0 new",
			"/b": "file 644 0:0 old",
		},
	}, {
		name: "a hard link within one layer shares the inode",
		layers: [][]ent{{
			{name: "bin/x", body: "one", mode: 0o755},
			{name: "bin/y", typ: tar.TypeLink, link: "bin/x"},
			{name: "bin/z", typ: tar.TypeLink, link: "/bin/x"},
		}},
		want: map[string]string{
			"/": "dir 755 0:0", "/bin": "dir 755 0:0",
			"/bin/x": "file 755 0:0 one links=3", "/bin/y": "file 755 0:0 one links=3", "/bin/z": "file 755 0:0 one links=3",
			"/bin/x#same": "/bin/z",
		},
	}, {
		// The whited-out directory's header goes with it: the d that a
		// later layer makes again is a new one (mode 755, not 700).
		name: "whiteout of a directory",
		layers: [][]ent{
			{{name: "d/", typ: tar.TypeDir, mode: 0o700}, {name: "d/e/f", body: "f"}, {name: "d/g", body: "g"}, {name: "keep", body: "k"}},
			{{name: ".wh.d"}, {name: ".wh.nothing"}, {name: "sub/.wh.nothing"}},
			{{name: "d/new", body: "n"}},
		},
		want: map[string]string{
			"/": "dir 755 0:0", "/keep": "file 644 0:0 k",
			"/d": "dir 755 0:0", "/d/new": "file 644 0:0 n",
			"/sub": "dir 755 0:0",
		},
	}, {
		// The marker hides what lower layers put there, before or after
		// the layer's own entries (sub/ stays: this layer writes in it).
		name: "opaque directories",
		layers: [][]ent{
			{{name: "o/old", body: "old"}, {name: "o/sub/deep", body: "deep"}, {name: "p/old", body: "old"}, {name: "q/kept", body: "kept"}},
			{
				{name: "o/", typ: tar.TypeDir, mode: 0o750},
				{name: "o/.wh..wh..opq"},
				{name: "o/new", body: "new"},
				{name: "o/sub/fresh", body: "fresh"},
				{name: "p/new", body: "new"},
				{name: "p/.wh..wh..opq"},
			},
		},
		want: map[string]string{
			"/":  "dir 755 0:0",
			"/o": "dir 750 0:0", "/o/new": "file 644 0:0 new", "/o/sub": "dir 755 0:0", "/o/sub/fresh": "file 644 0:0 fresh",
			"/p": "dir 755 0:0", "/p/new": "file 644 0:0 new",
			"/q": "dir 755 0:0", "/q/kept": "file 644 0:0 kept",
		},
	}, {
		// Names are relative to the root, absolute ones too ("./" is the
		// root itself); a global header is the archive's, not a file.
		name: "absolute and dotted names",
		layers: [][]ent{{
			{name: "pax_global_header", typ: tar.TypeXGlobalHeader},
			{name: "./", typ: tar.TypeDir, mode: 0o750, gid: 4},
			{name: "/etc/abs", body: "abs"},
			{name: "./etc/../etc/dot", body: "dot"},
		}},
		want: map[string]string{
			"/": "dir 750 0:4", "/etc": "dir 755 0:0", "/etc/abs": "file 644 0:0 abs", "/etc/dot": "file 644 0:0 dot",
		},
	}, {
		name: "a directory replaces a file and a file a directory",
		layers: [][]ent{
			{{name: "f", body: "file"}, {name: "d/x", body: "x"}, {name: "l", typ: tar.TypeSymlink, link: "/"}},
			{{name: "f/", typ: tar.TypeDir, mode: 0o711}, {name: "f/in", body: "in"}, {name: "d", body: "file now"},
				{name: "l/", typ: tar.TypeDir}, {name: "l/in", body: "in"}},
		},
		want: map[string]string{
			"/":  "dir 755 0:0",
			"/f": "dir 711 0:0", "/f/in": "file 644 0:0 in",
			"/d": "file 644 0:0 file now",
			"/l": "dir 755 0:0", "/l/in": "file 644 0:0 in",
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			root, _, err := flattenLayers(t, c.layers...)
			if err != nil {
				t.Fatal(err)
			}
			compareTree(t, "flattened", describeTree(t, root, nil), c.want)
		})
	}
}

// Hostile layers are refused with the layer's digest and the entry, and
// nothing is written, removed or linked outside the root: a symbolic link
// in the tree is never followed, and no name or hard link target climbs
// out of the root.
func TestFlattenHostile(t *testing.T) {
	for _, c := range []struct {
		name   string
		layers func(outside string) [][]ent
		want   string
	}{{
		name: "a file through a symbolic link planted in the same layer",
		layers: func(outside string) [][]ent {
			return [][]ent{{{name: "a", typ: tar.TypeSymlink, link: outside}, {name: "a/passwd", body: "x"}}}
		},
		want: "a/passwd: its parent /a is a symbolic link",
	}, {
		name: "a file through a symbolic link of a lower layer",
		layers: func(outside string) [][]ent {
			return [][]ent{{{name: "a", typ: tar.TypeSymlink, link: outside}}, {{name: "a/passwd", body: "x"}}}
		},
		want: "a/passwd: its parent /a is a symbolic link",
	}, {
		name: "a whiteout through a symbolic link",
		layers: func(outside string) [][]ent {
			return [][]ent{{{name: "a", typ: tar.TypeSymlink, link: outside}}, {{name: "a/.wh.secret"}}}
		},
		want: "a/.wh.secret: its parent /a is a symbolic link",
	}, {
		name: "an opaque directory through a symbolic link",
		layers: func(outside string) [][]ent {
			return [][]ent{{{name: "a", typ: tar.TypeSymlink, link: outside}}, {{name: "a/.wh..wh..opq"}}}
		},
		want: "a/.wh..wh..opq: its parent /a is a symbolic link",
	}, {
		name: "a hard link through a symbolic link",
		layers: func(outside string) [][]ent {
			return [][]ent{{{name: "a", typ: tar.TypeSymlink, link: outside}, {name: "x", typ: tar.TypeLink, link: "a/secret"}}}
		},
		want: "x: hard link to a/secret: its parent /a is a symbolic link",
	}, {
		name: "a name that climbs out",
		layers: func(string) [][]ent {
			return [][]ent{{{name: "ok", body: "ok"}}, {{name: "../escape", body: "x"}}}
		},
		want: "../escape: the path climbs out of the image's root (refused)",
	}, {
		name: "a name that climbs out through a directory",
		layers: func(string) [][]ent {
			return [][]ent{{{name: "etc/../../escape", body: "x"}}}
		},
		want: "etc/../../escape: the path climbs out of the image's root (refused)",
	}, {
		name: "a hard link whose target climbs out",
		layers: func(string) [][]ent {
			return [][]ent{{{name: "x", typ: tar.TypeLink, link: "../outside/secret"}}}
		},
		want: "x: hard link to ../outside/secret: the path climbs out of the image's root (refused)",
	}, {
		// .wh... would name the root's parent.
		name: "a whiteout of the directory's parent",
		layers: func(string) [][]ent {
			return [][]ent{{{name: "keep", body: "k"}}, {{name: ".wh..."}}}
		},
		want: `.wh...: a whiteout must name a file of its directory, not ".." (refused)`,
	}, {
		name: "a whiteout of its own directory",
		layers: func(string) [][]ent {
			return [][]ent{{{name: "etc/keep", body: "k"}}, {{name: "etc/.wh."}}}
		},
		want: `etc/.wh.: a whiteout must name a file of its directory, not "" (refused)`,
	}, {
		name: "a hard link to nothing",
		layers: func(string) [][]ent {
			return [][]ent{{{name: "x", typ: tar.TypeLink, link: "no/such"}}}
		},
		want: "x: hard link to no/such, which is not in the image",
	}} {
		t.Run(c.name, func(t *testing.T) {
			outside := filepath.Join(t.TempDir(), "outside")
			if err := os.Mkdir(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
				t.Fatal(err)
			}
			layers := c.layers(outside)
			root, img, err := flattenLayers(t, layers...)
			ls, _ := img.Layers()
			d, _ := ls[len(ls)-1].Digest()
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), d.String()) {
				t.Fatalf("got %v, want %q naming layer %s", err, c.want, d)
			}
			compareTree(t, "outside", describeTree(t, outside, nil), map[string]string{
				"/": "dir 755 0:0", "/secret": "file 600 0:0 s",
			})
			if _, err := os.Lstat(filepath.Join(root, "..", "escape")); err == nil {
				t.Error("escape was written beside the root")
			}
		})
	}
}

type recordedProgress struct {
	NopProgress
	phase       string
	total, last int64
}

func (r *recordedProgress) Begin(phase string, total int64) { r.phase, r.total = phase, total }
func (r *recordedProgress) Update(done int64)               { r.last = done }

// Progress counts the bytes read as stored, out of the manifest's layer
// sizes (what a registry pull sends); a docker-archive's manifest is made
// by compressing its layers, so its total is not known ahead.
func TestFlattenProgress(t *testing.T) {
	img := layeredImage(t)
	ls, _ := img.Layers()
	var want int64
	for _, l := range ls {
		n, _ := l.Size()
		want += n
	}
	tmp := t.TempDir()
	lay := filepath.Join(tmp, "layout")
	writeLayout(t, lay, map[string]v1.Image{"v1": img})
	docker := filepath.Join(tmp, "img.docker.tar")
	if err := tarball.WriteToFile(docker, name.MustParseReference("example.org/app:1.0"), img); err != nil {
		t.Fatal(err)
	}
	for src, total := range map[string]int64{"oci:" + lay + ":v1": want, "docker-archive:" + docker: 0} {
		ref, _, err := ParseOCIRef(src)
		if err != nil {
			t.Fatal(err)
		}
		var p recordedProgress
		info, err := flattenOCI(context.Background(), ref, src, filepath.Join(t.TempDir(), "root"), BuildOptions{}, &p)
		if err != nil {
			t.Fatal(err)
		}
		if p.phase != "flatten" || p.total != total || p.last == 0 || total > 0 && p.last != total {
			t.Errorf("%s: phase %q, total %d, last update %d; want total %d", src, p.phase, p.total, p.last, total)
		}
		if info.FlatSize <= p.last && total > 0 {
			t.Errorf("%s: %d bytes flattened from %d compressed", src, info.FlatSize, p.last)
		}
	}
}

// An upper layer's entry replaces a lower symbolic link at its path: the
// link is removed, never written through.
func TestFlattenReplacesSymlink(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	root, _, err := flattenLayers(t,
		[]ent{{name: "f", typ: tar.TypeSymlink, link: secret}, {name: "d", typ: tar.TypeSymlink, link: outside},
			{name: "n", typ: tar.TypeSymlink, link: secret}},
		[]ent{{name: "f", body: "mine"}, {name: "d/", typ: tar.TypeDir}, {name: "d/secret", body: "mine"},
			{name: "n", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666}})
	if err != nil {
		t.Fatal(err)
	}
	compareTree(t, "flattened", describeTree(t, root, nil), map[string]string{
		"/": "dir 755 0:0", "/f": "file 644 0:0 mine", "/d": "dir 755 0:0", "/d/secret": "file 644 0:0 mine",
		"/n": "char 666 0:0 1,3",
	})
	compareTree(t, "outside", describeTree(t, outside, nil), map[string]string{
		"/": "dir 755 0:0", "/secret": "file 600 0:0 s",
	})
}

// Layers compressed with zstd are read as gzip ones are; the media type
// is not trusted, the first bytes are.
func TestFlattenZstd(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "z", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4, ModTime: epoch})
	tw.Write([]byte("zstd"))
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithCompression(compression.ZStd))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	magic := make([]byte, 4)
	io.ReadFull(rc, magic)
	rc.Close()
	if !bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("the layer is not zstd: % x", magic)
	}
	root := filepath.Join(t.TempDir(), "root")
	if _, err := Flatten(context.Background(), openImage(t, imageOf(t, HostPlatform(), v1.Config{}, l)), root, NopProgress{}); err != nil {
		t.Fatal(err)
	}
	compareTree(t, "flattened", describeTree(t, root, nil), map[string]string{"/": "dir 755 0:0", "/z": "file 644 0:0 zstd"})
}

// A layout's blob that decompresses well but is not the layer the image's
// configuration names (a layout's blobs are not checked on reading) is
// refused, and so is a configuration that is not the manifest's.
func TestFlattenLayerNotItsDiffID(t *testing.T) {
	img := imageOf(t, HostPlatform(), v1.Config{}, layerOf(t, ent{name: "app", body: "the real one"}))
	other := layerOf(t, ent{name: "app", body: "swapped"})
	lay := filepath.Join(t.TempDir(), "layout")
	writeLayout(t, lay, map[string]v1.Image{"v1": img})
	ls, _ := img.Layers()
	d, _ := ls[0].Digest()
	rc, err := other.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	swapped, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lay, "blobs", d.Algorithm, d.Hex), swapped, 0o644); err != nil {
		t.Fatal(err)
	}
	r, _, _ := ParseOCIRef("oci:" + lay + ":v1")
	o, err := OpenOCI(context.Background(), r, HostPlatform(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	diffID, _ := ls[0].DiffID()
	_, err = Flatten(context.Background(), o, t.TempDir(), NopProgress{})
	want := "layer 1 of 1 (" + d.String() + "): corrupt layer: its content is sha256:"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "the image's configuration says "+diffID.String()) {
		t.Fatalf("got %v, want %q", err, want)
	}

	m, _ := img.Manifest()
	cfg := filepath.Join(lay, "blobs", m.Config.Digest.Algorithm, m.Config.Digest.Hex)
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(raw, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err = OpenOCI(context.Background(), r, HostPlatform(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	_, err = Flatten(context.Background(), o, t.TempDir(), NopProgress{})
	if err == nil || !strings.Contains(err.Error(), "corrupt image: its configuration is sha256:") ||
		!strings.Contains(err.Error(), "the manifest says "+m.Config.Digest.String()) {
		t.Fatalf("got %v", err)
	}
}

// A sparse file of GNU tar (--sparse, its old format: an entry type of
// its own) is a regular file with its holes read as zeros.
func TestFlattenGNUSparse(t *testing.T) {
	needTool(t, "tar")
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("end"), 1<<20)
	f.Close()
	file := filepath.Join(t.TempDir(), "layer.tar")
	if b, err := exec.Command("tar", "--sparse", "--format=gnu", "-C", src, "-cf", file, "sparse").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, b)
	}
	l, err := tarball.LayerFromFile(file)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "root")
	if _, err := Flatten(context.Background(), openImage(t, imageOf(t, HostPlatform(), v1.Config{}, l)), root, NopProgress{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "sparse"))
	if want := append(make([]byte, 1<<20), "end"...); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%d bytes (%v), want %d zeros and \"end\"", len(got), err, 1<<20)
	}
}
