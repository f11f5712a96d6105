package overlay

import (
	"fmt"
	"io/fs"
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

// Prepare deletes nothing it did not make: a work path that is not a
// directory, or a work directory holding anything overlayfs does not make
// there, is refused, and everything stays as it was.
func TestPrepareKeepsForeignWork(t *testing.T) {
	for name, c := range map[string]struct {
		make func(work string) error
		want string
	}{
		"file": {func(w string) error { return os.WriteFile(w, []byte("x"), 0o644) },
			"is not a directory (a file): move it away; overlayfs keeps its scratch files in a directory there"},
		"symlink": {func(w string) error { return os.Symlink("/etc", w) }, "is not a directory (a symlink): move it away"},
		"foreign file": {func(w string) error {
			os.MkdirAll(filepath.Join(w, "work", "#1"), 0o755)
			return os.WriteFile(filepath.Join(w, "notes.txt"), []byte("x"), 0o644)
		}, `holds "notes.txt", which overlayfs did not make: Strata clears only overlayfs's own work/ and index/ there; move it away, or give the container an upper path of its own`},
		"file named work": {func(w string) error {
			os.Mkdir(w, 0o755)
			return os.WriteFile(filepath.Join(w, "work"), []byte("x"), 0o644)
		}, `holds "work", which overlayfs did not make`},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			work := filepath.Join(dir, "work")
			if err := c.make(work); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			err := Prepare(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("changed:\n%s\nwas:\n%s", after, before)
			}
		})
	}
}

// snapshot lists a tree (paths, types, modes, file contents).
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		fmt.Fprintf(&b, "%s %v", p, fi.Mode())
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %q", data)
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String()
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
