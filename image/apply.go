package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Layers are applied as the OCI image spec's changesets and
// containers/storage apply them, one after the other onto one tree:
//
//   - an entry replaces what is at its path (a directory over a directory
//     keeps what the lower one holds); names are relative to the root,
//     absolute ones too, and a name that climbs out of it is refused;
//   - .wh.NAME removes NAME, .wh..wh..opq empties its directory of what
//     lower layers put there (both hide lower layers only);
//   - a hard link is made to the file at its target when the link is
//     applied, so a later layer replacing the target leaves the link with
//     the old content (two inodes, as under overlayfs);
//   - a symbolic link is written as it is: its target is data, never
//     followed here, whether it climbs above the root or is absolute;
//   - every path is resolved from the root one directory at a time with
//     openat(2) and O_NOFOLLOW, so a symbolic link already in the tree can
//     never carry a later entry, whiteout or hard link outside the root:
//     such an entry is refused.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// dirFlags open a directory without following a symbolic link.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

type unpacker struct {
	root  int                    // the output root, open
	dirs  map[string]*tar.Header // by path: modes and times set last (making children changes them)
	layer map[string]bool        // paths the current layer wrote, with their parents
}

func newUnpacker(dir string) (*unpacker, error) {
	fd, err := unix.Open(dir, dirFlags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &unpacker{root: fd, dirs: map[string]*tar.Header{}}, nil
}

func (u *unpacker) close() { unix.Close(u.root) }

// apply applies one layer's entries in order.
func (u *unpacker) apply(ctx context.Context, tr *tar.Reader) error {
	u.layer = map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			// A layer that does not decompress or is not a tar stream.
			return fmt.Errorf("corrupt layer: %w", err)
		}
		if err := u.entry(h, tr); err != nil {
			if errors.Is(err, os.ErrPermission) && os.Geteuid() != 0 {
				return fmt.Errorf("%s: %w (build OCI images as root: owners and device nodes are kept)", h.Name, err)
			}
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
}

// cleanName is where an entry goes, relative to the root ("" for the root
// itself).
func cleanName(name string) (string, error) {
	clean := path.Clean(strings.TrimLeft(name, "/"))
	switch {
	case clean == "..", strings.HasPrefix(clean, "../"):
		return "", errors.New("the path climbs out of the image's root (refused)")
	case clean == ".":
		return "", nil
	}
	return clean, nil
}

// split is a clean name's directory and last component ("." for the root).
func split(name string) (dir, base string) {
	if name == "" {
		return "", "."
	}
	dir, base = path.Split(name)
	return strings.TrimSuffix(dir, "/"), base
}

func (u *unpacker) entry(h *tar.Header, r io.Reader) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil // metadata of the archive (git archive writes one), as containers/storage ignores it
	}
	name, err := cleanName(h.Name)
	if err != nil {
		return err
	}
	u.mark(name)
	dir, base := split(name)
	if base == opaqueMarker {
		return u.opaque(dir)
	}
	if hidden, ok := strings.CutPrefix(base, whiteoutPrefix); ok {
		switch {
		case strings.HasPrefix(hidden, whiteoutPrefix):
			return nil // other AUFS metadata (.wh..wh.plnk): not part of the tree
		case hidden == "", hidden == ".", hidden == "..":
			return fmt.Errorf("a whiteout must name a file of its directory, not %q (refused)", hidden)
		}
		return u.whiteout(path.Join(dir, hidden))
	}
	fd, err := u.openDir(dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return u.create(fd, name, base, h, r)
}

// mark records that the current layer wrote name, and so its parents.
func (u *unpacker) mark(name string) {
	for ; name != "" && !u.layer[name]; name, _ = split(name) {
		u.layer[name] = true
	}
}

// openDir opens the directory dir (a clean name) from the root, one
// component at a time, never following a symbolic link; with create,
// missing directories are made, as tar does.
func (u *unpacker) openDir(dir string, create bool) (int, error) {
	fd, err := unix.Openat(u.root, ".", dirFlags, 0)
	if err != nil || dir == "" {
		return fd, err
	}
	walked := ""
	for _, part := range strings.Split(dir, "/") {
		walked = path.Join(walked, part)
		next, err := unix.Openat(fd, part, dirFlags, 0)
		if err == unix.ENOENT && create {
			if err = unix.Mkdirat(fd, part, 0o755); err == nil {
				next, err = unix.Openat(fd, part, dirFlags, 0)
			}
		}
		if err != nil {
			err = parentError(fd, part, walked, err)
			unix.Close(fd)
			return -1, err
		}
		unix.Close(fd)
		fd = next
	}
	return fd, nil
}

// parentError says why a parent could not be opened as a directory.
func parentError(fd int, part, walked string, err error) error {
	var st unix.Stat_t
	if err == unix.ELOOP || err == unix.ENOTDIR {
		if unix.Fstatat(fd, part, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return fmt.Errorf("its parent /%s is a symbolic link (refused: it is never followed)", walked)
		}
		return fmt.Errorf("its parent /%s is not a directory", walked)
	}
	return &os.PathError{Op: "open", Path: "/" + walked, Err: err}
}

