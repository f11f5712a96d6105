package verity

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// TrailerSize is the last block of an image, where its trailer is: a
// node that can only read the device (a read-only cephx key, a loop file)
// finds there where the hash tree is and what it hashes to, without Ceph
// tools and without the image's metadata.
const TrailerSize = BlockSize

// trailerMagic starts the trailer; JSON follows, then zeros.
const trailerMagic = "STRATA-VERITY-1\n"

// trailer is the JSON of the trailer. The root hash in it is only a
// hint: a definition pins the hash or has it signed, so a forged trailer
// can only make the device fail to open.
type trailer struct {
	DataBlocks    uint64 `json:"data_blocks"`
	DataBlockSize int    `json:"data_block_size"`
	HashBlockSize int    `json:"hash_block_size"`
	HashAlgorithm string `json:"hash_algorithm"`
	HashOffset    uint64 `json:"hash_offset"`
	Salt          string `json:"salt"`
	RootHash      string `json:"root_hash"`
	// Signature (PKCS#7, DER) of the hex root hash, where one is stored:
	// after the hash tree.
	SignatureOffset uint64 `json:"signature_offset,omitempty"`
	SignatureSize   uint64 `json:"signature_size,omitempty"`
}

// Trailer returns the trailer block describing v.
func (v *Params) Trailer() []byte {
	t := trailer{DataBlocks: v.DataBlocks, DataBlockSize: BlockSize, HashBlockSize: BlockSize,
		HashAlgorithm: Algorithm, HashOffset: v.HashOffset, Salt: hex.EncodeToString(v.Salt),
		RootHash: v.RootHashHex(), SignatureOffset: v.SignatureOffset, SignatureSize: v.SignatureSize}
	js, _ := json.Marshal(t)
	b := make([]byte, TrailerSize)
	copy(b, trailerMagic)
	copy(b[len(trailerMagic):], append(js, '\n'))
	return b
}

// ErrNoTrailer says that the last block holds no Strata verity trailer:
// the image was built with --no-verity (or before verity was the default).
var ErrNoTrailer = errors.New("no verity trailer in the last 4096 bytes (an image built with --no-verity?)")

// ParseTrailer reads the last block of an image of size bytes.
func ParseTrailer(b []byte, size uint64) (*Params, error) {
	if len(b) != TrailerSize || !bytes.HasPrefix(b, []byte(trailerMagic)) {
		return nil, ErrNoTrailer
	}
	js := b[len(trailerMagic):]
	if i := bytes.IndexByte(js, '\n'); i >= 0 {
		js = js[:i]
	}
	var t trailer
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("verity trailer: %v", err)
	}
	if t.DataBlockSize != BlockSize || t.HashBlockSize != BlockSize || t.HashAlgorithm != Algorithm {
		return nil, fmt.Errorf("verity trailer: %s with %d/%d-byte blocks, want %s with %d-byte blocks",
			t.HashAlgorithm, t.DataBlockSize, t.HashBlockSize, Algorithm, BlockSize)
	}
	v := &Params{DataBlocks: t.DataBlocks, HashOffset: t.HashOffset,
		SignatureOffset: t.SignatureOffset, SignatureSize: t.SignatureSize}
	var err error
	if v.Salt, err = hex.DecodeString(t.Salt); err != nil || len(v.Salt) > 256 {
		return nil, fmt.Errorf("verity trailer: salt %q: want up to 256 bytes in hex", t.Salt)
	}
	if v.RootHash, err = hex.DecodeString(t.RootHash); err != nil || len(v.RootHash) != hashSize {
		return nil, fmt.Errorf("verity trailer: root hash %q: want %d hex digits", t.RootHash, 2*hashSize)
	}
	if err := v.checkFits(size); err != nil {
		return nil, fmt.Errorf("verity trailer: %v", err)
	}
	return v, nil
}

// checkFits refuses parameters that point outside an image of size
// bytes (a truncated image, or a trailer from another one).
func (v *Params) checkFits(size uint64) error {
	if v.DataBlocks == 0 || v.HashOffset%BlockSize != 0 || v.HashOffset < v.DataBlocks*BlockSize {
		return fmt.Errorf("%d data blocks with the hash tree at %d: want the tree at or after the data, on a block boundary", v.DataBlocks, v.HashOffset)
	}
	end := v.HashOffset + TreeSize(v.DataBlocks)
	if v.SignatureSize > 0 {
		end = max(end, v.SignatureOffset+v.SignatureSize)
	}
	if end+TrailerSize > size {
		return fmt.Errorf("the hash tree ends at %d, but the image has %d bytes (truncated?)", end, size)
	}
	return nil
}

// TreeSize is the size of the hash area (superblock and tree) for
// dataBlocks blocks of data.
func TreeSize(dataBlocks uint64) uint64 {
	n := uint64(1) // the superblock
	for blocks := dataBlocks; blocks > 1; {
		blocks = (blocks + BlockSize/hashSize - 1) / (BlockSize / hashSize)
		n += blocks
	}
	return n * BlockSize
}

// Open opens an image file or block device at path and reads its
// trailer; the caller closes the file (the helper goes on to check the
// top of the tree through it). Errors name path.
func Open(path string) (*os.File, *Params, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		var v *Params
		if v, err = Read(f, uint64(size)); err == nil {
			return f, v, nil
		}
	}
	f.Close()
	return nil, nil, fmt.Errorf("%s: %w", path, err)
}

// Read finds the parameters of an image of size bytes from its trailer,
// and the root hash signature where the trailer records one.
func Read(r io.ReaderAt, size uint64) (*Params, error) {
	if size < TrailerSize {
		return nil, ErrNoTrailer
	}
	b := make([]byte, TrailerSize)
	if _, err := r.ReadAt(b, int64(size-TrailerSize)); err != nil {
		return nil, fmt.Errorf("reading the verity trailer: %w", err)
	}
	v, err := ParseTrailer(b, size)
	if err != nil || v.SignatureSize == 0 {
		return v, err
	}
	if v.SignatureSize > MaxSignatureSize {
		return nil, fmt.Errorf("verity trailer: a signature of %d bytes, want at most %d", v.SignatureSize, MaxSignatureSize)
	}
	if v.Signature, err = ReadSignature(r, v); err != nil {
		return nil, err
	}
	return v, nil
}
