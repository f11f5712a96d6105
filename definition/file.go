package definition

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxFileSize is the most a definition file may hold. Real ones are a few
// KiB; the cap keeps a huge (or sparse, or endless) file from taking the
// generator's memory, and with it every other container's units.
const MaxFileSize = 1 << 20

// refused is a file the generator will not read, and why.
type refused struct{ msg string }

func (r *refused) Error() string { return r.msg }

func refuse(format string, args ...any) error { return &refused{msg: fmt.Sprintf(format, args...)} }

// readProblem is the message for a file readFile could not read.
func readProblem(err error) string {
	var r *refused
	if errors.As(err, &r) {
		return r.msg
	}
	if inner := errors.Unwrap(err); inner != nil {
		err = inner
	}
	return fmt.Sprintf("cannot read: %v", err)
}

// readFile reads a definition file and returns its FileInfo, both from one
// open file: what is checked is what is read. It reads only what root alone
// controls (as systemd's units become root's processes): a regular file or a
// symlink to one, owned by root, writable by no one else, at most
// MaxFileSize bytes. Anything else is refused before its content is read,
// and nothing here can block: FIFOs and devices are refused from stat(2)
// without being opened, and the open is O_NONBLOCK in case the name was
// swapped for one since.
func readFile(path string) ([]byte, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if err := checkFile(fi); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, nil, err
	}
	if err := checkFile(fi); err != nil {
		return nil, nil, err
	}
	// One byte past the cap tells a file that grew since fstat.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > MaxFileSize {
		return nil, nil, tooLarge(int64(len(data)))
	}
	return data, fi, nil
}

// ReadFile reads a definition as the generator does (see readFile): the
// helper reads inline secrets through it, so a FIFO or a huge file in
// their place can no more block it than the generator.
func ReadFile(path string) ([]byte, error) {
	data, _, err := readFile(path)
	var r *refused
	if errors.As(err, &r) {
		return nil, fmt.Errorf("%s %s", path, r.msg)
	}
	return data, err
}

// checkFile refuses what the generator must not read: anything but a
// regular file, files others could have written, and huge files.
func checkFile(fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return refuse("is %s, not a regular file: a definition is a regular file (or a symlink to one; a symlink to /dev/null masks the name)", fileType(fi.Mode()))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
		return refuse("is owned by user %d, not root: its units would run as root, so only root's files are read (chown root, or remove it)", st.Uid)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return refuse("is writable by %s (mode %04o): its units would run as root, so only files root alone can write are read (chmod go-w)", writers(perm), perm)
	}
	if fi.Size() > MaxFileSize {
		return tooLarge(fi.Size())
	}
	return nil
}

func tooLarge(size int64) error {
	return refuse("is larger than a definition may be (%d bytes, at most %d): not read", size, MaxFileSize)
}

func writers(perm fs.FileMode) string {
	switch {
	case perm&0o022 == 0o022:
		return "its group and all users"
	case perm&0o002 != 0:
		return "all users"
	}
	return "its group"
}

// fileType names a non-regular file type for messages.
func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a special file (" + m.Type().String() + ")"
}

// exposed reports whether a file's content is readable by anyone but root.
func exposed(fi fs.FileInfo) bool {
	if fi.Mode().Perm()&0o044 != 0 {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid != 0 && fi.Mode().Perm()&0o400 != 0
}
