// Package verity builds and reads dm-verity hash trees as veritysetup
// does (format 1, sha256, 4096-byte blocks), and the trailer Strata puts
// at the end of an image so that a node reading only the block device
// finds the parameters. Pure Go: the admin tool writes with it, the
// node's helper reads with it.
package verity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// The dm-verity parameters Strata builds with: those veritysetup uses by
// default (format 1, sha256, 4096-byte data and hash blocks, a 32-byte
// random salt), so that veritysetup, systemd and the kernel all agree.
const (
	BlockSize = 4096
	Algorithm = "sha256"
	HashType  = 1
	SaltSize  = 32
	// hashSize is sha256's.
	hashSize      = sha256.Size
	superblockLen = 512
)

// Tree computes the dm-verity hash tree of data written to it in
// order, in one pass: it keeps the hashes of the data blocks (1/128 of the
// data) and builds the upper levels when Finish is called. A last partial
// block is padded with zeros, as a device holding the data would read.
type Tree struct {
	salt    []byte
	partial []byte // data of the current, incomplete block
	level0  []byte // hash of each data block, in order
	blocks  uint64
}

// NewTree starts a tree with salt (NewSalt for a random one).
func NewTree(salt []byte) *Tree {
	return &Tree{salt: append([]byte(nil), salt...), partial: make([]byte, 0, BlockSize)}
}

// NewSalt returns a random salt of SaltSize bytes.
func NewSalt() ([]byte, error) {
	salt := make([]byte, SaltSize)
	_, err := rand.Read(salt)
	return salt, err
}

// Write hashes p as the next data; it never fails.
func (t *Tree) Write(p []byte) (int, error) {
	n := len(p)
	if len(t.partial) > 0 {
		k := min(BlockSize-len(t.partial), len(p))
		t.partial = append(t.partial, p[:k]...)
		p = p[k:]
		if len(t.partial) == BlockSize {
			t.hashData(t.partial)
			t.partial = t.partial[:0]
		}
	}
	for len(p) >= BlockSize {
		t.hashData(p[:BlockSize])
		p = p[BlockSize:]
	}
	t.partial = append(t.partial, p...)
	return n, nil
}

func (t *Tree) hashData(block []byte) {
	t.level0 = append(t.level0, t.hash(block)...)
	t.blocks++
}

// hash is format 1's: sha256 of the salt, then the block.
func (t *Tree) hash(block []byte) []byte {
	h := sha256.New()
	h.Write(t.salt)
	h.Write(block)
	return h.Sum(nil)
}

// Params are what a node needs to open a verity device over an image: the
// data is the first DataBlocks blocks, the hash tree starts with a
// veritysetup superblock at HashOffset (so the tree itself one block
// later), and RootHash is what the top of the tree hashes to.
type Params struct {
	DataBlocks uint64
	HashOffset uint64 // bytes from the start of the device
	Salt       []byte
	RootHash   []byte
	// SignatureOffset and SignatureSize locate a PKCS#7 signature of the
	// hex root hash in the image, when one is stored (0 when not).
	SignatureOffset uint64
	SignatureSize   uint64
	// Signature is that signature, when built (SetSignature) or read
	// (ReadSignature).
	Signature []byte
	// HashArea is the superblock and the tree, levels top first, as they
	// are written at HashOffset; empty when read from a trailer.
	HashArea []byte
}

// HashStartBlock is the tree's first block (after the superblock), as the
// kernel's verity table wants it.
func (v *Params) HashStartBlock() uint64 { return v.HashOffset/BlockSize + 1 }

// End is the offset after the hash tree and the signature, if any, the
// signature padded to a block: where a file's trailer goes (a loop device
// ends at a whole sector, and the trailer must be its last block).
func (v *Params) End() uint64 {
	sig := (uint64(len(v.Signature)) + BlockSize - 1) / BlockSize * BlockSize
	return v.HashOffset + uint64(len(v.HashArea)) + sig
}

