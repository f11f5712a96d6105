//go:build cgo && pacific

package image

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ceph/go-ceph/rbd"

	"github.com/strata-project/strata/internal/verity"
)

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
	if err := opts.Layout.Validate(); err != nil {
		return nil, err
	}
	fsName, err := FSOf(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	need := uint64(fileSize)
	if opts.Verity {
		need = verityEnd(fileSize) + verity.TrailerSize
	}
	if opts.Verity && opts.Sign != nil {
		need += verity.MaxSignatureSize // signed after the upload: room for any signature
	}
	size := opts.Size
	if size == 0 {
		size = AutoSize(int64(need))
	}
	if size < need {
		what := "the " + fsName
		if opts.Verity {
			what += " with its hash tree and trailer"
		}
		if opts.Verity && opts.Sign != nil {
			what += " and room for the signature"
		}
		return nil, fmt.Errorf("image size %s is smaller than %s (%s)", FormatBytes(int64(size)), what, FormatBytes(int64(need)))
	}

	ioc, err := c.ioctx(ref, accessWrite)
	if err != nil {
		return nil, err
	}
	defer ioc.Destroy()

	res := &BuildResult{Ref: ref, FS: fsName, Layout: opts.Layout, SquashfsSize: fileSize}
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
			p.Note(fmt.Sprintf("%s has %d watcher(s) (%s): writing over it in place (--force), keeping its object layout", spec, len(ws), watcherList(ws)))
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
		o, err := createOptions(opts.Layout)
		if err != nil {
			return nil, err
		}
		defer o.Destroy()
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
	if err := setMetadata(img, opts.Metadata); err != nil {
		return nil, sc.fail("set the metadata of", spec, accessWrite, err)
	}

	p.Begin("upload", fileSize)
	start := time.Now()
	var tree *verity.Tree
	if opts.Verity {
		salt, err := verity.NewSalt()
		if err != nil {
			return nil, err
		}
		tree = verity.NewTree(salt)
	}
	sums, sum, err := writeImage(ctx, img, f, fileSize, opts.Write, tree, p)
	if err == nil && inPlace && size > uint64(fileSize) {
		err = zeroTail(img, uint64(fileSize), size)
	}
	if err == nil && tree != nil {
		res.Verity, err = writeVerity(img, tree, opts.Sign, size)
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
		if res.Verity != nil {
			if err := verifyVerity(img, res.Verity, size); err != nil {
				p.End("failed")
				return nil, sc.fail("read back image", spec, accessRead, err)
			}
		}
		res.Verified = true
		done := fmt.Sprintf("size and the CRC-32C of %d chunks match", len(sums))
		if res.Verity != nil {
			done += "; the hash tree and trailer read back"
		}
		p.End(done)
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

// verityEnd is where the hash tree of a squashfs of n bytes ends.
func verityEnd(n int64) uint64 {
	blocks := (uint64(n) + verity.BlockSize - 1) / verity.BlockSize
	return blocks*verity.BlockSize + verity.TreeSize(blocks)
}

// writeVerity writes the hash tree after the data, the signature (with
// sign) after the tree, the trailer in the last block of an image of size
// bytes, and the metadata.
func writeVerity(img *rbd.Image, tree *verity.Tree, sign *verity.Signer, size uint64) (*verity.Params, error) {
	v, err := tree.Finish()
	if err != nil {
		return nil, err
	}
	if sign != nil {
		sig, err := sign.Sign(v.RootHashHex())
		if err != nil {
			return nil, err
		}
		v.SetSignature(sig)
	}
	if _, err := img.WriteAt(v.HashArea, int64(v.HashOffset)); err != nil {
		return nil, err
	}
	if len(v.Signature) > 0 {
		if _, err := img.WriteAt(v.Signature, int64(v.SignatureOffset)); err != nil {
			return nil, err
		}
	}
	trailer := v.Trailer()
	if _, err := img.WriteAt(trailer, int64(size-verity.TrailerSize)); err != nil {
		return nil, err
	}
	js := bytes.TrimRight(trailer[bytes.IndexByte(trailer, '\n')+1:], "\x00\n")
	if err := img.SetMetadata(MetaVerity, string(js)); err != nil {
		return nil, err
	}
	return v, img.Flush()
}

// verifyVerity reads the hash area and the trailer back.
func verifyVerity(img *rbd.Image, v *verity.Params, size uint64) error {
	got := make([]byte, len(v.HashArea))
	if _, err := img.ReadAt(got, int64(v.HashOffset)); err != nil {
		return err
	}
	if !bytes.Equal(got, v.HashArea) {
		return fmt.Errorf("the hash tree read back differs from what was written")
	}
	back, err := verity.Read(img, size)
	if err != nil {
		return err
	}
	if !bytes.Equal(back.RootHash, v.RootHash) || !bytes.Equal(back.Signature, v.Signature) {
		return fmt.Errorf("the verity trailer read back differs from what was written")
	}
	return nil
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

// setMetadata sets Strata's metadata keys to md, removing those md lacks
// (an image written over keeps its old metadata otherwise).
func setMetadata(img *rbd.Image, md map[string]string) error {
	for _, k := range MetadataKeys {
		v, ok := md[k]
		var err error
		if ok {
			err = img.SetMetadata(k, v)
		} else if err = img.RemoveMetadata(k); errors.Is(err, rbd.ErrNotFound) {
			err = nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// createOptions are a new image's: layering only, what `rbd create
// --image-shared` leaves (no exclusive-lock, so that many nodes can map it
// at once), plus striping when the layout needs it.
func createOptions(l ObjectLayout) (*rbd.ImageOptions, error) {
	o := rbd.NewRbdImageOptions()
	features := rbd.FeatureLayering
	set := [][2]uint64{{rbd.ImageOptionOrder, l.order()}}
	if l.Fancy() {
		features |= rbd.FeatureStripingV2
		set = append(set, [2]uint64{rbd.ImageOptionStripeUnit, l.stripeUnit()}, [2]uint64{rbd.ImageOptionStripeCount, l.stripeCount()})
	}
	set = append(set, [2]uint64{rbd.ImageOptionFeatures, features})
	for _, kv := range set {
		if err := o.SetUint64(rbd.ImageOption(kv[0]), kv[1]); err != nil {
			o.Destroy()
			return nil, err
		}
	}
	return o, nil
}
