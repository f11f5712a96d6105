//go:build cgo && pacific

package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"
)

// Conn is a connection to a Ceph cluster as one cephx user.
type Conn struct {
	conn *rados.Conn
	opts ConnectOptions
	sc   scope
}

// Connect connects to the cluster. It fails within about opts.Timeout when
// no monitor answers, with ErrUnreachable; with ErrAuth when the key is
// refused.
func Connect(ctx context.Context, opts ConnectOptions) (*Conn, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	sc := opts.scope()
	conn, err := rados.NewConnWithUser(opts.user())
	if err != nil {
		return nil, sc.fail("connect", "", accessNone, err)
	}
	ok := false
	defer func() {
		if !ok {
			conn.Shutdown()
		}
	}()
	switch {
	case opts.Conf != "":
		if err := conn.ReadConfigFile(opts.Conf); err != nil {
			return nil, fmt.Errorf("reading %s: %w", opts.Conf, err)
		}
	case len(opts.Monitors) == 0:
		if err := conn.ReadDefaultConfigFile(); err != nil {
			return nil, fmt.Errorf("no monitors given (--mon) and no ceph.conf found ($CEPH_CONF, /etc/ceph/ceph.conf): %w", err)
		}
	}
	secs := strconv.FormatFloat(sc.Timeout.Seconds(), 'f', -1, 64)
	set := [][2]string{
		// librados's own log lines would only repeat our errors on stderr.
		{"log_to_stderr", "false"},
		{"err_to_stderr", "false"},
		{"client_mount_timeout", secs},
		{"rados_mon_op_timeout", secs},
		{"rados_osd_op_timeout", secs},
	}
	if len(opts.Monitors) > 0 {
		set = append(set, [2]string{"mon_host", strings.Join(opts.Monitors, ",")})
	}
	if opts.Keyring != "" {
		set = append(set, [2]string{"keyring", opts.Keyring})
	}
	if opts.Key != "" {
		set = append(set, [2]string{"key", opts.Key})
	}
	for _, kv := range set {
		if err := conn.SetConfigOption(kv[0], kv[1]); err != nil {
			what := kv[1]
			if kv[0] == "key" {
				what = "(the key)"
			}
			return nil, fmt.Errorf("setting %s = %s: %w", kv[0], what, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- conn.Connect() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// The connect goes on in the background until its own time-out;
		// its Conn is then released there.
		go func() {
			if <-done == nil {
				conn.Shutdown()
			}
		}()
		ok = true // not ours to shut down any more
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, sc.fail("connect", "", accessNone, err)
	}
	ok = true
	return &Conn{conn: conn, opts: opts, sc: sc}, nil
}

// Close ends the connection.
func (c *Conn) Close() {
	if c != nil && c.conn != nil {
		c.conn.Shutdown()
		c.conn = nil
	}
}

// scope of ref, for messages.
func (c *Conn) scope(ref Ref) scope {
	s := c.sc
	s.Pool, s.Namespace = ref.Pool, ref.Namespace
	return s
}

// ioctx opens ref's pool and namespace.
func (c *Conn) ioctx(ref Ref, acc access) (*rados.IOContext, error) {
	sc := c.scope(ref)
	ioc, err := c.conn.OpenIOContext(ref.Pool)
	if err != nil {
		e := sc.fail("open pool", ref.Pool, acc, err)
		if errors.Is(e, ErrNoSuchPool) {
			if pools, lerr := c.conn.ListPools(); lerr == nil {
				if len(pools) == 0 {
					e.(*Error).Msg += " (the cluster has no pools)"
				} else {
					sort.Strings(pools)
					e.(*Error).Msg += " (pools: " + strings.Join(pools, ", ") + ")"
				}
			}
		}
		return nil, e
	}
	if ref.Namespace != "" {
		exists, err := rbd.NamespaceExists(ioc, ref.Namespace)
		if err == nil && !exists {
			err = rados.ErrNotFound
		}
		if err != nil {
			ioc.Destroy()
			return nil, sc.fail("open namespace", ref.PoolSpec(), acc, err)
		}
		ioc.SetNamespace(ref.Namespace)
	}
	return ioc, nil
}

// existing opens the image read-only (no watch of ours) and tells its
// watchers; nil when there is no such image.
func (c *Conn) existing(ioc *rados.IOContext, ref Ref) (*rbd.Image, []rbd.ImageWatcher, error) {
	sc := c.scope(ref)
	head := ref
	head.Snapshot = ""
	img, err := rbd.OpenImageReadOnly(ioc, ref.Image, rbd.NoSnapshot)
	if errors.Is(err, rbd.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, sc.fail("open image", head.String(), accessRead, err)
	}
	w, err := img.ListWatchers()
	if err != nil {
		img.Close()
		return nil, nil, sc.fail("list the watchers of", head.String(), accessRead, err)
	}
	return img, w, nil
}

func watcherList(ws []rbd.ImageWatcher) string {
	var s []string
	for _, w := range ws {
		s = append(s, w.Addr)
	}
	return strings.Join(s, ", ")
}

// refuseExisting is the error for an existing image without force.
func refuseExisting(ref Ref, ws []rbd.ImageWatcher) error {
	if len(ws) > 0 {
		return &Error{Op: "create image", Spec: ref.String(), Kind: ErrHasWatchers,
			Msg: fmt.Sprintf("image %s exists and has %d watcher(s) (mapped or open at %s): refusing to write over it; --force writes over it in place, under the readers",
				ref, len(ws), watcherList(ws))}
	}
	return &Error{Op: "create image", Spec: ref.String(), Kind: ErrExists,
		Msg: fmt.Sprintf("image %s already exists: --force replaces it (or strata-image rm %s)", ref, ref)}
}

// checkTarget refuses early when the image exists (or is in use) and force
// is not given, and checks that pool and namespace exist.
func (c *Conn) checkTarget(ref Ref, force bool) error {
	ref.Snapshot = ""
	ioc, err := c.ioctx(ref, accessWrite)
	if err != nil {
		return err
	}
	defer ioc.Destroy()
	img, ws, err := c.existing(ioc, ref)
	if err != nil || img == nil {
		return err
	}
	img.Close()
	if !force {
		return refuseExisting(ref, ws)
	}
	return nil
}

// Upload writes the squashfs file into the image ref names, creating it
// (or, with Force, replacing it), verifies it and makes the snapshot.
func (c *Conn) Upload(ctx context.Context, file string, ref Ref, opts UploadOptions) (_ *BuildResult, err error) {
	ref.Snapshot = ""
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if opts.Snapshot != "" {
		if err := (Ref{Pool: ref.Pool, Image: ref.Image, Snapshot: opts.Snapshot}).Validate(); err != nil {
			return nil, err
		}
	}
	p := opts.Progress
	if p == nil {
		p = NopProgress{}
	}
	sc := c.scope(ref)
	spec := ref.String()

	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	fileSize := st.Size()
	head := make([]byte, SuperblockSize)
	if _, err := io.ReadFull(f, head); err != nil {
		return nil, fmt.Errorf("%s: not a squashfs file: %v", file, err)
	}
	if _, err := ParseSuperblock(head); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	size := opts.Size
	if size == 0 {
		size = AutoSize(fileSize)
	}
	if size < uint64(fileSize) {
		return nil, fmt.Errorf("image size %s is smaller than the squashfs (%s)", FormatBytes(int64(size)), FormatBytes(fileSize))
	}

	ioc, err := c.ioctx(ref, accessWrite)
	if err != nil {
		return nil, err
	}
	defer ioc.Destroy()

	res := &BuildResult{Ref: ref, SquashfsSize: fileSize}
	old, ws, err := c.existing(ioc, ref)
	if err != nil {
		return nil, err
	}
	inPlace := false
	if old != nil {
		oldSize, _ := old.GetSize()
		if !opts.Force {
			old.Close()
			return nil, refuseExisting(ref, ws)
		}
		res.Replaced = true
		if len(ws) > 0 {
			// Mapped somewhere: it cannot be removed, so it is written over.
			inPlace = true
			res.InPlace = true
			p.Note(fmt.Sprintf("%s has %d watcher(s) (%s): writing over it in place (--force)", spec, len(ws), watcherList(ws)))
			if oldSize > size {
				size = oldSize
			}
			old.Close()
		} else {
			p.Note(fmt.Sprintf("removing the existing image %s (--force)", spec))
			err := c.purgeSnapshots(old, ref)
			old.Close()
			if err != nil {
				return nil, err
			}
			if err := rbd.RemoveImage(ioc, ref.Image); err != nil {
				return nil, sc.fail("remove image", spec, accessWrite, err)
			}
		}
	}

	if !inPlace {
		o := rbd.NewRbdImageOptions()
		defer o.Destroy()
		// layering only: what `rbd create --image-shared` leaves. No
		// exclusive-lock, so that many nodes can map it at once.
		if err := o.SetUint64(rbd.ImageOptionFeatures, rbd.FeatureLayering); err != nil {
			return nil, err
		}
		if err := o.SetUint64(rbd.ImageOptionOrder, 22); err != nil {
			return nil, err
		}
		if err := rbd.CreateImage(ioc, ref.Image, size, o); err != nil {
			e := sc.fail("create image", spec, accessWrite, err)
			if errors.Is(e, ErrExists) {
				// Made by someone else since we looked.
				return nil, refuseExisting(ref, nil)
			}
			return nil, e
		}
		// A build that fails after this leaves no half-written image
		// behind. (This runs after img.Close below: an open image cannot
		// be removed.)
		defer func() {
			if err != nil {
				if rerr := rbd.RemoveImage(ioc, ref.Image); rerr != nil {
					p.Note(fmt.Sprintf("could not remove the incomplete image %s: %v", spec, rerr))
				}
			}
		}()
	}
	img, err := rbd.OpenImage(ioc, ref.Image, rbd.NoSnapshot)
	if err != nil {
		return nil, sc.fail("open image", spec, accessWrite, err)
	}
	defer img.Close()
	if inPlace {
		cur, err := img.GetSize()
		if err != nil {
			return nil, sc.fail("get the size of", spec, accessRead, err)
		}
		if cur < size {
			if err := img.Resize(size); err != nil {
				return nil, sc.fail("resize image", spec, accessWrite, err)
			}
		}
	}
	res.ImageSize = size

	p.Begin("upload", fileSize)
	start := time.Now()
	sums, sum, err := writeImage(ctx, img, f, fileSize, opts.Write, p)
	if err == nil && inPlace && size > uint64(fileSize) {
		err = zeroTail(img, uint64(fileSize), size)
	}
	if err == nil {
		err = img.Flush()
	}
	res.Upload = time.Since(start)
	if err != nil {
		p.End("failed")
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, sc.fail("write image", spec, accessWrite, err)
	}
	if sum != nil {
		res.SHA256 = hex.EncodeToString(sum)
	}
	p.End(fmt.Sprintf("%s, %s", FormatBytes(fileSize), FormatRate(fileSize, res.Upload)))

	if !opts.Write.NoVerify {
		p.Begin("verify", fileSize)
		start := time.Now()
		err := verifyImage(ctx, img, fileSize, sums, size, opts.Write, p)
		res.Verify = time.Since(start)
		if err != nil {
			p.End("failed")
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var e *Error
			if errors.As(err, &e) {
				return nil, err
			}
			return nil, sc.fail("read back image", spec, accessRead, err)
		}
		res.Verified = true
		p.End(fmt.Sprintf("size and the CRC-32C of %d chunks match", len(sums)))
	}

	if opts.Snapshot != "" {
		if err := c.snapshot(img, ref, opts.Snapshot, opts.Protect, opts.Force, p); err != nil {
			return nil, err
		}
		res.Ref.Snapshot = opts.Snapshot
		res.Protected = opts.Protect
	}
	return res, nil
}

// zeroTail clears what an older, larger squashfs left after ours, from off
// to the end (size): zeros written up to the next object boundary (librbd
// skips partial-object discards), whole objects discarded after it.
func zeroTail(img *rbd.Image, off, size uint64) error {
	st, err := img.Stat()
	if err != nil {
		return err
	}
	obj := st.Obj_size
	if obj == 0 {
		obj = ObjectSize
	}
	aligned := min((off+obj-1)/obj*obj, size)
	if aligned > off {
		zeros := make([]byte, aligned-off)
		if _, err := img.WriteAt(zeros, int64(off)); err != nil {
			return err
		}
	}
	if size > aligned {
		if _, err := img.Discard(aligned, size-aligned); err != nil {
			return err
		}
	}
	return nil
}

// snapshot makes (and protects) snapshot name of img; with force an old
// snapshot of that name is removed first.
func (c *Conn) snapshot(img *rbd.Image, ref Ref, name string, protect, force bool, p Progress) error {
	sc := c.scope(ref)
	ref.Snapshot = name
	spec := ref.String()
	snaps, err := img.GetSnapshotNames()
	if err != nil {
		return sc.fail("list the snapshots of", ref.Pool+"/"+ref.Image, accessRead, err)
	}
	for _, s := range snaps {
		if s.Name != name {
			continue
		}
		if !force {
			return &Error{Op: "create snapshot", Spec: spec, Kind: ErrExists,
				Msg: fmt.Sprintf("snapshot %s already exists: --force replaces it", spec)}
		}
		p.Note(fmt.Sprintf("removing the existing snapshot %s (--force)", spec))
		if err := c.removeSnapshot(img, ref, name); err != nil {
			return err
		}
	}
	snap, err := img.CreateSnapshot(name)
	if err != nil {
		return sc.fail("create snapshot", spec, accessWrite, err)
	}
	if protect {
		if err := snap.Protect(); err != nil {
			return sc.fail("protect snapshot", spec, accessWrite, err)
		}
	}
	return nil
}

// removeSnapshot unprotects (when protected) and removes a snapshot.
func (c *Conn) removeSnapshot(img *rbd.Image, ref Ref, name string) error {
	sc := c.scope(ref)
	ref.Snapshot = name
	spec := ref.String()
	snap := img.GetSnapshot(name)
	prot, err := snap.IsProtected()
	if err != nil {
		return sc.fail("look at snapshot", spec, accessRead, err)
	}
	if prot {
		if err := snap.Unprotect(); err != nil {
			e := sc.fail("unprotect snapshot", spec, accessWrite, err)
			if errors.Is(e, ErrInUse) {
				e.(*Error).Msg = fmt.Sprintf("unprotect snapshot %s: it has clones (flatten or remove them first)", spec)
			}
			return e
		}
	}
	if err := snap.Remove(); err != nil {
		return sc.fail("remove snapshot", spec, accessWrite, err)
	}
	return nil
}

// purgeSnapshots removes every snapshot of an image opened read-only: the
// removal goes through a writable handle of the image's head.
func (c *Conn) purgeSnapshots(img *rbd.Image, ref Ref) error {
	sc := c.scope(ref)
	snaps, err := img.GetSnapshotNames()
	if err != nil {
		return sc.fail("list the snapshots of", ref.String(), accessRead, err)
	}
	if len(snaps) == 0 {
		return nil
	}
	ioc, err := c.ioctx(ref, accessWrite)
	if err != nil {
		return err
	}
	defer ioc.Destroy()
	rw, err := rbd.OpenImage(ioc, ref.Image, rbd.NoSnapshot)
	if err != nil {
		return sc.fail("open image", ref.String(), accessWrite, err)
	}
	defer rw.Close()
	for _, s := range snaps {
		if err := c.removeSnapshot(rw, ref, s.Name); err != nil {
			return err
		}
	}
	return nil
}

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
func writeImage(ctx context.Context, img *rbd.Image, f *os.File, size int64, wo WriteOptions, p Progress) (chunkSums, []byte, error) {
	if size <= 0 || int64(int(size)) != size {
		return writeImageRead(ctx, img, f, size, wo, p)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return writeImageRead(ctx, img, f, size, wo, p)
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
	if wo.SHA256 {
		go func() {
			defer close(hashed)
			h := sha256.New()
			for off := int64(0); off < size && hashCtx.Err() == nil; off += int64(chunk) {
				h.Write(data[off:min(off+int64(chunk), size)])
			}
			sum = h.Sum(nil)
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
func writeImageRead(ctx context.Context, img *rbd.Image, f *os.File, size int64, wo WriteOptions, p Progress) (chunkSums, []byte, error) {
	chunk, n := wo.chunk(), wo.inFlight()
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	sums := make(chunkSums, (size+int64(chunk)-1)/int64(chunk))
	free := bufferPool(n, chunk)
	var h hash.Hash
	if wo.SHA256 {
		h = sha256.New()
	}
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
		if h != nil {
			h.Write(buf)
		}
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

// verifyImage reads the first size bytes of img back, several reads in
// flight, and compares each chunk's CRC-32C with what was written; the
// image must be imageSize bytes and start with a squashfs superblock.
func verifyImage(ctx context.Context, img *rbd.Image, size int64, sums chunkSums, imageSize uint64, wo WriteOptions, p Progress) error {
	got, err := img.GetSize()
	if err != nil {
		return err
	}
	if got != imageSize {
		return &Error{Op: "verify", Kind: ErrVerify, Msg: fmt.Sprintf("verify: the image is %d bytes, want %d", got, imageSize)}
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
			if idx == 0 {
				if _, err := ParseSuperblock(b); err != nil {
					return &Error{Op: "verify", Kind: ErrVerify, Msg: "verify: " + err.Error()}
				}
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

// List gives the images of a pool (and namespace: ref.Image is ignored).
func (c *Conn) List(ref Ref) ([]ListEntry, error) {
	if ref.Pool == "" {
		return nil, fmt.Errorf("no pool given")
	}
	ioc, err := c.ioctx(ref, accessRead)
	if err != nil {
		return nil, err
	}
	defer ioc.Destroy()
	names, err := rbd.GetImageNames(ioc)
	if err != nil {
		return nil, c.scope(ref).fail("list the images of pool", ref.PoolSpec(), accessRead, err)
	}
	sort.Strings(names)
	out := make([]ListEntry, 0, len(names))
	for _, n := range names {
		out = append(out, ListEntry{Name: n})
	}
	return out, nil
}

// Info tells about an image (or, with ref.Snapshot, looks for the squashfs
// in that snapshot).
func (c *Conn) Info(ref Ref) (*ImageInfo, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	sc := c.scope(ref)
	ioc, err := c.ioctx(ref, accessRead)
	if err != nil {
		return nil, err
	}
	defer ioc.Destroy()
	img, err := rbd.OpenImageReadOnly(ioc, ref.Image, ref.Snapshot)
	if err != nil {
		op := "open image"
		if ref.Snapshot != "" {
			// Which is missing, the image or the snapshot?
			if probe, perr := rbd.OpenImageReadOnly(ioc, ref.Image, rbd.NoSnapshot); perr == nil {
				probe.Close()
				op = "open snapshot"
			}
		}
		return nil, sc.fail(op, ref.String(), accessRead, err)
	}
	defer img.Close()
	info := &ImageInfo{Ref: ref}
	head := ref
	head.Snapshot = ""
	if info.ID, err = img.GetId(); err != nil {
		return nil, sc.fail("get the id of", head.String(), accessRead, err)
	}
	st, err := img.Stat()
	if err != nil {
		return nil, sc.fail("stat", ref.String(), accessRead, err)
	}
	info.Size, info.ObjectSize = st.Size, st.Obj_size
	feat, err := img.GetFeatures()
	if err != nil {
		return nil, sc.fail("get the features of", head.String(), accessRead, err)
	}
	fs := rbd.FeatureSet(feat)
	info.Features = fs.Names()
	sort.Strings(info.Features)
	snaps, err := img.GetSnapshotNames()
	if err != nil {
		return nil, sc.fail("list the snapshots of", head.String(), accessRead, err)
	}
	// Never GetSnapTimestamp: with an invalid id Pacific's librbd aborts the
	// whole process (Ceph tracker 47287).
	for _, s := range snaps {
		si := SnapshotInfo{ID: s.Id, Name: s.Name, Size: s.Size}
		if si.Protected, err = img.GetSnapshot(s.Name).IsProtected(); err != nil {
			return nil, sc.fail("look at snapshot", head.String()+"@"+s.Name, accessRead, err)
		}
		info.Snapshots = append(info.Snapshots, si)
	}
	ws, err := img.ListWatchers()
	if err != nil {
		return nil, sc.fail("list the watchers of", head.String(), accessRead, err)
	}
	for _, w := range ws {
		info.Watchers = append(info.Watchers, Watcher{Address: w.Addr, ID: w.Id, Cookie: w.Cookie})
	}
	buf := make([]byte, SuperblockSize)
	m, err := img.ReadAt(buf, 0)
	switch {
	case err != nil && !(errors.Is(err, io.EOF) && m > 0):
		return nil, sc.fail("read image", ref.String(), accessRead, err)
	default:
		if sb, perr := ParseSuperblock(buf[:m]); perr == nil {
			info.Squashfs = sb
		} else {
			info.NotSquashfs = perr.Error()
		}
	}
	return info, nil
}

// Remove removes an image. It refuses when the image has watchers (mapped
// or open) or snapshots, unless force; with force the snapshots are
// unprotected and removed first (an image that has watchers still cannot
// be removed: Ceph refuses).
func (c *Conn) Remove(ref Ref, force bool) error {
	ref.Snapshot = ""
	if err := ref.Validate(); err != nil {
		return err
	}
	sc := c.scope(ref)
	ioc, err := c.ioctx(ref, accessWrite)
	if err != nil {
		return err
	}
	defer ioc.Destroy()
	img, ws, err := c.existing(ioc, ref)
	if err != nil {
		return err
	}
	if img == nil {
		return sc.fail("remove image", ref.String(), accessWrite, rbd.ErrNotFound)
	}
	snaps, err := img.GetSnapshotNames()
	if err != nil {
		img.Close()
		return sc.fail("list the snapshots of", ref.String(), accessRead, err)
	}
	if len(ws) > 0 && !force {
		img.Close()
		return &Error{Op: "remove image", Spec: ref.String(), Kind: ErrHasWatchers,
			Msg: fmt.Sprintf("image %s has %d watcher(s) (mapped or open at %s): unmap it there first (with --force the removal is tried, and Ceph refuses it while the watchers remain)", ref, len(ws), watcherList(ws))}
	}
	if len(snaps) > 0 {
		if !force {
			img.Close()
			var names []string
			for _, s := range snaps {
				names = append(names, s.Name)
			}
			return &Error{Op: "remove image", Spec: ref.String(), Kind: ErrInUse,
				Msg: fmt.Sprintf("image %s has snapshots (%s): --force removes them too", ref, strings.Join(names, ", "))}
		}
		if err := c.purgeSnapshots(img, ref); err != nil {
			img.Close()
			return err
		}
	}
	img.Close()
	if err := rbd.RemoveImage(ioc, ref.Image); err != nil {
		return sc.fail("remove image", ref.String(), accessWrite, err)
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
