// Package overlay prepares the writable layer of a container's overlay
// root: overlayfs needs its upper and work directories to exist, on one
// file system, before the mount.
package overlay

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// workEntries are what overlayfs itself makes in its work directory:
// work/ (scratch space for copy-up and whiteouts) and index/ (index=on).
// Both are made again at mount.
var workEntries = []string{"work", "index"}

// mountInfo is the mount table Prepare reads to find overlays still using
// a work directory.
const mountInfo = "/proc/self/mountinfo"

// Prepare creates dir/upper and dir/work. The upper directory's owner and
// mode become those of the container's root directory, so a new one is
// root's and 0755; the work directory is 0700 (overlayfs keeps its
// scratch files there). Modes are set explicitly, whatever the umask.
//
// Prepare deletes nothing it did not make. Existing directories (a
// persistent upper) are kept as they are, with their files, owner and
// mode. Of a stale work directory, only overlayfs's own entries are
// cleared (the kernel cannot clean deep leftovers of an unclean stop and
// then mounts read-only); a work directory holding anything else, or
// still used by a mounted overlay, is an error, and so is an upper or work
// that is not a directory: then nothing is changed.
func Prepare(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("overlay layer %s: %w: check the upper layer's file system is mounted and writable", dir, err)
	}
	upper := filepath.Join(dir, "upper")
	upperExists, err := isDir(upper, "the container's changes are kept in a directory there")
	if err != nil {
		return err
	}
	work := filepath.Join(dir, "work")
	workExists, err := isDir(work, "overlayfs keeps its scratch files in a directory there")
	if err != nil {
		return err
	}
	if workExists {
		if err := checkWork(work); err != nil {
			return err
		}
	}
	if !upperExists {
		if err := mkdirMode(upper, 0o755); err != nil {
			return fmt.Errorf("overlay upper directory: %w", err)
		}
	}
	if !workExists {
		if err := mkdirMode(work, 0o700); err != nil {
			return fmt.Errorf("overlay work directory: %w", err)
		}
		return nil
	}
	return clearWork(work)
}

// isDir reports whether path is a directory (not a symlink to one); a path
// that is something else is an error saying what belongs there.
func isDir(path, why string) (bool, error) {
	fi, err := os.Lstat(path)
	switch {
	case os.IsNotExist(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("overlay %s directory: %w", filepath.Base(path), err)
	case !fi.IsDir():
		return false, fmt.Errorf("overlay %s %s is not a directory (%s): move it away; %s", filepath.Base(path), path, kind(fi.Mode()), why)
	}
	return true, nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "a file"
	case m&os.ModeSymlink != 0:
		return "a symlink"
	}
	return m.Type().String()
}

// checkWork refuses a work directory that holds what overlayfs did not
// make, or that a mounted overlay still uses: clearing it would delete
// someone's files or break that mount.
func checkWork(work string) error {
	ents, err := os.ReadDir(work)
	if err != nil {
		return fmt.Errorf("overlay work directory %s: %w", work, err)
	}
	for _, e := range ents {
		if !e.IsDir() || !slices.Contains(workEntries, e.Name()) {
			return fmt.Errorf("overlay work directory %s holds %q, which overlayfs did not make: Strata clears only overlayfs's own work/ and index/ there; move it away, or give the container an upper path of its own", work, e.Name())
		}
	}
	mnt, err := mountedWith(work)
	if err != nil {
		return fmt.Errorf("overlay work directory %s: cannot read the mount table: %w", work, err)
	}
	if mnt != "" {
		return fmt.Errorf("overlay work directory %s is in use by the overlay mounted at %s: stop what uses that mount (or unmount it) first", work, mnt)
	}
	return nil
}

// clearWork empties overlayfs's own entries from a checked work directory.
func clearWork(work string) error {
	for _, name := range workEntries {
		if err := os.RemoveAll(filepath.Join(work, name)); err != nil {
			return fmt.Errorf("overlay work directory %s: cannot clear %s: %w", work, name, err)
		}
	}
	if err := os.Chmod(work, 0o700); err != nil {
		return fmt.Errorf("overlay work directory: %w", err)
	}
	return nil
}

// mountedWith returns the mount point of an overlay whose workdir= is
// work, or "" when there is none.
func mountedWith(work string) (string, error) {
	f, err := os.Open(mountInfo)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 0, 64*1024), 1<<20) // overlay options can be long
	for s.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS
		pre, post, ok := strings.Cut(s.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 3 || tail[0] != "overlay" {
			continue
		}
		for _, opt := range strings.Split(tail[2], ",") {
			if v, ok := strings.CutPrefix(opt, "workdir="); ok && unescape(v) == work {
				return unescape(fields[4]), nil
			}
		}
	}
	return "", s.Err()
}

// unescape undoes the kernel's octal escapes in mountinfo (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	return len(s) == 3 && strings.Trim(s, "01234567") == ""
}

// mkdirMode creates a directory with exactly mode (not masked by umask).
func mkdirMode(path string, mode os.FileMode) error {
	if err := os.Mkdir(path, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}
