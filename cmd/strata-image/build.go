package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-project/strata/image"
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
		pool, ns, img, snap, size, comp, tmp, keep, progress, fsType, erofsComp string
		protect, force, noI, noX, noXattrs, allRoot, noVerify, asJSON, digest   bool
		inFlight                                                                int
		chunk                                                                   string
		extra, erofsExtra                                                       listFlag
		objSize, stripeUnit                                                     string
		stripeCount                                                             uint64
	)
	fs.StringVar(&pool, "pool", "", "pool")
	fs.StringVar(&ns, "namespace", "", "namespace")
	fs.StringVar(&img, "image", "", "image")
	fs.StringVar(&snap, "snapshot", "", "snapshot to make")
	fs.BoolVar(&protect, "protect", false, "protect the snapshot")
	fs.StringVar(&size, "size", "auto", "image size")
	fs.StringVar(&objSize, "object-size", "4M", "RBD object size")
	fs.StringVar(&stripeUnit, "stripe-unit", "", "RBD stripe unit (default: the object size)")
	fs.Uint64Var(&stripeCount, "stripe-count", 1, "objects a stripe spans")
	fs.StringVar(&fsType, "fs", image.FSSquashfs, "file system: squashfs or erofs")
	fs.StringVar(&comp, "compressor", image.DefaultCompressor, "squashfs compressor")
	fs.StringVar(&erofsComp, "erofs-compress", image.DefaultErofsCompressor, "erofs compressor: lz4hc[,LEVEL], lz4 or none")
	fs.Var(&erofsExtra, "mkfs-erofs-arg", "extra mkfs.erofs argument")
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
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(stderr, "build", err)
	}
	if len(pos) != 1 {
		return usageError(stderr, "build", "want one DIR, TARBALL or SQUASHFS file, got %d arguments", len(pos))
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
	layout, err := objectLayout(objSize, stripeUnit, stripeCount)
	if err != nil {
		return usageError(stderr, "build", "%v", err)
	}
	ch, err := image.ParseSize(chunk)
	if err != nil || ch == 0 || ch > 64<<20 {
		return usageError(stderr, "build", "--chunk-size %q: want 4K to 64M", chunk)
	}
	if inFlight < 1 || inFlight > 64 {
		return usageError(stderr, "build", "--in-flight %d: want 1 to 64", inFlight)
	}
	sq := image.SquashfsOptions{Compressor: comp, NoCompressInodes: noI, NoCompressXattrs: noX,
		NoXattrs: noXattrs, AllRoot: allRoot, ExtraArgs: extra}
	ero := image.ErofsOptions{Compressor: erofsComp, NoXattrs: noXattrs, AllRoot: allRoot, ExtraArgs: erofsExtra}
	if err := checkFSFlags(fs, fsType, sq, ero); err != nil {
		return usageError(stderr, "build", "%v", err)
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
		FS: fsType, Squashfs: sq, Erofs: ero, Size: sz, Layout: layout, Snapshot: snap, Protect: protect, Force: force,
		TempDir: tmp, KeepSquashfs: keep, Progress: p,
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
	fmt.Fprintf(stdout, "%s %s: %s %s in a %s image (features: layering)\n", what, res.Ref,
		image.FormatBytes(res.SquashfsSize), res.FS, image.FormatBytes(int64(res.ImageSize)))
	if res.SHA256 != "" {
		fmt.Fprintf(stdout, "sha256 %s\n", res.SHA256)
	}
	fmt.Fprintf(stdout, "layout: %s\n", res.Layout)
	if res.Layout.Fancy() {
		fmt.Fprintf(stdout, "striped: nodes need Linux %s or later to map it (krbd)\n", image.FancyStripingKernel)
	}
	if res.Verified {
		fmt.Fprintf(stdout, "verified: read back, size and CRC-32C of every chunk match\n")
	} else {
		fmt.Fprintf(stdout, "not verified (--no-verify)\n")
	}
	fmt.Fprintf(stdout, "%s %s, upload %s (%s), verify %s\n", res.FS, res.Squashfs.Round(time.Millisecond),
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
	Pool         string  `json:"pool"`
	Namespace    string  `json:"namespace,omitempty"`
	Image        string  `json:"image"`
	Snapshot     string  `json:"snapshot,omitempty"`
	FS           string  `json:"fs"`
	Protected    bool    `json:"protected,omitempty"`
	ImageSize    uint64  `json:"image_size"`
	SquashfsSize int64   `json:"squashfs_size"`
	ObjectSize   uint64  `json:"object_size"`
	StripeUnit   uint64  `json:"stripe_unit"`
	StripeCount  uint64  `json:"stripe_count"`
	SHA256       string  `json:"sha256,omitempty"`
	Verified     bool    `json:"verified"`
	Replaced     bool    `json:"replaced,omitempty"`
	InPlace      bool    `json:"in_place,omitempty"`
	SquashfsSec  float64 `json:"squashfs_seconds"`
	UploadSec    float64 `json:"upload_seconds"`
	VerifySec    float64 `json:"verify_seconds"`
	UploadBps    float64 `json:"upload_bytes_per_second"`
}

func buildJSON(r *image.BuildResult) buildOut {
	return buildOut{
		FS: r.FS, ObjectSize: r.Layout.Bytes(), StripeUnit: r.Layout.Unit(), StripeCount: r.Layout.Count(), Pool: r.Ref.Pool, Namespace: r.Ref.Namespace, Image: r.Ref.Image, Snapshot: r.Ref.Snapshot,
		Protected: r.Protected, ImageSize: r.ImageSize, SquashfsSize: r.SquashfsSize, SHA256: r.SHA256, Verified: r.Verified,
		Replaced: r.Replaced, InPlace: r.InPlace, SquashfsSec: r.Squashfs.Seconds(),
		UploadSec: r.Upload.Seconds(), VerifySec: r.Verify.Seconds(), UploadBps: r.Throughput(),
	}
}

// checkFSFlags refuses options of the file system not being made, so that
// --fs erofs --compressor xz does not silently ignore the compressor.
func checkFSFlags(fs *flag.FlagSet, fsType string, sq image.SquashfsOptions, ero image.ErofsOptions) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	only := map[string][]string{
		image.FSSquashfs: {"erofs-compress", "mkfs-erofs-arg"},
		image.FSErofs:    {"compressor", "no-compress-inodes", "no-compress-xattrs", "mksquashfs-arg"},
	}
	others, ok := only[fsType]
	if !ok {
		return fmt.Errorf("--fs %q: want %s", fsType, strings.Join(image.FileSystems, " or "))
	}
	for _, o := range others {
		if set[o] {
			return fmt.Errorf("--%s is not an option of --fs %s", o, fsType)
		}
	}
	if fsType == image.FSErofs {
		if err := ero.Validate(); err != nil {
			return fmt.Errorf("--erofs-compress: %v", err)
		}
		return nil
	}
	if err := sq.Validate(); err != nil {
		return fmt.Errorf("--compressor: %v", err)
	}
	return nil
}

// objectLayout reads --object-size, --stripe-unit and --stripe-count.
func objectLayout(objSize, unit string, count uint64) (image.ObjectLayout, error) {
	var l image.ObjectLayout
	var err error
	if l.ObjectSize, err = image.ParseSize(objSize); err != nil || l.ObjectSize == 0 {
		return l, fmt.Errorf("--object-size %q: want a power of two from 4K to 32M", objSize)
	}
	if unit != "" {
		if l.StripeUnit, err = image.ParseSize(unit); err != nil || l.StripeUnit == 0 {
			return l, fmt.Errorf("--stripe-unit %q: want a power of two from 4K up to the object size", unit)
		}
	}
	if count == 0 {
		return l, fmt.Errorf("--stripe-count 0: want 1 or more")
	}
	l.StripeCount = count
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("object layout: %v", err)
	}
	return l, nil
}
