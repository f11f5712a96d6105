package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/loopdev"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/internal/verity"
)

// verityOpen opens a dm-verity device over an attached image with
// systemd-veritysetup: systemd's own tool, part of the systemd package
// (libcryptsetup is one of its dependencies on Debian 12), so nodes need no
// extra package, and the device is set up by the code that systemd uses
// for RootHash= itself. The helper only finds the hash tree (the trailer
// in the image's last block) and checks its top against the pinned root
// hash first, so that a wrong or modified image is refused with a clear
// reason before anything is mounted; the kernel checks every block read
// after that.
func (n *node) verityOpen(ctx context.Context, c contract.VerityOpen) error {
	dev := layout.VerityDevicePath(c.Name)
	if _, err := os.Stat(n.at(dev)); err == nil {
		n.logf("reused %s", dev) // open already (a helper that died after opening it)
		return nil
	}
	v, err := checkVerity(c.Device, c.RootHash)
	if err != nil {
		return err
	}
	// systemd 252's veritysetup takes no hash offset: it reads the
	// superblock at the start of the hash device. So the hash device is a
	// read-only loop device over the image from the hash offset on, with
	// autoclear: the kernel detaches it when the verity device lets go.
	hash, err := loopdev.Attach(c.Device, loopdev.Options{ReadOnly: true, Offset: v.HashOffset, Autoclear: true})
	if err != nil {
		return err
	}
	defer hash.Close()
	out, err := exec.CommandContext(ctx, layout.VeritySetupPath, "attach", c.Name, c.Device, hash.Path, c.RootHash).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s attach %s: %v: %s", layout.VeritySetupPath, c.Name, err, strings.TrimSpace(string(out)))
	}
	n.log.set(fieldDevice, dev)
	n.logf("opened %s over %s (hash tree at %d, through %s): %d data blocks checked against root hash %s",
		dev, c.Device, v.HashOffset, hash.Path, v.DataBlocks, c.RootHash)
	return nil
}

// checkVerity reads the trailer of the image at device and checks the top
// of its hash tree against the pinned root hash.
func checkVerity(device, rootHash string) (*verity.Params, error) {
	root, err := hex.DecodeString(rootHash)
	if err != nil {
		return nil, fmt.Errorf("root hash %q is not hex", rootHash)
	}
	f, err := os.Open(device)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	v, err := verity.Read(f, uint64(size))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", device, err)
	}
	if err := verity.CheckRoot(f, v, root); err != nil {
		return nil, fmt.Errorf("%s: %w", device, err)
	}
	return v, nil
}

// verityClose closes the device; one that is not open is closed already.
func (n *node) verityClose(ctx context.Context, c contract.VerityClose) error {
	dev := layout.VerityDevicePath(c.Name)
	if _, err := os.Stat(n.at(dev)); os.IsNotExist(err) {
		return nil
	}
	out, err := exec.CommandContext(ctx, layout.VeritySetupPath, "detach", c.Name).CombinedOutput()
	if err != nil {
		if where, ok := n.mountedFrom(dev); ok {
			return fmt.Errorf("%s is still mounted on %s", dev, where)
		}
		return fmt.Errorf("%s detach %s: %v: %s", layout.VeritySetupPath, c.Name, err, strings.TrimSpace(string(out)))
	}
	n.logf("closed %s", dev)
	return nil
}
