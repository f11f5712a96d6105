package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/strata-project/strata/internal/verity"
)

// FileOptions control BuildFile.
type FileOptions struct {
	Squashfs SquashfsOptions
	// Verity appends the dm-verity hash tree and the trailer
	// (internal/verity) to the squashfs.
	Verity bool
	// Salt of the hash tree; a random one when nil.
	Salt []byte
	// Force replaces an existing file.
	Force    bool
	Progress Progress
}

// FileResult says what BuildFile made.
type FileResult struct {
	File         string
	SquashfsSize int64
	Size         int64 // of the file: squashfs, hash tree and trailer
	Verity       *verity.Params
	Squashfs     time.Duration
	Hash         time.Duration
}

// BuildFile makes an image file for the loopback scheme: the squashfs of
// src (or a copy of src when it is a squashfs file already), then, with
// Verity, its hash tree at the squashfs's end rounded up to a block and the
// trailer in the last block. The squashfs is read once for the tree; no
// temporary copy is made.
func BuildFile(ctx context.Context, src, out string, opts FileOptions) (*FileResult, error) {
	if err := opts.Squashfs.Validate(); err != nil {
		return nil, err
	}
	kind, err := Source(src)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(out); err == nil && !opts.Force {
		return nil, fmt.Errorf("%s exists: --force replaces it", out)
	}
	p := opts.Progress
	if p == nil {
		p = NopProgress{}
	}
	res := &FileResult{File: out}
	start := time.Now()
	p.Begin("squashfs", 0)
	if kind == SourceSquashfs {
		err = copyFile(src, out)
	} else {
		stop := watchFile(out, p)
		err = MakeSquashfs(ctx, src, out, opts.Squashfs)
		stop()
	}
	if err != nil {
		p.End("failed")
		os.Remove(out)
		return nil, err
	}
	res.Squashfs = time.Since(start)
	st, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	res.SquashfsSize, res.Size = st.Size(), st.Size()
	p.End(FormatBytes(st.Size()))
	if !opts.Verity {
		return res, nil
	}
	p.Begin("verity", st.Size())
	start = time.Now()
	v, err := AppendVerity(out, opts.Salt)
	res.Hash = time.Since(start)
	if err != nil {
		p.End("failed")
		os.Remove(out)
		return nil, err
	}
	p.End("root hash " + v.RootHashHex())
	res.Verity = v
	res.Size = int64(v.End() + verity.TrailerSize)
	return res, nil
}

// AppendVerity hashes the squashfs file in one read and appends its hash
// tree (at its size rounded up to a block, the gap zeros) and the trailer.
func AppendVerity(file string, salt []byte) (*verity.Params, error) {
	if salt == nil {
		var err error
		if salt, err = verity.NewSalt(); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, SuperblockSize)
	if _, err := io.ReadFull(f, head); err != nil {
		return nil, fmt.Errorf("%s: not a squashfs file: %v", file, err)
	}
	if _, err := ParseSuperblock(head); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if _, err := verity.Read(f, fileSize(f)); err == nil {
		return nil, fmt.Errorf("%s has a verity trailer already", file)
	}
	t := verity.NewTree(salt)
	if _, err := io.Copy(t, io.NewSectionReader(f, 0, int64(fileSize(f)))); err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	v, err := t.Finish()
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(v.HashArea, int64(v.HashOffset)); err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(v.Trailer(), int64(v.End())); err != nil {
		return nil, err
	}
	return v, f.Close()
}

func fileSize(f *os.File) uint64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return uint64(st.Size())
}

// ReadVerity reads the verity parameters of an image file or block device
// from its trailer.
func ReadVerity(path string) (*verity.Params, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	v, err := verity.Read(f, uint64(size))
	if errors.Is(err, verity.ErrNoTrailer) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, err
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
