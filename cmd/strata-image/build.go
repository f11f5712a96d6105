package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-project/strata/image"
	"github.com/strata-project/strata/internal/verity"
)

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func progressFor(mode string, w io.Writer) (image.Progress, error) {
	switch mode {
	case "auto":
		return image.NewProgress(w, isTerminal(w)), nil
	case "bar":
		return image.NewProgress(w, true), nil
	case "lines":
		return image.NewProgress(w, false), nil
	case "none":
		return image.NopProgress{}, nil
	}
	return nil, fmt.Errorf("--progress %q: want auto, bar, lines or none", mode)
}

func build(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("build", stderr)
	var c connFlags
	c.add(fs)
	var (
		pool, ns, img, snap, size, comp, tmp, keep, progress, output                      string
		protect, force, noI, noX, noXattrs, allRoot, noVerify, asJSON, digest, withVerity bool
		inFlight                                                                          int
		chunk                                                                             string
		extra                                                                             listFlag
	)
	fs.StringVar(&pool, "pool", "", "pool")
	fs.StringVar(&ns, "namespace", "", "namespace")
	fs.StringVar(&img, "image", "", "image")
	fs.StringVar(&snap, "snapshot", "", "snapshot to make")
	fs.BoolVar(&protect, "protect", false, "protect the snapshot")
	fs.StringVar(&size, "size", "auto", "image size")
	fs.StringVar(&comp, "compressor", image.DefaultCompressor, "squashfs compressor")
	fs.BoolVar(&force, "force", false, "replace an existing image")
	fs.BoolVar(&noI, "no-compress-inodes", false, "mksquashfs -noI")
	fs.BoolVar(&noX, "no-compress-xattrs", false, "mksquashfs -noX")
	fs.BoolVar(&noXattrs, "no-xattrs", false, "mksquashfs -no-xattrs")
	fs.BoolVar(&allRoot, "all-root", false, "mksquashfs -all-root")
	fs.Var(&extra, "mksquashfs-arg", "extra mksquashfs argument")
	fs.StringVar(&tmp, "tmpdir", "", "temporary directory")
	fs.StringVar(&keep, "keep-squashfs", "", "keep the squashfs file here")
	fs.IntVar(&inFlight, "in-flight", 8, "writes in flight")
	fs.StringVar(&chunk, "chunk-size", "4M", "bytes per write")
	fs.BoolVar(&noVerify, "no-verify", false, "skip the read-back")
	fs.BoolVar(&digest, "sha256", false, "print the squashfs's SHA-256")
	fs.StringVar(&progress, "progress", "auto", "auto|bar|lines|none")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fs.StringVar(&output, "output", "", "build an image file here instead of an RBD image")
	fs.BoolVar(&withVerity, "verity", false, "append the dm-verity hash tree")
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(stderr, "build", err)
	}
	if len(pos) != 1 {
		return usageError(stderr, "build", "want one DIR, TARBALL or SQUASHFS file, got %d arguments", len(pos))
	}
	sq := image.SquashfsOptions{Compressor: comp, NoCompressInodes: noI, NoCompressXattrs: noX,
		NoXattrs: noXattrs, AllRoot: allRoot, ExtraArgs: extra}
	if output != "" {
		if pool != "" || img != "" || snap != "" {
			return usageError(stderr, "build", "--output builds a file: no --pool, --image or --snapshot")
		}
		p, err := progressFor(progress, stderr)
		if err != nil {
			return usageError(stderr, "build", "%v", err)
		}
		return buildFile(ctx, pos[0], output, image.FileOptions{Squashfs: sq, Verity: withVerity, Force: force, Progress: p}, asJSON, stdout, stderr)
	}
	if pool == "" || img == "" {
		return usageError(stderr, "build", "--pool and --image are required")
	}
	if protect && snap == "" {
		return usageError(stderr, "build", "--protect needs --snapshot")
	}
	r := image.Ref{Pool: pool, Namespace: ns, Image: img}
	if err := r.Validate(); err != nil {
		return usageError(stderr, "build", "%v", err)
	}
	sz, err := image.ParseSize(size)
	if err != nil {
		return usageError(stderr, "build", "--size: %v", err)
	}
	ch, err := image.ParseSize(chunk)
	if err != nil || ch == 0 || ch > 64<<20 {
		return usageError(stderr, "build", "--chunk-size %q: want 4K to 64M", chunk)
	}
	if inFlight < 1 || inFlight > 64 {
		return usageError(stderr, "build", "--in-flight %d: want 1 to 64", inFlight)
	}
	if err := sq.Validate(); err != nil {
		return usageError(stderr, "build", "--compressor: %v", err)
	}
	// Progress goes to stderr: stdout carries the result.
	p, err := progressFor(progress, stderr)
	if err != nil {
		return usageError(stderr, "build", "%v", err)
	}
	if _, err := image.Source(pos[0]); err != nil {
		return err
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := conn.Build(ctx, pos[0], r, image.BuildOptions{
		Squashfs: sq, Size: sz, Snapshot: snap, Protect: protect, Force: force,
		TempDir: tmp, KeepSquashfs: keep, Progress: p, Verity: withVerity,
		Write: image.WriteOptions{ChunkSize: int(ch), InFlight: inFlight, NoVerify: noVerify, SHA256: digest},
	})
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, buildJSON(res))
	}
	what := "built"
	if res.Replaced {
		what = "replaced"
		if res.InPlace {
			what = "wrote over (in place)"
		}
	}
	fmt.Fprintf(stdout, "%s %s: %s squashfs in a %s image (features: layering)\n", what, res.Ref,
		image.FormatBytes(res.SquashfsSize), image.FormatBytes(int64(res.ImageSize)))
	if res.SHA256 != "" {
		fmt.Fprintf(stdout, "sha256 %s\n", res.SHA256)
	}
	if v := res.Verity; v != nil {
		fmt.Fprintf(stdout, "verity: root hash %s (hash tree at %d, trailer in the last 4 KiB)\n", v.RootHashHex(), v.HashOffset)
	}
	if res.Verified {
		fmt.Fprintf(stdout, "verified: read back, %s match\n", image.ReadBack)
	} else {
		fmt.Fprintf(stdout, "not verified (--no-verify)\n")
	}
	fmt.Fprintf(stdout, "squashfs %s, upload %s (%s), verify %s\n", res.Squashfs.Round(time.Millisecond),
		res.Upload.Round(time.Millisecond), image.FormatRate(res.SquashfsSize, res.Upload), res.Verify.Round(time.Millisecond))
	if res.Ref.Snapshot != "" {
		prot := ""
		if res.Protected {
			prot = ", protected"
		}
		fmt.Fprintf(stdout, "nodes map it read-only as %s (snapshot%s)\n", res.Ref, prot)
	}
	return nil
}

