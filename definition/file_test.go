package definition

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const goodJSON = `{"command": "/bin/true", "mount": {"kind": "bind", "bind": {"path": "/srv/root", "base": "root"}}}`

// Files the generator must not read are refused before their content is
// read, each with the reason; none blocks or is read whole.
func TestLoadRefusesOddFiles(t *testing.T) {
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	for name, c := range map[string]struct {
		make func(path string) error
		want string
	}{
		"fifo.json": {func(p string) error { return syscall.Mkfifo(p, 0o600) },
			"is a FIFO (named pipe), not a regular file: a definition is a regular file (or a symlink to one; a symlink to /dev/null masks the name)"},
		"zero.json": {func(p string) error { return os.Symlink("/dev/zero", p) },
			"is a character device, not a regular file"},
		"dir.json": {func(p string) error { return os.Mkdir(p, 0o755) },
			"is a directory, not a regular file"},
		"socket.json": {func(p string) error {
			fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			if err != nil {
				return err
			}
			defer syscall.Close(fd)
			return syscall.Bind(fd, &syscall.SockaddrUnix{Name: p})
		}, "is a socket, not a regular file"},
		"sparse.json": {func(p string) error { write(t, p, ""); return os.Truncate(p, 8<<30) },
			"is larger than a definition may be (8589934592 bytes, at most 1048576): not read"},
		"group.json": {func(p string) error { write(t, p, goodJSON); return os.Chmod(p, 0o664) },
			"is writable by its group (mode 0664): its units would run as root, so only files root alone can write are read (chmod go-w)"},
		"world.json": {func(p string) error { write(t, p, goodJSON); return os.Chmod(p, 0o606) },
			"is writable by all users (mode 0606)"},
		"both.json": {func(p string) error { write(t, p, goodJSON); return os.Chmod(p, 0o666) },
			"is writable by its group and all users (mode 0666)"},
		"user.json": {func(p string) error { write(t, p, goodJSON); return os.Chown(p, 65534, 0) },
			"is owned by user 65534, not root: its units would run as root, so only root's files are read (chown root, or remove it)"},
		"linkgroup.json": {func(p string) error {
			write(t, at("target"), goodJSON)
			os.Chmod(at("target"), 0o660)
			return os.Symlink(at("target"), p)
		}, "is writable by its group (mode 0660)"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := c.make(at(name)); err != nil {
				t.Fatal(err)
			}
			def, problems := Load(at(name))
			if def != nil || len(problems) != 1 || problems[0].Severity != Error || !strings.HasPrefix(problems[0].Message, c.want) {
				t.Errorf("Load = %v, %v; want one error starting %q", def, problems, c.want)
			}
		})
	}
}

// Symlinks to regular files are followed (definitions may be managed
// elsewhere); root's 0644 and 0600 files are read.
func TestLoadReadsRootsFiles(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o600, 0o644, 0o400} {
		path := filepath.Join(dir, "c.json")
		os.Remove(path)
		write(t, path, goodJSON)
		os.Chmod(path, mode)
		if def, problems := Load(path); def == nil || len(problems) != 0 {
			t.Errorf("mode %04o: %v", mode, problems)
		}
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink("c.json", link); err != nil {
		t.Fatal(err)
	}
	if def, problems := Load(link); def == nil || def.Name != "link" || len(problems) != 0 {
		t.Errorf("symlink: %v", problems)
	}
}

// The cap is on what is read: exactly MaxFileSize bytes are read (and
// parsed), one more is refused.
func TestLoadSizeCap(t *testing.T) {
	dir := t.TempDir()
	at := func(n int) string {
		p := filepath.Join(dir, "big.json")
		os.Remove(p)
		write(t, p, goodJSON[:len(goodJSON)-1]+strings.Repeat(" ", n-len(goodJSON))+"}")
		return p
	}
	if def, problems := Load(at(MaxFileSize)); def == nil {
		t.Errorf("%d bytes: %v", MaxFileSize, problems)
	}
	if def, problems := Load(at(MaxFileSize + 1)); def != nil || len(problems) != 1 || !strings.Contains(problems[0].Message, "is larger than a definition may be (1048577 bytes") {
		t.Errorf("%d bytes: %v", MaxFileSize+1, problems)
	}
}

func TestLoadMissing(t *testing.T) {
	_, problems := Load(filepath.Join(t.TempDir(), "gone.json"))
	if len(problems) != 1 || problems[0].Message != "cannot read: no such file or directory" {
		t.Errorf("%v", problems)
	}
}
