//go:build cgo && pacific

package image

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/ceph/go-ceph/rbd"

	"github.com/strata-project/strata/internal/verity"
)

// bufferPool holds the chunk buffers of one transfer: n+1 of them, so
// memory stays bounded whatever the speed of each side.
func bufferPool(n, size int) chan []byte {
	free := make(chan []byte, n+1)
	for i := 0; i < n+1; i++ {
		free <- make([]byte, size)
	}
	return free
}

// chunkSums are the CRC-32C of each chunk written, by chunk index.
type chunkSums []uint32

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeImage writes size bytes of f to img, starting at 0, with wo.InFlight
// writes of wo.ChunkSize at once, and notes each chunk's CRC-32C for the
// read-back (unless wo.NoVerify). The file is mapped into memory, so librbd copies the data
// straight from the page cache (no copy of ours); where mapping fails, it
// is read into buffers instead. With wo.SHA256, another goroutine hashes
// the file in order meanwhile. It returns the chunks' CRCs and the SHA-256
// (nil unless asked for).
func writeImage(ctx context.Context, img *rbd.Image, f *os.File, size int64, wo WriteOptions, tree *verity.Tree, p Progress) (chunkSums, []byte, error) {
	if size <= 0 || int64(int(size)) != size {
		return writeImageRead(ctx, img, f, size, wo, tree, p)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return writeImageRead(ctx, img, f, size, wo, tree, p)
	}
	defer unix.Munmap(data)
	_ = unix.Madvise(data, unix.MADV_SEQUENTIAL)

	chunk, n := wo.chunk(), wo.inFlight()
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	sums := make(chunkSums, (size+int64(chunk)-1)/int64(chunk))
	var sum []byte
	hashed := make(chan struct{})
	// Not the group's context: Wait cancels that one on success too.
	hashCtx, stopHashing := context.WithCancel(parent)
	defer stopHashing()
	if wo.SHA256 || tree != nil {
		go func() {
			defer close(hashed)
			h, w := hashers(wo, tree)
			for off := int64(0); off < size && hashCtx.Err() == nil; off += int64(chunk) {
				w.Write(data[off:min(off+int64(chunk), size)])
			}
			if h != nil {
				sum = h.Sum(nil)
			}
		}()
	} else {
		close(hashed)
	}
	done := progressOf(p)
	for idx := range sums {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			off := int64(idx) * int64(chunk)
			b := data[off:min(off+int64(chunk), size)]
			if !wo.NoVerify {
				sums[idx] = crc32.Checksum(b, castagnoli)
			}
			m, err := img.WriteAt(b, off)
			if err == nil && m != len(b) {
				err = fmt.Errorf("short write at %d: %d of %d bytes", off, m, len(b))
			}
			if err != nil {
				return err
			}
			done.add(m)
			return nil
		})
	}
	if err = g.Wait(); err != nil {
		stopHashing()
	}
	<-hashed
	if err := transferErr(parent, err, done.n, size, "wrote"); err != nil {
		return nil, nil, err
	}
	return sums, sum, nil
}

// writeImageRead is writeImage without mmap: one goroutine reads the file in order
// (and hashes it with SHA-256 when wo.SHA256); the writers take chunks from
// it and note each chunk's CRC-32C for the read-back. It returns the
// chunks' CRCs and the SHA-256 (nil unless asked for).
func writeImageRead(ctx context.Context, img *rbd.Image, f *os.File, size int64, wo WriteOptions, tree *verity.Tree, p Progress) (chunkSums, []byte, error) {
	chunk, n := wo.chunk(), wo.inFlight()
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	sums := make(chunkSums, (size+int64(chunk)-1)/int64(chunk))
	free := bufferPool(n, chunk)
	h, w := hashers(wo, tree)
	done := progressOf(p)
	var readErr error
	// This goroutine reads the file in order (n writes in flight meanwhile,
	// so n+1 buffers); the group's goroutines write.
	for idx := range sums {
		if ctx.Err() != nil {
			break
		}
		off := int64(idx) * int64(chunk)
		buf := <-free
		buf = buf[:min(int64(chunk), size-off)]
		if _, err := f.ReadAt(buf, off); err != nil {
			readErr = fmt.Errorf("reading %s: %w", f.Name(), err)
			break
		}
		w.Write(buf)
		g.Go(func() error {
			defer func() { free <- buf[:cap(buf)] }()
			if !wo.NoVerify {
				sums[idx] = crc32.Checksum(buf, castagnoli)
			}
			m, err := img.WriteAt(buf, off)
			if err == nil && m != len(buf) {
				err = fmt.Errorf("short write at %d: %d of %d bytes", off, m, len(buf))
			}
			if err != nil {
				return err
			}
			done.add(m)
			return nil
		})
	}
	err := g.Wait()
	if readErr != nil && err == nil {
		err = readErr
	}
	if err := transferErr(parent, err, done.n, size, "wrote"); err != nil {
		return nil, nil, err
	}
	var sum []byte
	if h != nil {
		sum = h.Sum(nil)
	}
	return sums, sum, nil
}

