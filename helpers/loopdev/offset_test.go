package loopdev

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// With Offset the device starts that far into the file (the verity hash
// device over the tree after a squashfs), and with Autoclear it goes away
// when its last user closes it.
func TestAttachOffset(t *testing.T) {
	file := filepath.Join(t.TempDir(), "img")
	data := make([]byte, 3*4096)
	for i := range data {
		data[i] = byte(i / 4096)
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Attach(file, Options{ReadOnly: true, Offset: 4096, Autoclear: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(d.Path)
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[4096:]) {
		t.Errorf("%s reads %d bytes starting %v, want the file from 4096 on (%d bytes)", d.Path, len(got), got[:4], len(data)-4096)
	}
	d.Close()
	if devs, err := Find(file); err == nil && len(devs) > 0 {
		t.Errorf("still attached after Close with Autoclear: %v", devs)
	}
}