// create writes one entry in the directory fd, replacing what is there.
func (u *unpacker) create(fd int, name, base string, h *tar.Header, r io.Reader) error {
	if h.Typeflag == tar.TypeDir && isDirAt(fd, base) {
		u.dirs[name] = h
		return nil
	}
	if base == "." {
		return errors.New("the image's root must be a directory")
	}
	if err := u.remove(fd, name, base); err != nil {
		return err
	}
	mode := uint32(h.Mode & 0o7777)
	var err error
	switch h.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(fd, base, 0o700); err != nil {
			return err
		}
		u.dirs[name] = h
		return nil
	case tar.TypeLink:
		return u.link(fd, base, h.Linkname)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse: // archive/tar fills a sparse file's holes
		err = writeFileAt(fd, base, r)
	case tar.TypeSymlink:
		err = unix.Symlinkat(h.Linkname, fd, base)
	case tar.TypeChar:
		err = unix.Mknodat(fd, base, unix.S_IFCHR|mode, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))))
	case tar.TypeBlock:
		err = unix.Mknodat(fd, base, unix.S_IFBLK|mode, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))))
	case tar.TypeFifo:
		err = unix.Mknodat(fd, base, unix.S_IFIFO|mode, 0)
	default:
		return fmt.Errorf("unsupported tar entry type %q", h.Typeflag)
	}
	if err != nil {
		return err
	}
	return meta(fd, base, h)
}

func isDirAt(fd int, base string) bool {
	var st unix.Stat_t
	return unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

func writeFileAt(dir int, base string, r io.Reader) error {
	fd, err := unix.Openat(dir, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// link makes a hard link to the file at target as the tree is now; the
// target's parents are not followed either, nor made.
func (u *unpacker) link(fd int, base, target string) error {
	name, err := cleanName(target)
	if err != nil {
		return fmt.Errorf("hard link to %s: %w", target, err)
	}
	tdir, tbase := split(name)
	tfd, err := u.openDir(tdir, false)
	if err == nil {
		err = unix.Linkat(tfd, tbase, fd, base, 0)
		unix.Close(tfd)
	}
	if errors.Is(err, unix.ENOENT) || tbase == "." {
		return fmt.Errorf("hard link to %s, which is not in the image", target)
	}
	if err != nil {
		return fmt.Errorf("hard link to %s: %w", target, err)
	}
	return nil
}

// whiteout removes name, unless the current layer wrote it (a whiteout
// hides lower layers only). Its directory is made if missing, as
// containers/storage does: the layer says it is there.
func (u *unpacker) whiteout(name string) error {
	if u.layer[name] {
		return nil
	}
	dir, base := split(name)
	fd, err := u.openDir(dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return u.remove(fd, name, base)
}

// opaque empties dir of what the current layer did not write.
func (u *unpacker) opaque(dir string) error {
	fd, err := u.openDir(dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return u.keepLayer(fd, dir)
}

func (u *unpacker) keepLayer(fd int, dir string) error {
	names, err := readNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		name := path.Join(dir, n)
		if !u.layer[name] {
			if err := u.remove(fd, name, n); err != nil {
				return err
			}
			continue
		}
		child, err := unix.Openat(fd, n, dirFlags, 0)
		if err != nil {
			continue // not a directory: nothing below it
		}
		err = u.keepLayer(child, name)
		unix.Close(child)
		if err != nil {
			return err
		}
	}
	return nil
}

// remove removes base (name) from fd and all it holds, and forgets the
// directories' headers.
func (u *unpacker) remove(fd int, name, base string) error {
	dir, err := removeAt(fd, base)
	if dir {
		for d := range u.dirs {
			if d == name || strings.HasPrefix(d, name+"/") {
				delete(u.dirs, d)
			}
		}
	}
	return err
}

// removeAt removes base from dir and, if it is a directory, what it holds,
// without following symbolic links; it says whether base was a directory.
func removeAt(dir int, base string) (bool, error) {
	if base == "" || base == "." || base == ".." || strings.Contains(base, "/") {
		return false, fmt.Errorf("removing %q: not a name in a directory", base)
	}
	err := unix.Unlinkat(dir, base, 0)
	switch err {
	case nil, unix.ENOENT:
		return false, nil
	case unix.EISDIR:
	default:
		return false, err
	}
	fd, err := unix.Openat(dir, base, dirFlags, 0)
	if err != nil {
		return true, err
	}
	defer unix.Close(fd)
	names, err := readNames(fd)
	if err != nil {
		return true, err
	}
	for _, n := range names {
		if _, err := removeAt(fd, n); err != nil {
			return true, err
		}
	}
	return true, unix.Unlinkat(dir, base, unix.AT_REMOVEDIR)
}

// readNames lists the directory fd (on a copy: os.File closes its own).
func readNames(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", dirFlags, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

// finish sets the directories' owners, modes and times, children first;
// those a later layer removed or replaced are gone from dirs.
func (u *unpacker) finish() error {
	names := make([]string, 0, len(u.dirs))
	for name := range u.dirs {
		names = append(names, name)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, name := range names {
		dir, base := split(name)
		fd, err := u.openDir(dir, false)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		err = meta(fd, base, u.dirs[name])
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// meta sets owner, mode (after the owner: chown clears set-id bits),
// xattrs and times of base in dir; a symbolic link has no mode of its own.
func meta(dir int, base string, h *tar.Header) error {
	if err := unix.Fchownat(dir, base, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := unix.Fchmodat(dir, base, uint32(h.Mode&0o7777), 0); err != nil {
			return err
		}
	}
	for k, v := range h.PAXRecords {
		if attr, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			// No lsetxattrat(2): through the directory's descriptor.
			p := fmt.Sprintf("/proc/self/fd/%d/%s", dir, base)
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
	return unix.UtimesNanoAt(dir, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}
