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
// mode become those of the container's root directory, so it is root's and
// 0755. Existing directories (a persistent upper) are kept as they are,
// except that a stale work directory is emptied: overlayfs refuses to mount
// over a work dir left by an unclean stop.
func Prepare(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("overlay layer %s: %w", dir, err)
	}
	upper := filepath.Join(dir, "upper")
	if err := os.Mkdir(upper, 0o755); err != nil && !os.IsExist(err) {
		return fmt.Errorf("overlay upper directory: %w", err)
	}
	work := filepath.Join(dir, "work")
	if err := os.RemoveAll(work); err != nil {
		return fmt.Errorf("overlay work directory %s: cannot clear: %w", work, err)
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		return fmt.Errorf("overlay work directory: %w", err)
	}
	fi, err := os.Stat(upper)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("overlay upper %s is not a directory", upper)
	}
	return nil
}
