package verity

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
)

// CheckRoot reads the top of the hash tree from an image and checks that
// it hashes to root (what a definition pins). The kernel checks every
// other block as it is read, against this top; checking it first turns a
// wrong image or a modified tree into a clear refusal before anything is
// mounted, instead of I/O errors at the mount.
func CheckRoot(r io.ReaderAt, v *Params, root []byte) error {
	block := make([]byte, BlockSize)
	off := int64(v.HashOffset + BlockSize) // the top level, after the superblock
	if v.DataBlocks == 1 {
		off = 0 // no tree: the one data block hashes to the root
	}
	if _, err := r.ReadAt(block, off); err != nil {
		return fmt.Errorf("reading the top of the hash tree: %w", err)
	}
	sb := make([]byte, superblockLen)
	if _, err := r.ReadAt(sb, int64(v.HashOffset)); err != nil {
		return fmt.Errorf("reading the verity superblock: %w", err)
	}
	blocks, salt, err := ParseSuperblock(sb)
	if err != nil {
		return err
	}
	if blocks != v.DataBlocks || !bytes.Equal(salt, v.Salt) {
		return fmt.Errorf("the verity superblock (%d data blocks) disagrees with the trailer (%d): a damaged image", blocks, v.DataBlocks)
	}
	t := &Tree{salt: salt}
	if got := t.hash(block); !bytes.Equal(got, root) {
		return fmt.Errorf("the image's hash tree hashes to %s, not to the pinned root hash %s: another image, or one modified since it was built",
			hex.EncodeToString(got), hex.EncodeToString(root))
	}
	return nil
}