// Finish pads the data to whole blocks, builds the tree and returns the
// verity parameters with the hash area to write at the data's end (the
// data size rounded up to a block).
func (t *Tree) Finish() (*Params, error) {
	if len(t.partial) > 0 {
		block := make([]byte, BlockSize)
		copy(block, t.partial)
		t.hashData(block)
		t.partial = t.partial[:0]
	}
	if t.blocks == 0 {
		return nil, errors.New("verity: no data to hash")
	}
	levels := [][]byte{}
	cur := t.level0
	// One data block has no tree: its hash is the root (the kernel's
	// zero levels).
	for t.blocks > 1 {
		lvl := padBlocks(cur)
		levels = append(levels, lvl)
		if len(lvl) == BlockSize {
			break
		}
		var next []byte
		for off := 0; off < len(lvl); off += BlockSize {
			next = append(next, t.hash(lvl[off:off+BlockSize])...)
		}
		cur = next
	}
	v := &Params{DataBlocks: t.blocks, HashOffset: t.blocks * BlockSize,
		Salt: t.salt, RootHash: t.level0}
	if len(levels) > 0 {
		v.RootHash = t.hash(levels[len(levels)-1])
	}
	// veritysetup's order: the superblock, then the levels top first.
	area := make([]byte, BlockSize)
	copy(area, v.superblock())
	for i := len(levels) - 1; i >= 0; i-- {
		area = append(area, levels[i]...)
	}
	v.HashArea = area
	return v, nil
}

// padBlocks pads hashes with zeros to whole hash blocks.
func padBlocks(hashes []byte) []byte {
	n := (len(hashes) + BlockSize - 1) / BlockSize * BlockSize
	out := make([]byte, n)
	copy(out, hashes)
	return out
}

// superblock is cryptsetup's struct verity_sb (512 bytes, little endian),
// so `veritysetup verify/open` and systemd-veritysetup find the
// parameters without being told. Its UUID stays zero: Strata names
// devices by what they attach, not by UUID.
func (v *Params) superblock() []byte {
	sb := make([]byte, superblockLen)
	copy(sb[0:8], "verity\x00\x00")
	binary.LittleEndian.PutUint32(sb[8:], 1) // superblock version
	binary.LittleEndian.PutUint32(sb[12:], HashType)
	copy(sb[32:64], Algorithm)
	binary.LittleEndian.PutUint32(sb[64:], BlockSize)
	binary.LittleEndian.PutUint32(sb[68:], BlockSize)
	binary.LittleEndian.PutUint64(sb[72:], v.DataBlocks)
	binary.LittleEndian.PutUint16(sb[80:], uint16(len(v.Salt)))
	copy(sb[88:88+256], v.Salt)
	return sb
}

// ParseSuperblock reads a veritysetup superblock: the parameters
// Strata builds with, or an error saying which one differs.
func ParseSuperblock(b []byte) (dataBlocks uint64, salt []byte, err error) {
	if len(b) < superblockLen || string(b[0:8]) != "verity\x00\x00" {
		return 0, nil, errors.New("no verity superblock (want the signature \"verity\")")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != 1 {
		return 0, nil, fmt.Errorf("verity superblock version %d, want 1", v)
	}
	if h := binary.LittleEndian.Uint32(b[12:]); h != HashType {
		return 0, nil, fmt.Errorf("verity hash type %d, want %d", h, HashType)
	}
	if alg := cString(b[32:64]); alg != Algorithm {
		return 0, nil, fmt.Errorf("verity hash algorithm %q, want %q", alg, Algorithm)
	}
	for _, off := range []int{64, 68} {
		if bs := binary.LittleEndian.Uint32(b[off:]); bs != BlockSize {
			return 0, nil, fmt.Errorf("verity block size %d, want %d", bs, BlockSize)
		}
	}
	n := int(binary.LittleEndian.Uint16(b[80:]))
	if n > 256 {
		return 0, nil, fmt.Errorf("verity salt of %d bytes, want at most 256", n)
	}
	return binary.LittleEndian.Uint64(b[72:]), append([]byte(nil), b[88:88+n]...), nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// RootHashHex is the root hash as veritysetup prints it.
func (v *Params) RootHashHex() string { return hex.EncodeToString(v.RootHash) }
