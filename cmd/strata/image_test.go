package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImageToolLookup(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	var errOut bytes.Buffer
	if code := run([]string{"image", "ls"}, &bytes.Buffer{}, &errOut); code != 1 || !strings.Contains(errOut.String(), "strata-image is not installed") {
		t.Errorf("without strata-image: exit %d, %q", code, errOut.String())
	}
	tool := filepath.Join(dir, "strata-image")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := imageToolPath(); got != tool {
		t.Errorf("imageToolPath() = %q, want %q", got, tool)
	}
}
