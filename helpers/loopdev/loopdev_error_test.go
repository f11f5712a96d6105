package loopdev

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// An attach error names the file once; Reason leaves it out, for callers
// whose message names it already (strata-helper's failure line).
func TestAttachErrorNamesFileOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "missing.sqfs")
	_, err := Attach(file, Options{ReadOnly: true})
	var ae *AttachError
	if !errors.As(err, &ae) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Attach of a missing file: %v (%T), want an AttachError wrapping ENOENT", err, err)
	}
	if want := "loopdev: attach " + file + ": open backing file read-only: no such file or directory"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	if ae.Reason() != "open backing file read-only: no such file or directory" {
		t.Errorf("Reason() = %q", ae.Reason())
	}
	withDevice := &AttachError{File: file, Device: "/dev/loop7", Err: errors.New("LOOP_CONFIGURE: device busy")}
	if withDevice.Error() != "loopdev: attach "+file+" to /dev/loop7: LOOP_CONFIGURE: device busy" || withDevice.Reason() != "/dev/loop7: LOOP_CONFIGURE: device busy" {
		t.Errorf("with a device: %q / %q", withDevice.Error(), withDevice.Reason())
	}
}