// hashers are what the data is hashed with in order while it is written:
// SHA-256 when asked for (h, else nil) and the verity tree when one is
// built; w writes to both.
func hashers(wo WriteOptions, tree *verity.Tree) (h hash.Hash, w io.Writer) {
	var ws []io.Writer
	if wo.SHA256 {
		h = sha256.New()
		ws = append(ws, h)
	}
	if tree != nil {
		ws = append(ws, tree)
	}
	return h, io.MultiWriter(ws...)
}

// verifyImage reads the first size bytes of img back, several reads in
// flight, and compares each chunk's CRC-32C with what was written; the
// image must be imageSize bytes and start with a squashfs or erofs
// superblock.
func verifyImage(ctx context.Context, img *rbd.Image, size int64, sums chunkSums, imageSize uint64, wo WriteOptions, p Progress) error {
	got, err := img.GetSize()
	if err != nil {
		return err
	}
	if got != imageSize {
		return &Error{Op: "verify", Kind: ErrVerify, Msg: fmt.Sprintf("verify: the image is %d bytes, want %d", got, imageSize)}
	}
	// The superblock first: a missing one is the clearer message, whichever
	// chunk's read would finish first.
	if _, err := FSOf(imageReader{img}); err != nil {
		return &Error{Op: "verify", Kind: ErrVerify, Msg: "verify: " + err.Error()}
	}
	chunk, n := wo.chunk(), wo.inFlight()
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	// One buffer per read in flight: SetLimit bounds them to n.
	free := bufferPool(n-1, chunk)
	done := progressOf(p)
	for idx := range sums {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			buf := <-free
			defer func() { free <- buf }()
			off := int64(idx) * int64(chunk)
			b := buf[:min(int64(chunk), size-off)]
			m, err := img.ReadAt(b, off)
			if err == nil && m != len(b) {
				err = fmt.Errorf("short read at %d: %d of %d bytes", off, m, len(b))
			}
			if err != nil {
				return err
			}
			if c := crc32.Checksum(b, castagnoli); c != sums[idx] {
				return &Error{Op: "verify", Kind: ErrVerify, Msg: fmt.Sprintf(
					"verify: bytes %d-%d read back differ from what was written (crc32c %08x, want %08x)", off, off+int64(len(b)), c, sums[idx])}
			}
			done.add(len(b))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := parent.Err(); err != nil {
		return err
	}
	if done.n != size {
		return &Error{Op: "verify", Kind: ErrVerify, Msg: fmt.Sprintf("verify: read back %d of %d bytes", done.n, size)}
	}
	return nil
}

// progress adds up the bytes that parallel transfers report and tells p,
// one report at a time and in increasing order.
type progress struct {
	mu sync.Mutex
	p  Progress
	n  int64
}

func progressOf(p Progress) *progress { return &progress{p: p} }

func (t *progress) add(m int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n += int64(m)
	t.p.Update(t.n)
}

// transferErr is the outcome of a transfer of size bytes that moved done:
// the group's first error, else the caller's cancellation, else a count
// that falls short.
func transferErr(parent context.Context, err error, done, size int64, verb string) error {
	if err != nil {
		return err
	}
	if err := parent.Err(); err != nil {
		return err
	}
	if done != size {
		return fmt.Errorf("%s %d of %d bytes", verb, done, size)
	}
	return nil
}

// imageReader reads an image at offsets, for FSOf.
type imageReader struct{ img *rbd.Image }

func (r imageReader) ReadAt(b []byte, off int64) (int, error) { return r.img.ReadAt(b, off) }
