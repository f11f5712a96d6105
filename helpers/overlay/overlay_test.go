package overlay

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func TestPrepareFresh(t *testing.T) {
	// A umask that would strip the modes if they were left to it.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "upper", "test")
	if err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, filepath.Join(dir, "upper")); !m.IsDir() || m.Perm() != 0o755 {
		t.Errorf("upper %v, want drwxr-xr-x", m)
	}
	if m := mode(t, filepath.Join(dir, "work")); !m.IsDir() || m.Perm() != 0o700 {
		t.Errorf("work %v, want drwx------", m)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "upper"))
	if len(ents) != 0 {
		t.Errorf("upper not empty: %v", ents)
	}
	// Again: nothing changes.
	if err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
}

func TestPreparePersistentUpperKept(t *testing.T) {
	dir := t.TempDir()
	upper := filepath.Join(dir, "upper")
	os.MkdirAll(filepath.Join(upper, "etc"), 0o755)
	os.WriteFile(filepath.Join(upper, "etc", "hostname"), []byte("kept\n"), 0o644)
	os.Chmod(upper, 0o750) // an admin's choice: kept
	// A stale work dir from an unclean stop, with overlayfs's own
	// unreadable work/work inside.
	os.MkdirAll(filepath.Join(dir, "work", "work", "#1"), 0o755)
	os.WriteFile(filepath.Join(dir, "work", "work", "#1", "x"), []byte("stale"), 0o600)
	os.Chmod(filepath.Join(dir, "work", "work"), 0)
	os.Chmod(filepath.Join(dir, "work"), 0o755)
	if err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(upper, "etc", "hostname")); err != nil || string(b) != "kept\n" {
		t.Errorf("upper's files: %q %v", b, err)
	}
	if m := mode(t, upper); m.Perm() != 0o750 {
		t.Errorf("upper mode changed to %v", m.Perm())
	}
	ents, err := os.ReadDir(filepath.Join(dir, "work"))
	if err != nil || len(ents) != 0 {
		t.Errorf("work not emptied: %v %v", ents, err)
	}
	if m := mode(t, filepath.Join(dir, "work")); m.Perm() != 0o700 {
		t.Errorf("work %v", m)
	}
}

func TestPrepareUpperNotADirectory(t *testing.T) {
	for name, make := range map[string]func(string) error{
		"file":    func(p string) error { return os.WriteFile(p, []byte("x"), 0o644) },
		"symlink": func(p string) error { return os.Symlink("/", p) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := make(filepath.Join(dir, "upper")); err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Join(dir, "work", "keep"), 0o755)
			err := Prepare(dir)
			if err == nil || !strings.Contains(err.Error(), "is not a directory") {
				t.Fatalf("error %v", err)
			}
			// Nothing touched.
			if _, err := os.Stat(filepath.Join(dir, "work", "keep")); err != nil {
				t.Errorf("work changed: %v", err)
			}
		})
	}
}

func TestPrepareWorkIsAFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "work"), []byte("x"), 0o644)
	if err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, filepath.Join(dir, "work")); !m.IsDir() {
		t.Errorf("work %v", m)
	}
}

func TestPrepareDirUnwritable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	err := Prepare(filepath.Join(file, "sub"))
	if err == nil || !strings.Contains(err.Error(), "overlay layer") {
		t.Errorf("error %v", err)
	}
}
