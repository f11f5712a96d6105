package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-project/strata/internal/verity"
)

// RBD image metadata a build from an OCI source sets (`rbd image-meta
// list` shows them), so that nodes and admins can tell which build an
// image holds.
const (
	MetaOCISource   = "strata.oci.source"   // e.g. docker://registry/app:1.0
	MetaOCIDigest   = "strata.oci.digest"   // the image manifest's digest, sha256:...
	MetaOCIPlatform = "strata.oci.platform" // e.g. linux/amd64
	// MetaVerity holds a --verity build's parameters, for admins; nodes
	// read the trailer in the image's last block.
	MetaVerity = "strata.verity"
)

// MetadataKeys are the metadata keys Strata owns: a rebuild removes those
// it does not set (no stale digest or root hash on an image written over).
var MetadataKeys = []string{MetaOCISource, MetaOCIDigest, MetaOCIPlatform, MetaVerity}

// OCIInfo says which OCI image a build was made from and what it holds.
type OCIInfo struct {
	Source   string // as given, e.g. oci:/srv/layout:1.0
	Digest   string // of the image's manifest
	Platform string
	// Systemd: the image holds systemd as its init, so it boots.
	Systemd bool
	// Entrypoint, Cmd, Env and WorkingDir are the image's configuration:
	// what a container of it runs when it does not boot.
	Entrypoint, Cmd, Env []string
	WorkingDir           string
	// FlatSize is the size of the layers' tar streams (uncompressed).
	FlatSize int64
}

// Metadata is what an image built from it records.
func (o *OCIInfo) Metadata() map[string]string {
	if o == nil {
		return nil
	}
	return map[string]string{MetaOCISource: o.Source, MetaOCIDigest: o.Digest, MetaOCIPlatform: o.Platform}
}

// made is a squashfs file made from a source.
type made struct {
	size              int64
	flatten, squashfs time.Duration
	oci               *OCIInfo
}

// makeFile makes the file system image out (squashfs or erofs, opts.FS) (in dir, a temporary directory)
// from src: a directory, a tarball, or an OCI source flattened first.
func makeFile(ctx context.Context, src, dir, out string, opts BuildOptions, p Progress) (*made, error) {
	m := &made{}
	from := src
	if ref, ok, err := ParseOCIRef(src); err != nil {
		return nil, err
	} else if ok {
		root := filepath.Join(dir, "rootfs")
		start := time.Now()
		if m.oci, err = flattenOCI(ctx, ref, src, root, opts, p); err != nil {
			return nil, err
		}
		from, m.flatten = root, time.Since(start)
	}
	p.Begin(opts.fs(), 0)
	start := time.Now()
	stop := watchFile(out, p)
	err := opts.makeFS(ctx, from, out, dir)
	stop()
	if err != nil {
		p.End("failed")
		return nil, err
	}
	m.squashfs = time.Since(start)
	st, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	m.size = st.Size()
	p.End(fmt.Sprintf("%s, %s, %s", FormatBytes(m.size), opts.compressor(), m.squashfs.Round(time.Millisecond)))
	if from != src {
		// The flattened tree is no longer needed: free the room now.
		os.RemoveAll(from)
	}
	return m, nil
}

// flattenOCI opens the OCI image and flattens it into root.
func flattenOCI(ctx context.Context, ref OCIRef, src, root string, opts BuildOptions, p Progress) (*OCIInfo, error) {
	platform := opts.Platform
	if platform.OS == "" {
		platform = HostPlatform()
	}
	phase := "flatten"
	if ref.Transport == TransportDocker {
		phase = "pull and flatten"
	}
	start := time.Now()
	img, err := OpenOCI(ctx, ref, platform, filepath.Dir(root))
	if err != nil {
		return nil, err
	}
	defer img.Close()
	p.Begin(phase, img.PulledSize())
	n, err := Flatten(ctx, img, root, p)
	if err != nil {
		p.End("failed")
		return nil, err
	}
	d := time.Since(start)
	p.End(fmt.Sprintf("%s %s, %s in %s (%s)", ref, img.Digest, FormatBytes(n), d.Round(time.Millisecond), FormatRate(n, d)))
	info := &OCIInfo{Source: src, Digest: img.Digest.String(), Platform: platform.String(), FlatSize: n,
		Systemd: HasSystemd(root)}
	if c := img.Config; c != nil {
		info.Entrypoint, info.Cmd, info.Env, info.WorkingDir = c.Config.Entrypoint, c.Config.Cmd, c.Config.Env, c.Config.WorkingDir
	}
	return info, nil
}

