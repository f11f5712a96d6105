package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"time"
)

// Compressors mksquashfs is asked to use.
var Compressors = []string{"zstd", "xz", "gzip"}

// DefaultCompressor is used when SquashfsOptions.Compressor is empty.
const DefaultCompressor = "zstd"

// SquashfsOptions are the mksquashfs options Strata exposes. The file system
// is always made with -noappend (a new file, never added to) and
// mksquashfs's default -reproducible: the same input gives the same bytes
// (set SOURCE_DATE_EPOCH in the environment to also fix the time stamps).
type SquashfsOptions struct {
	// Compressor: zstd (the default), xz or gzip.
	Compressor string
	// NoCompressInodes: -noI, leave the inode table uncompressed (one of
	// the seed procedure's flags).
	NoCompressInodes bool
	// NoCompressXattrs: -noX, leave extended attributes uncompressed (the
	// seed procedure's other flag).
	NoCompressXattrs bool
	// NoXattrs: -no-xattrs, store no extended attributes at all.
	NoXattrs bool
	// AllRoot: -all-root, every file owned by root.
	AllRoot bool
	// ExtraArgs are passed to mksquashfs after Strata's own.
	ExtraArgs []string
	// Mksquashfs is the program to run; "mksquashfs" (from PATH) when empty.
	Mksquashfs string
}

// Validate reports an unknown compressor.
func (o SquashfsOptions) Validate() error {
	c := o.compressor()
	for _, known := range Compressors {
		if c == known {
			return nil
		}
	}
	return fmt.Errorf("unknown compressor %q (want %s)", c, strings.Join(Compressors, ", "))
}

func (o SquashfsOptions) compressor() string {
	if o.Compressor == "" {
		return DefaultCompressor
	}
	return o.Compressor
}

// args are mksquashfs's options after SOURCE and FILESYSTEM.
func (o SquashfsOptions) args() []string {
	a := []string{"-noappend", "-no-progress", "-comp", o.compressor()}
	if o.NoCompressInodes {
		a = append(a, "-noI")
	}
	if o.NoCompressXattrs {
		a = append(a, "-noX")
	}
	if o.NoXattrs {
		a = append(a, "-no-xattrs")
	}
	if o.AllRoot {
		a = append(a, "-all-root")
	}
	return append(a, o.ExtraArgs...)
}

// SourceKind is what a build reads from.
type SourceKind int

const (
	SourceDir      SourceKind = iota // a directory: its contents become the image's root
	SourceTar                        // a tarball, plain or compressed (gzip, bzip2, xz, zstd)
	SourceSquashfs                   // a squashfs file made before: written as it is
	SourceErofs                      // an erofs file made before: written as it is
)

// tarCompression names how a tarball is compressed: "", gzip, bzip2, xz, zstd.
func tarCompression(head []byte) (string, error) {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip", nil
	case bytes.HasPrefix(head, []byte("BZh")):
		return "bzip2", nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "xz", nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd", nil
	case len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")):
		return "", nil
	}
	return "", errors.New("neither a directory, a tar archive (plain, gzip, bzip2, xz or zstd) nor a squashfs or erofs file")
}

