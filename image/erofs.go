package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// File systems a build can make. squashfs is the default; erofs reads
// with less CPU and, uncompressed or with lz4, smaller working sets.
const (
	FSSquashfs = "squashfs"
	FSErofs    = "erofs"
)

// FileSystems lists them, for messages and the CLI.
var FileSystems = []string{FSSquashfs, FSErofs}

// ErofsCompressors are what mkfs.erofs from erofs-utils 1.5 (bookworm)
// offers; "none" stores the data uncompressed.
var ErofsCompressors = []string{"lz4hc", "lz4", "none"}

// DefaultErofsCompressor: lz4hc makes images about as small as squashfs
// gzip while decompressing at lz4's speed.
const DefaultErofsCompressor = "lz4hc"

// ErofsOptions are the mkfs.erofs options Strata exposes.
type ErofsOptions struct {
	// Compressor: lz4hc (the default), lz4 or none, optionally with a
	// level after a comma ("lz4hc,12"), as mkfs.erofs -z takes it.
	Compressor string
	// NoXattrs: -x-1, store no extended attributes.
	NoXattrs bool
	// AllRoot: --all-root, every file owned by root.
	AllRoot bool
	// ExtraArgs are passed to mkfs.erofs after Strata's own.
	ExtraArgs []string
	// Mkfs is the program to run; "mkfs.erofs" (from PATH) when empty.
	Mkfs string
}

func (o ErofsOptions) compressor() string {
	if o.Compressor == "" {
		return DefaultErofsCompressor
	}
	return o.Compressor
}

// Validate reports an unknown compressor or a bad level.
func (o ErofsOptions) Validate() error {
	name, level, hasLevel := strings.Cut(o.compressor(), ",")
	known := false
	for _, c := range ErofsCompressors {
		known = known || c == name
	}
	if !known {
		return fmt.Errorf("unknown erofs compressor %q (want %s, lz4hc optionally with a level: lz4hc,12)", name, strings.Join(ErofsCompressors, ", "))
	}
	if hasLevel {
		var n int
		if _, err := fmt.Sscanf(level, "%d", &n); err != nil || fmt.Sprint(n) != level || name != "lz4hc" || n < 1 || n > 12 {
			return fmt.Errorf("erofs compressor %q: only lz4hc takes a level, 1 to 12", o.compressor())
		}
	}
	return nil
}

// args are mkfs.erofs's options before FILE and DIRECTORY.
func (o ErofsOptions) args() []string {
	var a []string
	if c := o.compressor(); c != "none" {
		a = append(a, "-z"+c)
	}
	// mkfs.erofs stamps the build time and a random UUID; a fixed epoch
	// makes the time stamps reproducible, as mksquashfs's are.
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		a = append(a, "-T"+e)
	}
	if o.NoXattrs {
		a = append(a, "-x-1")
	}
	if o.AllRoot {
		a = append(a, "--all-root")
	}
	return append(a, o.ExtraArgs...)
}

// MakeErofs makes the erofs file out from src, a directory or a tarball.
// mkfs.erofs 1.5 reads directories only, so a tarball is unpacked first
// into a directory under tmp (as root, to keep owners and modes).
// mkfs.erofs's output is returned in the error when it fails.
func MakeErofs(ctx context.Context, src, out, tmp string, o ErofsOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	kind, err := Source(src)
	if err != nil {
		return err
	}
	prog := o.Mkfs
	if prog == "" {
		prog = "mkfs.erofs"
	}
	if _, err := exec.LookPath(prog); err != nil {
		return fmt.Errorf("mkfs.erofs not found (install erofs-utils): %w", err)
	}
	switch kind {
	case SourceSquashfs, SourceErofs:
		return fmt.Errorf("%s is a file system image already", src)
	case SourceTar:
		dir, err := os.MkdirTemp(tmp, "strata-erofs-root-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := untar(ctx, src, dir); err != nil {
			return err
		}
		src = dir
	}
	cmd := exec.CommandContext(ctx, prog, append(o.args(), out, src)...)
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s %s failed (%v): %s", prog, strings.Join(cmd.Args[1:], " "), err, strings.TrimSpace(tail(output.String(), 20)))
	}
	return nil
}

// untar unpacks the tarball src into dir with the system's tar, keeping
// numeric owners, modes and extended attributes.
func untar(ctx context.Context, src, dir string) error {
	in, wait, err := openTar(ctx, src)
	if err != nil {
		return err
	}
	defer in.Close()
	cmd := exec.CommandContext(ctx, "tar", "-x", "-C", dir, "--numeric-owner", "-p", "--xattrs", "--xattrs-include=*")
	cmd.Stdin = in
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	err = cmd.Run()
	if werr := wait(); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("unpacking %s for mkfs.erofs: %v: %s", src, err, strings.TrimSpace(tail(output.String(), 5)))
	}
	return nil
}

