package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"
)

// Flatten writes the image's root file system into dir (empty or new) and
// returns the bytes of the flattened stream. go-containerregistry's
// mutate.Extract merges the layers (whiteouts, opaque directories, upper
// layers win); it emits the top layer first, so a hard link may come
// before the file it names in a lower layer: links are made at the end.
// Owners, modes, times, device nodes and xattrs are kept (it must run as
// root for owners and devices, as image builds do).
func Flatten(ctx context.Context, o *OCIImage, dir string, p Progress) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	rc := mutate.Extract(o.Image)
	defer rc.Close()
	cr := &countingReader{r: rc, p: p}
	u := &unpacker{root: dir}
	err := u.unpack(ctx, cr)
	if err != nil {
		return cr.n, fmt.Errorf("flattening %s: %w", o.Ref, err)
	}
	return cr.n, nil
}

type countingReader struct {
	r io.Reader
	n int64
	p Progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	c.p.Update(c.n)
	return n, err
}

type unpacker struct {
	root  string
	links []*tar.Header // made once every file is there
	dirs  []*tar.Header // modes and times set last (making children changes them)
}

func (u *unpacker) unpack(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			// mutate.Extract checks each layer's digest after its end of
			// archive: read on to hear about it.
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil {
			// A layer that does not decompress or whose digest is wrong.
			return fmt.Errorf("corrupt layer: %w", err)
		}
		if hdr == nil {
			break
		}
		if err := u.entry(hdr, tr); err != nil {
			if errors.Is(err, os.ErrPermission) && os.Geteuid() != 0 {
				return fmt.Errorf("%s: %w (build OCI images as root: owners and device nodes are kept)", hdr.Name, err)
			}
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	for _, h := range u.links {
		if err := u.link(h); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	for i := len(u.dirs) - 1; i >= 0; i-- {
		h := u.dirs[i]
		p, _ := u.path(h.Name)
		if err := u.meta(p, h); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	return nil
}

// path is where a tar name goes under root ("../" stops at the root, as
// mutate.Extract refuses such names anyway). Parents that are symbolic links (they could point
// outside root); missing parents are made, as tar does.
func (u *unpacker) path(name string) (string, error) {
	clean := path.Clean("/" + name)
	if clean == "/" {
		return u.root, nil
	}
	p := u.root
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	for _, part := range parts[:len(parts)-1] {
		p = filepath.Join(p, part)
		st, err := os.Lstat(p)
		switch {
		case os.IsNotExist(err):
			if err := os.Mkdir(p, 0o755); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		case st.Mode()&os.ModeSymlink != 0:
			return "", fmt.Errorf("its parent %s is a symbolic link", strings.TrimPrefix(p, u.root))
		case !st.IsDir():
			return "", fmt.Errorf("its parent %s is not a directory", strings.TrimPrefix(p, u.root))
		}
	}
	return filepath.Join(p, parts[len(parts)-1]), nil
}

func (u *unpacker) entry(h *tar.Header, r io.Reader) error {
	p, err := u.path(h.Name)
	if err != nil {
		return err
	}
	mode := uint32(h.Mode & 0o7777)
	switch h.Typeflag {
	case tar.TypeDir:
		if st, err := os.Lstat(p); err != nil || !st.IsDir() {
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
		}
		u.dirs = append(u.dirs, h)
		return nil
	case tar.TypeReg, tar.TypeRegA:
		if err := writeFile(p, r); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := os.Symlink(h.Linkname, p); err != nil {
			return err
		}
	case tar.TypeLink:
		u.links = append(u.links, h)
		return nil
	case tar.TypeChar:
		err = unix.Mknod(p, unix.S_IFCHR|mode, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))))
	case tar.TypeBlock:
		err = unix.Mknod(p, unix.S_IFBLK|mode, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))))
	case tar.TypeFifo:
		err = unix.Mkfifo(p, mode)
	default:
		return fmt.Errorf("unsupported tar entry type %q", h.Typeflag)
	}
	if err != nil {
		return err
	}
	return u.meta(p, h)
}

func writeFile(p string, r io.Reader) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// link makes a hard link to a file unpacked before.
func (u *unpacker) link(h *tar.Header) error {
	p, err := u.path(h.Name)
	if err != nil {
		return err
	}
	target, err := u.path(h.Linkname)
	if err != nil {
		return fmt.Errorf("hard link to %s: %w", h.Linkname, err)
	}
	if _, err := os.Lstat(target); err != nil {
		return fmt.Errorf("hard link to %s, which is not in the image", h.Linkname)
	}
	return os.Link(target, p)
}

// meta sets owner, mode (after the owner: chown clears set-id bits),
// xattrs and times; a symbolic link has no mode of its own.
func (u *unpacker) meta(p string, h *tar.Header) error {
	if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := os.Chmod(p, tarMode(h.Mode)); err != nil {
			return err
		}
	}
	for k, v := range h.PAXRecords {
		if attr, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if err := unix.Lsetxattr(p, attr, []byte(v), 0); err != nil {
				return fmt.Errorf("xattr %s: %w", attr, err)
			}
		}
	}
	mt := h.ModTime
	if mt.IsZero() {
		mt = time.Unix(0, 0)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// tarMode turns a tar mode (permissions plus the set-id and sticky bits
// as in C) into Go's.
func tarMode(m int64) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}

// untarLayout unpacks an oci-archive (an OCI layout in a tar file): only
// directories and regular files, named inside dir.
func untarLayout(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not an OCI archive (a tar file holding an image layout): %w", err)
		}
		clean := path.Clean("/" + h.Name)
		if clean == "/" {
			continue
		}
		p := filepath.Join(dir, clean)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg, tar.TypeRegA:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = writeFile(p, tr)
			}
		default:
			err = fmt.Errorf("unexpected %q entry in an OCI archive", h.Typeflag)
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", file, h.Name, err)
		}
	}
}

// HasSystemd reports whether the tree at root boots with systemd:
// /sbin/init leads to systemd, or systemd is in its usual place.
func HasSystemd(root string) bool {
	for _, p := range []string{"/sbin/init", "/usr/lib/systemd/systemd", "/lib/systemd/systemd"} {
		if real, ok := resolveIn(root, p); ok && path.Base(real) == "systemd" {
			if st, err := os.Stat(filepath.Join(root, real)); err == nil && st.Mode().IsRegular() {
				return true
			}
		}
	}
	return false
}

// resolveIn follows symbolic links in p as if root were "/" (".." and
// absolute targets stay inside root), as the container will see it.
func resolveIn(root, p string) (string, bool) {
	parts := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for hops := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		next := path.Join(cur, part)
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			if _, serr := os.Lstat(filepath.Join(root, next)); serr != nil {
				return "", false
			}
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", false
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		parts = append(strings.Split(strings.Trim(path.Clean(target), "/"), "/"), parts...)
	}
	return cur, true
}
