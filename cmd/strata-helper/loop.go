package main

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/loopdev"
)

// loopAttach attaches the file (or reuses its existing attachment with the
// same flags) and points the link at the device: the link is the stable
// name the layer's mount unit uses. The link's name is also stored as the
// device's reference, so detach finds the device even if the link is gone.
func (n *node) loopAttach(c contract.LoopAttach) error {
	ref := filepath.Base(c.Link)
	dev, err := loopdev.AttachOrReuse(c.File, loopdev.Options{ReadOnly: c.ReadOnly, Partscan: c.Partscan, Ref: ref})
	var ae *loopdev.AttachError
	if errors.As(err, &ae) {
		// The failure line names the file already, as the layer.
		return errors.New(ae.Reason())
	} else if err != nil {
		return err
	}
	if err := replaceLink(dev.Path, c.Link); err != nil {
		dev.Detach()
		return err
	}
	verb := "attached"
	if dev.Reused {
		verb = "reused"
	}
	n.log.set(fieldDevice, dev.Path)
	mode := "read-only"
	if !dev.ReadOnly {
		mode = "writable"
	}
	n.logf("%s %s: %s, %s", verb, c.File, dev.Path, mode)
	return nil
}

// loopDetach detaches the device attached under the link's reference and
// removes the link. A device that is still mounted here is left alone, with
// an error that says where it is mounted. One busy only elsewhere (no mount
// in this namespace, no holder: a stopped container's mount namespace that
// the kernel is still tearing down, which can take seconds on a loaded
// node) is detached lazily: the kernel lets go of it on its last close,
// and autoclear keeps it from being reused meanwhile.
func (n *node) loopDetach(c contract.LoopDetach) error {
	devs, err := loopdev.FindRef(filepath.Base(c.Link))
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range devs {
		err := d.Detach()
		var busy *loopdev.BusyError
		switch {
		case errors.As(err, &busy) && !busy.Deferred && len(busy.Mounts) == 0 && len(busy.Holders) == 0:
			if err := loopdev.DetachLazy(d.Path); err != nil && !errors.Is(err, loopdev.ErrNotAttached) {
				errs = append(errs, err)
				continue
			}
			n.logf("detaching %s (%s) once its last user elsewhere lets go", d.Path, d.BackingFile)
		case err != nil && !errors.Is(err, loopdev.ErrNotAttached):
			errs = append(errs, err)
		default:
			n.logf("detached %s (%s)", d.Path, d.BackingFile)
		}
	}
	if err := os.Remove(c.Link); err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// replaceLink points link at target atomically (rename over the old one).
func replaceLink(target, link string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}
