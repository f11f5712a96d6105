package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

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
	root, signer, err := n.verityRoot(c)
	if err != nil {
		return err
	}
	v, err := checkVerity(c.Device, root)
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
	out, err := exec.CommandContext(ctx, layout.VeritySetupPath, "attach", c.Name, c.Device, hash.Path, root).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s attach %s: %v: %s", layout.VeritySetupPath, c.Name, err, strings.TrimSpace(string(out)))
	}
	n.log.set(fieldDevice, dev)
	n.logf("opened %s over %s (hash tree at %d, through %s): %d data blocks checked against root hash %s%s",
		dev, c.Device, v.HashOffset, hash.Path, v.DataBlocks, root, signedBy(signer))
	return nil
}

// verityRoot is the root hash to open the device with: the pinned one;
// with Signed, the one in the image's trailer once its signature checks
// out against the node's trust store (and equals the pinned one, when
// one is pinned too). The kernel is not given the signature
// (systemd-veritysetup's root-hash-signature=): it checks one only against
// its built-in and secondary keyrings, which hold no key of a site's
// unless the kernel is rebuilt; so the check is here, before anything is
// opened, and the kernel checks every block against the root hash.
func (n *node) verityRoot(c contract.VerityOpen) (string, *verity.SignerInfo, error) {
	if !c.Signed {
		return c.RootHash, nil, nil
	}
	trust, err := verity.LoadTrust(n.at(layout.TrustDir))
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", c.Device, err)
	}
	f, v, err := verity.Open(c.Device)
	if err != nil {
		return "", nil, err
	}
	f.Close()
	root := v.RootHashHex()
	if c.RootHash != "" && c.RootHash != root {
		return "", nil, fmt.Errorf("%s: the image's root hash %s is not the pinned root hash %s: another image", c.Device, root, c.RootHash)
	}
	if len(v.Signature) == 0 {
		return "", nil, fmt.Errorf("%s: %w", c.Device, verity.ErrUnsigned)
	}
	signer, err := trust.Verify(v.Signature, root, time.Now())
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", c.Device, err)
	}
	return root, signer, nil
}

// signedBy says who signed, for the log ("" when nothing was checked).
func signedBy(s *verity.SignerInfo) string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf(", signed by %q (sha256 fingerprint %s)", s.Subject, s.SHA256)
}

// checkVerity reads the trailer of the image at device and checks the top
// of its hash tree against the pinned root hash.
func checkVerity(device, rootHash string) (*verity.Params, error) {
	root, err := hex.DecodeString(rootHash)
	if err != nil {
		return nil, fmt.Errorf("root hash %q is not hex", rootHash)
	}
	f, v, err := verity.Open(device)
	if err != nil {
		return nil, err
	}
	defer f.Close()
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
