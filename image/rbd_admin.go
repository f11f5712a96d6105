//go:build cgo && pacific

package image

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ceph/go-ceph/rbd"

	"github.com/strata-project/strata/internal/verity"
)

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
	md, err := img.ListMetadata()
	if err != nil {
		return nil, sc.fail("list the metadata of", head.String(), accessRead, err)
	}
	for _, k := range MetadataKeys {
		if v, ok := md[k]; ok {
			if info.Metadata == nil {
				info.Metadata = map[string]string{}
			}
			info.Metadata[k] = v
		}
	}
	buf := make([]byte, erofsHeadSize)
	m, err := img.ReadAt(buf, 0)
	switch {
	case err != nil && !(errors.Is(err, io.EOF) && m > 0):
		return nil, sc.fail("read image", ref.String(), accessRead, err)
	case isErofs(buf[:m]):
		sb, perr := ParseErofsSuperblock(buf[:m])
		info.Erofs = sb
		if perr != nil {
			info.NotSquashfs = perr.Error()
		} else {
			info.NotSquashfs = "erofs"
		}
	default:
		if sb, perr := ParseSuperblock(buf[:m]); perr == nil {
			info.Squashfs = sb
		} else {
			info.NotSquashfs = perr.Error()
		}
	}
	// The trailer, as a node reads it from the device.
	if v, err := verity.Read(img, info.Size); err == nil {
		info.Verity = v
	} else {
		info.NoVerity = err.Error()
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