// BuildFile makes an image file (out) from src without a cluster: for the
// loopback and nfs-loopback schemes, or to upload later. src is a
// directory, a tarball, an OCI source, or a squashfs or erofs file (copied
// as it is). With Verity, the hash tree follows the file system (at its size
// rounded up to a block) and the trailer fills the last block
// (internal/verity). The file is made in a temporary directory and moved
// to out at the end, so a failed build leaves no half-made file there.
func BuildFile(ctx context.Context, src, out string, opts BuildOptions) (*BuildResult, error) {
	if err := opts.validateFS(); err != nil {
		return nil, err
	}
	kind, isOCI, err := sourceOf(src)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(out); err == nil && !opts.Force {
		return nil, fmt.Errorf("%s exists: --force replaces it", out)
	}
	p := progressOr(opts.Progress)
	dir, err := os.MkdirTemp(opts.TempDir, "strata-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "image."+opts.fs())
	var m *made
	if !isOCI && (kind == SourceSquashfs || kind == SourceErofs) {
		m, err = copySquashfs(src, file, p)
	} else {
		m, err = makeFile(ctx, src, dir, file, opts, p)
	}
	if err != nil {
		return nil, err
	}
	res := &BuildResult{FS: opts.fs(), SquashfsSize: m.size, FileSize: m.size, OCI: m.oci, Squashfs: m.squashfs, Flatten: m.flatten}
	switch {
	case isOCI:
	case kind == SourceSquashfs:
		res.FS = FSSquashfs
	case kind == SourceErofs:
		res.FS = FSErofs
	}
	if opts.Verity {
		if err := appendVerity(file, opts.Salt, opts.Sign, res, p); err != nil {
			return nil, err
		}
	}
	if err := moveFile(file, out); err != nil {
		return nil, err
	}
	return res, nil
}

// sourceOf says what src is: an OCI source, or else a Source kind.
func sourceOf(src string) (kind SourceKind, isOCI bool, err error) {
	if _, isOCI, err = ParseOCIRef(src); err != nil || isOCI {
		return 0, isOCI, err
	}
	kind, err = Source(src)
	return kind, false, err
}

// copySquashfs copies a squashfs or erofs file made before (BuildFile
// appends to its copy, never to the source).
func copySquashfs(src, file string, p Progress) (*made, error) {
	p.Begin("copy", 0)
	start := time.Now()
	if err := copyFile(src, file); err != nil {
		p.End("failed")
		return nil, err
	}
	st, err := os.Stat(file)
	if err != nil {
		p.End("failed")
		return nil, err
	}
	m := &made{size: st.Size(), squashfs: time.Since(start)}
	p.End(FormatBytes(m.size) + ", copied as it is")
	return m, nil
}

// appendVerity appends the hash tree and the trailer to file and records
// them in res.
func appendVerity(file string, salt []byte, sign *verity.Signer, res *BuildResult, p Progress) error {
	p.Begin("verity", res.SquashfsSize)
	start := time.Now()
	v, err := AppendSignedVerity(file, salt, sign)
	res.Hash = time.Since(start)
	if err != nil {
		p.End("failed")
		return err
	}
	p.End("root hash " + v.RootHashHex())
	res.Verity, res.FileSize = v, int64(v.End()+verity.TrailerSize)
	return nil
}

func progressOr(p Progress) Progress {
	if p == nil {
		return NopProgress{}
	}
	return p
}

// Build makes a squashfs from src (a directory, a tarball or an OCI
// source) and writes it into the image ref names (ref.Snapshot is
// ignored: opts.Snapshot is the snapshot to make). A src that is a
// squashfs file already is written as it is. An OCI source's digest is
// recorded in the image's metadata (MetadataKeys).
func (c *Conn) Build(ctx context.Context, src string, ref Ref, opts BuildOptions) (*BuildResult, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if err := opts.validateFS(); err != nil {
		return nil, err
	}
	if err := opts.Layout.Validate(); err != nil {
		return nil, err
	}
	p := progressOr(opts.Progress)
	upload := UploadOptions{
		Verity: opts.Verity, Sign: opts.Sign, Size: opts.Size, Layout: opts.Layout, Snapshot: opts.Snapshot, Protect: opts.Protect, Force: opts.Force,
		Write: opts.Write, Progress: p,
	}
	kind, isOCI, err := sourceOf(src)
	if err != nil {
		return nil, err
	}
	if !isOCI && (kind == SourceSquashfs || kind == SourceErofs) {
		// Made before: written as it is, no copy.
		return c.Upload(ctx, src, ref, upload)
	}
	// Refuse early, before spending time on mksquashfs or mkfs.erofs.
	if err := c.checkTarget(ref, opts.Force); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.TempDir, "strata-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "image."+opts.fs())
	m, err := makeFile(ctx, src, dir, file, opts, p)
	if err != nil {
		return nil, err
	}
	upload.Metadata = m.oci.Metadata()
	res, err := c.Upload(ctx, file, ref, upload)
	if err != nil {
		return nil, err
	}
	res.Squashfs, res.Flatten, res.OCI = m.squashfs, m.flatten, m.oci
	if opts.KeepSquashfs != "" {
		if err := moveFile(file, opts.KeepSquashfs); err != nil {
			return res, fmt.Errorf("keeping the %s: %w", opts.fs(), err)
		}
	}
	return res, nil
}
