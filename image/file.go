package image

import (
	"fmt"
	"io"
	"os"

	"github.com/strata-project/strata/internal/verity"
)

// AppendVerity hashes the squashfs file in one read and appends its hash
// tree (at its size rounded up to a block, the gap zeros) and the trailer.
func AppendVerity(file string, salt []byte) (*verity.Params, error) {
	return AppendSignedVerity(file, salt, nil)
}

// AppendSignedVerity is AppendVerity that also signs the root hash with
// sign (when not nil) and stores the signature between the hash tree and
// the trailer, where the trailer locates it.
func AppendSignedVerity(file string, salt []byte, sign *verity.Signer) (*verity.Params, error) {
	if salt == nil {
		var err error
		if salt, err = verity.NewSalt(); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, SuperblockSize)
	if _, err := io.ReadFull(f, head); err != nil {
		return nil, fmt.Errorf("%s: not a squashfs file: %v", file, err)
	}
	if _, err := ParseSuperblock(head); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if _, err := verity.Read(f, fileSize(f)); err == nil {
		return nil, fmt.Errorf("%s has a verity trailer already", file)
	}
	t := verity.NewTree(salt)
	if _, err := io.Copy(t, io.NewSectionReader(f, 0, int64(fileSize(f)))); err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	v, err := t.Finish()
	if err != nil {
		return nil, err
	}
	if sign != nil {
		sig, err := sign.Sign(v.RootHashHex())
		if err != nil {
			return nil, err
		}
		v.SetSignature(sig)
	}
	if _, err := f.WriteAt(v.HashArea, int64(v.HashOffset)); err != nil {
		return nil, err
	}
	if len(v.Signature) > 0 {
		if _, err := f.WriteAt(v.Signature, int64(v.SignatureOffset)); err != nil {
			return nil, err
		}
	}
	if _, err := f.WriteAt(v.Trailer(), int64(v.End())); err != nil {
		return nil, err
	}
	return v, f.Close()
}

func fileSize(f *os.File) uint64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return uint64(st.Size())
}

// ReadVerity reads the verity parameters of an image file or block device
// from its trailer.
func ReadVerity(path string) (*verity.Params, error) {
	f, v, err := verity.Open(path)
	if err != nil {
		return nil, err
	}
	f.Close()
	return v, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