// ErofsMagic is the erofs superblock's magic number, at ErofsSuperblockOffset.
const ErofsMagic = 0xE0F5E1E2

// ErofsSuperblockOffset is where the superblock starts: the first 1 KiB is
// left for a boot sector.
const ErofsSuperblockOffset = 1024

// erofsHeadSize is how much of a file holds the erofs superblock.
const erofsHeadSize = ErofsSuperblockOffset + 128

// ErofsSuperblock is what an erofs superblock says (little-endian).
type ErofsSuperblock struct {
	BlockSize uint32    `json:"block_size"`
	Blocks    uint32    `json:"blocks"`
	Inodes    uint64    `json:"inodes"`
	BuildTime time.Time `json:"build_time"`
	UUID      string    `json:"uuid"`
	// Compressed: the lz4 feature is set (some files are compressed).
	Compressed bool `json:"compressed"`
}

// Bytes the file system takes: blocks times the block size.
func (s *ErofsSuperblock) Bytes() uint64 { return uint64(s.Blocks) * uint64(s.BlockSize) }

// isErofs says whether head (the first bytes of a file) has the erofs magic.
func isErofs(head []byte) bool {
	return len(head) >= ErofsSuperblockOffset+4 &&
		binary.LittleEndian.Uint32(head[ErofsSuperblockOffset:]) == ErofsMagic
}

// ParseErofsSuperblock reads an erofs superblock from the first bytes of an
// image or file.
func ParseErofsSuperblock(head []byte) (*ErofsSuperblock, error) {
	if len(head) < erofsHeadSize {
		return nil, fmt.Errorf("erofs superblock: %d bytes, want %d", len(head), erofsHeadSize)
	}
	if !isErofs(head) {
		return nil, fmt.Errorf("no erofs: no magic %#x at byte %d", ErofsMagic, ErofsSuperblockOffset)
	}
	b := head[ErofsSuperblockOffset:]
	le := binary.LittleEndian
	bits := b[12]
	if bits < 9 || bits > 16 {
		return nil, fmt.Errorf("erofs superblock: block size 2^%d is out of range", bits)
	}
	u := b[48:64]
	return &ErofsSuperblock{
		BlockSize:  1 << bits,
		Inodes:     le.Uint64(b[16:]),
		BuildTime:  time.Unix(int64(le.Uint64(b[24:])), 0).UTC(),
		Blocks:     le.Uint32(b[36:]),
		UUID:       fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]),
		Compressed: le.Uint32(b[80:])&1 != 0, // EROFS_FEATURE_INCOMPAT_LZ4_0PADDING
	}, nil
}

// FSOf names the file system an image file holds (squashfs or erofs), from
// its superblock, or says why it holds neither.
func FSOf(r io.ReaderAt) (string, error) {
	head := make([]byte, erofsHeadSize)
	n, err := r.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return "", err
	}
	head = head[:n]
	if isErofs(head) {
		if _, err := ParseErofsSuperblock(head); err != nil {
			return "", err
		}
		return FSErofs, nil
	}
	if _, err := ParseSuperblock(head); err != nil {
		return "", fmt.Errorf("neither squashfs nor erofs: %w", err)
	}
	return FSSquashfs, nil
}

func (o BuildOptions) fs() string {
	if o.FS == "" {
		return FSSquashfs
	}
	return o.FS
}

// validateFS checks the file system and its options.
func (o BuildOptions) validateFS() error {
	switch o.fs() {
	case FSSquashfs:
		return o.Squashfs.Validate()
	case FSErofs:
		return o.Erofs.Validate()
	}
	return fmt.Errorf("unknown file system %q (want %s)", o.FS, strings.Join(FileSystems, " or "))
}

// compressor names the compression, for the progress line.
func (o BuildOptions) compressor() string {
	if o.fs() == FSErofs {
		return "erofs " + o.Erofs.compressor()
	}
	return o.Squashfs.compressor()
}

// makeFS makes the file system file out from src; tmp has room for an
// unpacked tarball.
func (o BuildOptions) makeFS(ctx context.Context, src, out, tmp string) error {
	if o.fs() == FSErofs {
		return MakeErofs(ctx, src, out, tmp, o.Erofs)
	}
	return MakeSquashfs(ctx, src, out, o.Squashfs)
}