// Source looks at what a build was given.
func Source(p string) (SourceKind, error) {
	st, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	if st.IsDir() {
		return SourceDir, nil
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%s: neither a directory nor a regular file", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	head := make([]byte, erofsHeadSize)
	n, _ := io.ReadFull(f, head)
	if isErofs(head[:n]) {
		if _, err := ParseErofsSuperblock(head[:n]); err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		return SourceErofs, nil
	}
	if bytes.HasPrefix(head[:n], SquashfsMagic) {
		if _, err := ParseSuperblock(head[:n]); err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		return SourceSquashfs, nil
	}
	if _, err := tarCompression(head[:n]); err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	return SourceTar, nil
}

// MakeSquashfs makes the squashfs file out from src (a directory, or a tar
// archive that mksquashfs reads with -tar), replacing out. mksquashfs's
// output is returned in the error when it fails.
func MakeSquashfs(ctx context.Context, src, out string, o SquashfsOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	kind, err := Source(src)
	if err != nil {
		return err
	}
	prog := o.Mksquashfs
	if prog == "" {
		prog = "mksquashfs"
	}
	if _, err := exec.LookPath(prog); err != nil {
		return fmt.Errorf("mksquashfs not found (install squashfs-tools): %w", err)
	}
	var cmd *exec.Cmd
	var stdin io.ReadCloser
	var waitIn func() error
	switch kind {
	case SourceSquashfs, SourceErofs:
		return fmt.Errorf("%s is a file system image already", src)
	case SourceDir:
		cmd = exec.CommandContext(ctx, prog, append([]string{src, out}, o.args()...)...)
	case SourceTar:
		root, err := tarRoot(ctx, src)
		if err != nil {
			return err
		}
		stdin, waitIn, err = openTar(ctx, src)
		if err != nil {
			return err
		}
		defer stdin.Close()
		args := append([]string{"-", out, "-tar"}, o.args()...)
		args = append(args, root.args()...)
		cmd = exec.CommandContext(ctx, prog, args...)
		cmd.Stdin = stdin
	}
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	err = cmd.Run()
	if waitIn != nil {
		if werr := waitIn(); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := output.String()
		if i := strings.Index(msg, "SYNTAX:"); i >= 0 {
			// A usage error: mksquashfs prints its whole help after it.
			msg = msg[:i]
		}
		return fmt.Errorf("%s %s failed (%v): %s", prog, strings.Join(cmd.Args[1:], " "), err, strings.TrimSpace(tail(msg, 20)))
	}
	return nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// rootEntry is what a tarball says about its root directory. mksquashfs -tar
// skips the "./" entry, so Strata passes it on as -root-* options.
type rootEntry struct {
	mode     int64
	uid, gid int
	mtime    time.Time
	found    bool
}

func (r rootEntry) args() []string {
	if !r.found {
		// No "./" entry: a root directory as a root file system wants it.
		return []string{"-root-mode", "0755", "-root-uid", "0", "-root-gid", "0"}
	}
	a := []string{
		"-root-mode", fmt.Sprintf("%o", r.mode&0o7777),
		"-root-uid", strconv.Itoa(r.uid),
		"-root-gid", strconv.Itoa(r.gid),
	}
	// mksquashfs refuses command-line times together with SOURCE_DATE_EPOCH.
	if os.Getenv("SOURCE_DATE_EPOCH") == "" && r.mtime.Unix() > 0 && r.mtime.Unix() < 1<<32 {
		a = append(a, "-root-time", strconv.FormatInt(r.mtime.Unix(), 10))
	}
	return a
}

// tarRoot reads the first entry of a tarball: when it is the root directory
// ("./", "/" or "."), its mode, owner and time.
func tarRoot(ctx context.Context, src string) (rootEntry, error) {
	r, wait, err := openTar(ctx, src)
	if err != nil {
		return rootEntry{}, err
	}
	defer func() {
		r.Close()
		_ = wait() // the decompressor is cut short on purpose
	}()
	hdr, err := tar.NewReader(r).Next()
	if err == io.EOF {
		return rootEntry{}, nil
	}
	if err != nil {
		return rootEntry{}, fmt.Errorf("%s: reading the tar archive: %w", src, err)
	}
	name := path.Clean("/" + hdr.Name)
	if name != "/" || hdr.Typeflag != tar.TypeDir {
		return rootEntry{}, nil
	}
	return rootEntry{mode: hdr.Mode, uid: hdr.Uid, gid: hdr.Gid, mtime: hdr.ModTime, found: true}, nil
}

// openTar gives the uncompressed tar stream of src. wait reports the
// decompressor's failure, once the stream has been read or closed.
func openTar(ctx context.Context, src string) (io.ReadCloser, func() error, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	head, _ := br.Peek(512)
	comp, err := tarCompression(head)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", src, err)
	}
	none := func() error { return nil }
	switch comp {
	case "":
		return readCloser{br, f}, none, nil
	case "gzip":
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", src, err)
		}
		return readCloser{zr, f}, none, nil
	case "bzip2":
		return readCloser{bzip2.NewReader(br), f}, none, nil
	}
	// xz and zstd: the system's decompressors.
	prog := map[string]string{"xz": "xz", "zstd": "zstd"}[comp]
	if _, err := exec.LookPath(prog); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s is %s-compressed but %s is not installed", src, comp, prog)
	}
	cmd := exec.CommandContext(ctx, prog, "-dc")
	cmd.Stdin = br
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, nil, err
	}
	closed := false
	rc := &cmdReader{ReadCloser: out, close: func() { closed = true; f.Close() }}
	wait := func() error {
		err := cmd.Wait()
		f.Close()
		if err != nil && !closed {
			return fmt.Errorf("%s -dc %s: %v: %s", prog, src, err, tail(stderr.String(), 5))
		}
		return nil
	}
	return rc, wait, nil
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

