package verity

import (
	"bytes"
	"encoding/hex"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// zeroUUID makes veritysetup's superblock byte for byte ours.
const zeroUUID = "00000000-0000-0000-0000-000000000000"

var rootHashLine = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)$`)

// veritysetupFormat runs the real veritysetup on data (padded to whole
// blocks, as a device would read) and returns its root hash and hash file.
func veritysetupFormat(t *testing.T, data, salt []byte) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	dataFile, hashFile := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	padded := append([]byte(nil), data...)
	if r := len(padded) % BlockSize; r != 0 {
		padded = append(padded, make([]byte, BlockSize-r)...)
	}
	if err := os.WriteFile(dataFile, padded, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("veritysetup", "format", "--salt="+hex.EncodeToString(salt),
		"--uuid="+zeroUUID, dataFile, hashFile).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	m := rootHashLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no root hash in veritysetup's output:\n%s", out)
	}
	hash, err := os.ReadFile(hashFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(m[1]), hash
}

// build writes data to a tree in pieces of the given size.
func build(t *testing.T, data, salt []byte, piece int) *Params {
	t.Helper()
	tr := NewTree(salt)
	for off := 0; off < len(data); off += piece {
		tr.Write(data[off:min(off+piece, len(data))])
	}
	v, err := tr.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The root hash and the whole hash area (superblock and every level) are
// veritysetup's, for sizes with no tree (one block), one level, two
// levels (more than 128 blocks) and a last partial block, written in
// pieces that do and do not line up with blocks.
func TestTreeMatchesVeritysetup(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	salt := make([]byte, SaltSize)
	rng.Read(salt)
	for _, size := range []int{BlockSize, 5*BlockSize - 100, 128 * BlockSize, 129*BlockSize + 1, 300 * BlockSize} {
		data := make([]byte, size)
		rng.Read(data)
		root, area := veritysetupFormat(t, data, salt)
		for _, piece := range []int{1000, BlockSize, 1 << 20} {
			t.Run(strconv.Itoa(size)+"/"+strconv.Itoa(piece), func(t *testing.T) {
				v := build(t, data, salt, piece)
				if got := v.RootHashHex(); got != root {
					t.Errorf("root hash %s, veritysetup says %s", got, root)
				}
				if !bytes.Equal(v.HashArea, area) {
					t.Errorf("hash area differs from veritysetup's (%d vs %d bytes)", len(v.HashArea), len(area))
				}
				if got := TreeSize(v.DataBlocks); got != uint64(len(area)) {
					t.Errorf("TreeSize(%d) = %d, veritysetup wrote %d", v.DataBlocks, got, len(area))
				}
				if want := uint64((size + BlockSize - 1) / BlockSize * BlockSize); v.HashOffset != want {
					t.Errorf("hash offset %d, want %d (the data rounded up to a block)", v.HashOffset, want)
				}
			})
		}
	}
}

// An image laid out as the build lays it out (data, tree at the data's
// end, trailer in the last block) verifies with veritysetup, which reads
// our superblock; one flipped byte in the data or in the tree fails it.
func TestImageVerifiesWithVeritysetup(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	salt, _ := NewSalt()
	data := make([]byte, 200*BlockSize+17)
	rng.Read(data)
	v := build(t, data, salt, 65536)
	img := make([]byte, v.HashOffset)
	copy(img, data)
	img = append(img, v.HashArea...)
	img = append(img, v.Trailer()...)
	file := filepath.Join(t.TempDir(), "image")
	verify := func(b []byte) ([]byte, error) {
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return exec.Command("veritysetup", "verify", "--hash-offset="+strconv.FormatUint(v.HashOffset, 10),
			file, file, v.RootHashHex()).CombinedOutput()
	}
	if out, err := verify(img); err != nil {
		t.Fatalf("veritysetup verify of a good image: %v\n%s", err, out)
	}
	for name, off := range map[string]uint64{"data": 4097, "tree": v.HashOffset + BlockSize + 40} {
		bad := append([]byte(nil), img...)
		bad[off] ^= 1
		if out, err := verify(bad); err == nil {
			t.Errorf("veritysetup verify passed with a flipped byte in the %s:\n%s", name, out)
		}
	}
	got, err := ParseTrailer(img[len(img)-TrailerSize:], uint64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if got.DataBlocks != v.DataBlocks || got.HashOffset != v.HashOffset ||
		!bytes.Equal(got.Salt, salt) || !bytes.Equal(got.RootHash, v.RootHash) {
		t.Errorf("trailer read back as %+v, wrote %+v", got, v)
	}
	sbBlocks, sbSalt, err := ParseSuperblock(v.HashArea)
	if err != nil || sbBlocks != v.DataBlocks || !bytes.Equal(sbSalt, salt) {
		t.Errorf("superblock read back: %d blocks, salt %x, %v", sbBlocks, sbSalt, err)
	}
}

// A truncated image, a block that is not a trailer and a trailer with
// other parameters are refused with what is wrong.
func TestParseTrailerRefuses(t *testing.T) {
	v := build(t, make([]byte, 10*BlockSize), []byte{1, 2, 3}, BlockSize)
	size := v.End() + TrailerSize
	cases := map[string]struct {
		block []byte
		size  uint64
		want  string
	}{
		"truncated": {v.Trailer(), size - BlockSize, "truncated?"},
		"zeros":     {make([]byte, TrailerSize), size, "no verity trailer"},
		"algorithm": {block(bytes.Replace(v.Trailer(), []byte(`"sha256"`), []byte(`"sha512"`), 1)), size, "want sha256"},
		"root hash": {block(bytes.Replace(v.Trailer(), []byte(v.RootHashHex()), []byte("abcd"), 1)), size, "want 64 hex digits"},
	}
	for name, c := range cases {
		_, err := ParseTrailer(c.block, c.size)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		}
	}
}

// block pads or cuts b to one trailer block.
func block(b []byte) []byte {
	out := make([]byte, TrailerSize)
	copy(out, b)
	return out
}

// CheckRoot accepts the image's own root hash and refuses another one, a
// modified top of the tree and a modified superblock, saying which.
func TestCheckRoot(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, blocks := range []int{1, 300} {
		data := make([]byte, blocks*BlockSize)
		rng.Read(data)
		v := build(t, data, []byte("salt"), BlockSize)
		img := append(append(append([]byte(nil), data...), v.HashArea...), v.Trailer()...)
		if err := CheckRoot(bytes.NewReader(img), v, v.RootHash); err != nil {
			t.Errorf("%d blocks, good image: %v", blocks, err)
		}
		other := append([]byte(nil), v.RootHash...)
		other[0] ^= 1
		if err := CheckRoot(bytes.NewReader(img), v, other); err == nil || !strings.Contains(err.Error(), "not to the pinned root hash") {
			t.Errorf("%d blocks, another root hash: %v", blocks, err)
		}
		top := int(v.HashOffset + BlockSize)
		if blocks == 1 {
			top = 0
		}
		bad := append([]byte(nil), img...)
		bad[top+5] ^= 1
		if err := CheckRoot(bytes.NewReader(bad), v, v.RootHash); err == nil || !strings.Contains(err.Error(), "modified since") {
			t.Errorf("%d blocks, modified top block: %v", blocks, err)
		}
		bad = append([]byte(nil), img...)
		bad[v.HashOffset+72] ^= 1 // data_blocks in the superblock
		if err := CheckRoot(bytes.NewReader(bad), v, v.RootHash); err == nil || !strings.Contains(err.Error(), "disagrees with the trailer") {
			t.Errorf("%d blocks, modified superblock: %v", blocks, err)
		}
	}
}
