package overlay

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// With a real overlay on a tmpfs: Prepare refuses a work directory a
// mounted overlay uses; after an unclean stop it clears the deep leftovers
// the kernel cannot (it would mount read-only), and keeps the upper's files
// and whatever else is beside them.
func TestPrepareWithRealOverlay(t *testing.T) {
	fsDir := t.TempDir()
	if err := unix.Mount("tmpfs", fsDir, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("tmpfs (the test needs root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(fsDir, unix.MNT_DETACH) })
	lower, merged, dir := filepath.Join(fsDir, "lower"), filepath.Join(fsDir, "merged"), filepath.Join(fsDir, "layer")
	os.MkdirAll(lower, 0o755)
	os.MkdirAll(merged, 0o755)
	os.WriteFile(filepath.Join(lower, "base"), []byte("lower\n"), 0o644)
	if err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "admin-notes"), []byte("mine\n"), 0o600) // beside upper/ and work/
	opts := "lowerdir=" + lower + ",upperdir=" + dir + "/upper,workdir=" + dir + "/work"
	mount := func() {
		t.Helper()
		if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
			t.Fatalf("overlay: %v", err)
		}
	}
	mount()
	if err := os.WriteFile(filepath.Join(merged, "changed"), []byte("upper\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Prepare(dir)
	if want := "overlay work directory " + dir + "/work is in use by the overlay mounted at " + merged + ": stop what uses that mount (or unmount it) first"; err == nil || err.Error() != want {
		t.Errorf("while mounted: %v, want %q", err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "work", "work")); err != nil {
		t.Errorf("the mounted overlay's work/work was touched: %v", err)
	}
	if err := unix.Unmount(merged, 0); err != nil {
		t.Fatal(err)
	}

	// An unclean stop's leftovers, deeper than overlayfs cleans itself.
	stale := filepath.Join(dir, "work", "work", "#1", "a", "b")
	os.MkdirAll(stale, 0o755)
	os.WriteFile(filepath.Join(stale, "x"), []byte("stale"), 0o600)
	if err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	mount()
	defer unix.Unmount(merged, 0)
	if err := os.WriteFile(filepath.Join(merged, "again"), nil, 0o644); err != nil {
		t.Errorf("overlay not writable after Prepare: %v", err)
	}
	for path, want := range map[string]string{
		filepath.Join(merged, "changed"):  "upper\n",
		filepath.Join(merged, "base"):     "lower\n",
		filepath.Join(dir, "admin-notes"): "mine\n",
	} {
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", path, b, err, want)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\134y`: `/x\y`, `/end\04`: `/end\04`} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