type cmdReader struct {
	io.ReadCloser
	close func()
}

func (r *cmdReader) Close() error {
	r.close()
	return r.ReadCloser.Close()
}

// SquashfsMagic starts every squashfs file system ("hsqs").
var SquashfsMagic = []byte("hsqs")

// SuperblockSize is the size of a squashfs superblock.
const SuperblockSize = 96

// Superblock is what a squashfs superblock says (version 4, little-endian).
type Superblock struct {
	Inodes      uint32    `json:"inodes"`
	ModTime     time.Time `json:"mkfs_time"`
	BlockSize   uint32    `json:"block_size"`
	Fragments   uint32    `json:"fragments"`
	Compression string    `json:"compression"`
	Flags       uint16    `json:"flags"`
	IDs         uint16    `json:"ids"`
	Major       uint16    `json:"major"`
	Minor       uint16    `json:"minor"`
	BytesUsed   uint64    `json:"bytes_used"`
}

var compressionNames = map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}

// ParseSuperblock reads a squashfs superblock from the first bytes of an
// image or file. It fails when the magic is not "hsqs".
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperblockSize {
		return nil, fmt.Errorf("squashfs superblock: %d bytes, want %d", len(b), SuperblockSize)
	}
	if !bytes.Equal(b[:4], SquashfsMagic) {
		return nil, fmt.Errorf("no squashfs: the first bytes are %q, not %q", b[:4], SquashfsMagic)
	}
	le := binary.LittleEndian
	sb := &Superblock{
		Inodes:    le.Uint32(b[4:]),
		ModTime:   time.Unix(int64(le.Uint32(b[8:])), 0).UTC(),
		BlockSize: le.Uint32(b[12:]),
		Fragments: le.Uint32(b[16:]),
		Flags:     le.Uint16(b[24:]),
		IDs:       le.Uint16(b[26:]),
		Major:     le.Uint16(b[28:]),
		Minor:     le.Uint16(b[30:]),
		BytesUsed: le.Uint64(b[40:]),
	}
	id := le.Uint16(b[20:])
	sb.Compression = compressionNames[id]
	if sb.Compression == "" {
		sb.Compression = fmt.Sprintf("unknown (%d)", id)
	}
	return sb, nil
}

// ObjectSize is the RBD object size images are made with (order 22).
const ObjectSize = 4 << 20

// AutoSize is the image size for a squashfs of n bytes: n rounded up to
// whole RBD objects, at least one.
func AutoSize(n int64) uint64 {
	if n <= 0 {
		return ObjectSize
	}
	return uint64((n + ObjectSize - 1) / ObjectSize * ObjectSize)
}

// ParseSize reads an image size: "auto" (0) or a number of bytes with an
// optional binary suffix K, M, G, T (also KiB, MiB, ..., and lower case).
func ParseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "auto") {
		return 0, nil
	}
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	suffix := strings.ToUpper(strings.TrimPrefix(s, num))
	suffix = strings.TrimSuffix(strings.TrimSuffix(suffix, "B"), "I")
	mult := map[string]uint64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[suffix]
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || mult == 0 {
		return 0, fmt.Errorf("bad size %q: want auto or a number with an optional K, M, G or T suffix", s)
	}
	if n > (1<<64-1)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("size %q: must be more than 0", s)
	}
	return n * mult, nil
}