type buildOut struct {
	Pool         string     `json:"pool"`
	Namespace    string     `json:"namespace,omitempty"`
	Image        string     `json:"image"`
	Snapshot     string     `json:"snapshot,omitempty"`
	Protected    bool       `json:"protected,omitempty"`
	ImageSize    uint64     `json:"image_size"`
	SquashfsSize int64      `json:"squashfs_size"`
	SHA256       string     `json:"sha256,omitempty"`
	Verified     bool       `json:"verified"`
	Replaced     bool       `json:"replaced,omitempty"`
	InPlace      bool       `json:"in_place,omitempty"`
	SquashfsSec  float64    `json:"squashfs_seconds"`
	UploadSec    float64    `json:"upload_seconds"`
	VerifySec    float64    `json:"verify_seconds"`
	UploadBps    float64    `json:"upload_bytes_per_second"`
	Verity       *verityOut `json:"verity,omitempty"`
}

func buildJSON(r *image.BuildResult) buildOut {
	return buildOut{
		Pool: r.Ref.Pool, Namespace: r.Ref.Namespace, Image: r.Ref.Image, Snapshot: r.Ref.Snapshot,
		Protected: r.Protected, ImageSize: r.ImageSize, SquashfsSize: r.SquashfsSize, SHA256: r.SHA256, Verified: r.Verified,
		Replaced: r.Replaced, InPlace: r.InPlace, SquashfsSec: r.Squashfs.Seconds(),
		UploadSec: r.Upload.Seconds(), VerifySec: r.Verify.Seconds(), UploadBps: r.Throughput(),
		Verity: verityJSON(r.Verity),
	}
}

// buildFile builds an image file for the loopback scheme.
func buildFile(ctx context.Context, src, out string, o image.FileOptions, asJSON bool, stdout, stderr io.Writer) error {
	if err := o.Squashfs.Validate(); err != nil {
		return usageError(stderr, "build", "--compressor: %v", err)
	}
	res, err := image.BuildFile(ctx, src, out, o)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, fileJSON(res))
	}
	fmt.Fprintf(stdout, "built %s: %s squashfs, %s in all\n", res.File, image.FormatBytes(res.SquashfsSize), image.FormatBytes(res.Size))
	if v := res.Verity; v != nil {
		fmt.Fprintf(stdout, "verity: root hash %s (hash tree at %d, %s)\n", v.RootHashHex(), v.HashOffset, res.Hash.Round(time.Millisecond))
	}
	return nil
}

type fileOut struct {
	File         string     `json:"file"`
	SquashfsSize int64      `json:"squashfs_size"`
	Size         int64      `json:"size"`
	Verity       *verityOut `json:"verity,omitempty"`
}

// verityOut is how build --json and info --json show verity parameters.
type verityOut struct {
	RootHash   string `json:"root_hash"`
	Salt       string `json:"salt"`
	DataBlocks uint64 `json:"data_blocks"`
	HashOffset uint64 `json:"hash_offset"`
	Algorithm  string `json:"hash_algorithm"`
	BlockSize  int    `json:"block_size"`
}

func verityJSON(v *verity.Params) *verityOut {
	if v == nil {
		return nil
	}
	return &verityOut{RootHash: v.RootHashHex(), Salt: hex.EncodeToString(v.Salt), DataBlocks: v.DataBlocks,
		HashOffset: v.HashOffset, Algorithm: verity.Algorithm, BlockSize: verity.BlockSize}
}

func fileJSON(r *image.FileResult) fileOut {
	return fileOut{File: r.File, SquashfsSize: r.SquashfsSize, Size: r.Size, Verity: verityJSON(r.Verity)}
}
