package main

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-project/strata/internal/verity"
)

// verityImage writes an image laid out as strata image build --verity
// lays it out and returns its path and root hash.
func verityImage(t *testing.T) (string, string, []byte) {
	t.Helper()
	data := make([]byte, 40*verity.BlockSize)
	rand.New(rand.NewSource(4)).Read(data)
	tr := verity.NewTree([]byte("salt"))
	tr.Write(data)
	v, err := tr.Finish()
	if err != nil {
		t.Fatal(err)
	}
	img := append(append(data, v.HashArea...), v.Trailer()...)
	file := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(file, img, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, v.RootHashHex(), img
}

// What verity-open refuses before it opens anything, each with its reason:
// another root hash, a modified tree, an image without a tree, a
// truncated image.
func TestCheckVerityRefuses(t *testing.T) {
	file, root, img := verityImage(t)
	if _, err := checkVerity(file, root); err != nil {
		t.Fatalf("the good image: %v", err)
	}
	other := strings.Repeat("0", 64)
	write := func(b []byte) string {
		f := filepath.Join(t.TempDir(), "bad")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	modified := append([]byte(nil), img...)
	modified[40*verity.BlockSize+verity.BlockSize+1] ^= 1
	for name, c := range map[string]struct{ file, root, want string }{
		"other root hash": {file, other, "not to the pinned root hash " + other},
		"modified tree":   {write(modified), root, "modified since it was built"},
		"no tree":         {write(img[:40*verity.BlockSize]), root, "built with --no-verity"},
		"truncated":       {write(append(append([]byte(nil), img[:41*verity.BlockSize]...), img[len(img)-verity.BlockSize:]...)), root, "truncated?"},
	} {
		if _, err := checkVerity(c.file, c.root); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}
