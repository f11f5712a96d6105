package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// Flatten writes the image's root file system into dir (empty or new) and
// returns the bytes of its layers' tar streams. The layers are applied in
// order, bottom first, as a container runtime stacks them (apply.go): each
// entry replaces what is at its path, whiteouts and opaque directories hide
// what lower layers hold, and a hard link is made to the file its target is
// when the link is applied. Owners, modes, times, device nodes and xattrs
// are kept (it must run as root for owners and devices, as image builds
// do). go-containerregistry only reads the layers: its own flattening
// (mutate.Extract) drops symbolic links that climb above the root and
// resolves hard links against the top layer.
//
// p hears of the bytes read from the source (compressed, as stored), out
// of the manifest's layer sizes when they are known (PulledSize).
func Flatten(ctx context.Context, o *OCIImage, dir string, p Progress) (int64, error) {
	n, err := flatten(ctx, o, dir, p)
	if err != nil {
		return n, fmt.Errorf("flattening %s: %w", o.Ref, err)
	}
	return n, nil
}

func flatten(ctx context.Context, o *OCIImage, dir string, p Progress) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	layers, err := o.Image.Layers()
	if err != nil {
		return 0, err
	}
	diffIDs, err := o.diffIDs(len(layers))
	if err != nil {
		return 0, err
	}
	u, err := newUnpacker(dir)
	if err != nil {
		return 0, err
	}
	defer u.close()
	open := v1.Layer.Compressed
	if !o.storedCompressed() {
		open = v1.Layer.Uncompressed
	}
	pulled := &countingReader{p: p}
	var n int64
	for i, l := range layers {
		m, err := applyLayer(ctx, u, l, open, diffIDs[i], pulled)
		n += m
		if err != nil {
			return n, fmt.Errorf("layer %d of %d (%s): %w", i+1, len(layers), o.layerDigest(l), err)
		}
	}
	return n, u.finish()
}

// PulledSize is the compressed size of the image's layers as its manifest
// says, or 0 when that is not known without reading them.
func (o *OCIImage) PulledSize() int64 {
	if !o.storedCompressed() {
		return 0
	}
	m, err := o.Image.Manifest()
	if err != nil {
		return 0
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// storedCompressed says whether the layers are read as the manifest
// describes them: a docker-archive's are stored uncompressed, and
// go-containerregistry makes its manifest (and compressed layers) by
// compressing them.
func (o *OCIImage) storedCompressed() bool {
	return o.Ref.Transport != TransportDockerArchive
}

// layerDigest names a layer as its image does: a docker-archive by its
// diff_id (docker's name for it, and its digest would mean compressing it).
func (o *OCIImage) layerDigest(l v1.Layer) string {
	digest := l.Digest
	if !o.storedCompressed() {
		digest = l.DiffID
	}
	d, err := digest()
	if err != nil {
		return "digest unknown: " + err.Error()
	}
	return d.String()
}

// diffIDs are the digests of the layers' tar streams as the image's
// configuration gives them (go-containerregistry computes a layout
// layer's from its blob, which would check nothing); the configuration is
// checked against the manifest first (a layout's blobs are not checked on
// reading), except a docker-archive's, whose manifest is made from it.
func (o *OCIImage) diffIDs(layers int) ([]v1.Hash, error) {
	cfg, err := o.Image.ConfigFile()
	if err != nil {
		return nil, err
	}
	if o.storedCompressed() {
		m, err := o.Image.Manifest()
		if err != nil {
			return nil, err
		}
		got, err := o.Image.ConfigName()
		if err != nil {
			return nil, err
		}
		if got != m.Config.Digest {
			return nil, fmt.Errorf("corrupt image: its configuration is %s, the manifest says %s", got, m.Config.Digest)
		}
	}
	if len(cfg.RootFS.DiffIDs) != layers {
		return nil, fmt.Errorf("corrupt image: %d layers, its configuration lists %d", layers, len(cfg.RootFS.DiffIDs))
	}
	return cfg.RootFS.DiffIDs, nil
}

// applyLayer reads one layer, checks its content against want (its
// diff_id) and applies it; it returns the bytes of its tar stream.
func applyLayer(ctx context.Context, u *unpacker, l v1.Layer, open func(v1.Layer) (io.ReadCloser, error), want v1.Hash, pulled *countingReader) (int64, error) {
	rc, err := open(l)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	pulled.r = rc
	stream, err := decompress(pulled)
	if err != nil {
		return 0, fmt.Errorf("corrupt layer: %w", err)
	}
	defer stream.Close()
	sum := sha256.New()
	flat := &countingReader{r: io.TeeReader(stream, sum), p: NopProgress{}}
	if err := u.apply(ctx, tar.NewReader(flat)); err != nil {
		return flat.n, err
	}
	// Read on past the end of the archive: the rest counts for the
	// checksums (and a registry's blob is checked at its end).
	if _, err := io.Copy(io.Discard, flat); err != nil {
		return flat.n, fmt.Errorf("corrupt layer: %w", err)
	}
	if _, err := io.Copy(io.Discard, pulled); err != nil {
		return flat.n, fmt.Errorf("corrupt layer: %w", err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); want.Algorithm == "sha256" && got != want.Hex {
		return flat.n, fmt.Errorf("corrupt layer: its content is sha256:%s, the image's configuration says %s", got, want)
	}
	return flat.n, nil
}

// decompress reads a gzip, zstd or uncompressed layer, told apart by its
// first bytes (media types are not always right).
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

type countingReader struct {
	r io.Reader
	n int64
	p Progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	c.p.Update(c.n)
	return n, err
}

// untarLayout unpacks an oci-archive (an OCI layout in a tar file): only
// directories and regular files, named inside dir.
func untarLayout(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not an OCI archive (a tar file holding an image layout): %w", err)
		}
		clean := path.Clean("/" + h.Name)
		if clean == "/" {
			continue
		}
		p := filepath.Join(dir, clean)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg, tar.TypeRegA:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = writeFile(p, tr)
			}
		default:
			err = fmt.Errorf("unexpected %q entry in an OCI archive", h.Typeflag)
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", file, h.Name, err)
		}
	}
}

func writeFile(p string, r io.Reader) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// HasSystemd reports whether the tree at root boots with systemd:
// /sbin/init leads to systemd, or systemd is in its usual place.
func HasSystemd(root string) bool {
	for _, p := range []string{"/sbin/init", "/usr/lib/systemd/systemd", "/lib/systemd/systemd"} {
		if real, ok := resolveIn(root, p); ok && path.Base(real) == "systemd" {
			if st, err := os.Stat(filepath.Join(root, real)); err == nil && st.Mode().IsRegular() {
				return true
			}
		}
	}
	return false
}

// resolveIn follows symbolic links in p as if root were "/" (".." and
// absolute targets stay inside root), as the container will see it.
func resolveIn(root, p string) (string, bool) {
	parts := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for hops := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		next := path.Join(cur, part)
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			if _, serr := os.Lstat(filepath.Join(root, next)); serr != nil {
				return "", false
			}
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", false
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		parts = append(strings.Split(strings.Trim(path.Clean(target), "/"), "/"), parts...)
	}
	return cur, true
}
