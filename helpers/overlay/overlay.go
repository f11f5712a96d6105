// Package overlay prepares the writable layer of a container's overlay
// root: overlayfs needs its upper and work directories to exist, on one
// file system, before the mount.
package overlay

import (
	"fmt"
	"os"
	"path/filepath"
)

// Prepare creates dir/upper and dir/work. The upper directory's owner and
// mode become those of the container's root directory, so a new one is
// root's and 0755; the work directory is 0700 (overlayfs keeps its
// scratch files there). Modes are set explicitly, whatever the umask.
//
// Existing directories (a persistent upper) are kept as they are, with their
// files, owner and mode, except that a stale work directory is emptied:
// overlayfs refuses to mount over a work dir left by an unclean stop. An
// upper that is not a directory is an error, and then nothing is changed.
func Prepare(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("overlay layer %s: %w: check the upper layer's file system is mounted and writable", dir, err)
	}
	upper := filepath.Join(dir, "upper")
	switch fi, err := os.Lstat(upper); {
	case os.IsNotExist(err):
		if err := mkdirMode(upper, 0o755); err != nil {
			return fmt.Errorf("overlay upper directory: %w", err)
		}
	case err != nil:
		return fmt.Errorf("overlay upper directory: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("overlay upper %s is not a directory (%s): move it away; the container's changes are kept in a directory there", upper, fi.Mode().Type())
	}
	work := filepath.Join(dir, "work")
	if err := os.RemoveAll(work); err != nil {
		return fmt.Errorf("overlay work directory %s: cannot clear: %w", work, err)
	}
	if err := mkdirMode(work, 0o700); err != nil {
		return fmt.Errorf("overlay work directory: %w", err)
	}
	return nil
}

// mkdirMode creates a directory with exactly mode (not masked by umask).
func mkdirMode(path string, mode os.FileMode) error {
	if err := os.Mkdir(path, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}
