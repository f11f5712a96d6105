package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/gc"
	"github.com/strata-project/strata/helpers/state"
	"github.com/strata-project/strata/internal/flock"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/internal/mountinfo"
)

func (n *node) state() state.Store { return state.Store{Dir: n.at(layout.StateDir)} }

// record notes how to release what an attach command attached, under its
// attachment ID, so that strata-attach@ID.service's ExecStop= (and the
// collector) can let go without the definition. device is the path the
// layer mounts (a link or udev's name); the record keeps the real node.
func (n *node) record(cmd contract.Command, id, device, file string) error {
	if id == "" {
		return nil // a unit from before attachments were recorded
	}
	rel := contract.Argv(contract.ReleaseOf(cmd))[1:]
	if real, err := filepath.EvalSymlinks(device); err == nil {
		device = real
	}
	return n.state().PutAttachment(state.Attachment{ID: id, Release: rel, Device: device, File: file})
}

// release runs the release command recorded for an attachment, then
// forgets it. Nothing recorded means nothing attached: success.
func (n *node) release(ctx context.Context, c contract.Release) error {
	a, ok, err := n.state().Attachment(c.Attachment)
	if err != nil {
		return err
	}
	if !ok {
		n.logf("nothing recorded for attachment %s: nothing to release", c.Attachment)
		return nil
	}
	// systemd stops an attach unit whose definition changed as soon as
	// nothing pins it, which may be while its old layer is still mounted
	// under a running container. Then the device stays, recorded, and the
	// collector releases it once the layer is gone.
	if m, busy := n.mountedFrom(a.Device); busy {
		n.logf("attachment %s (%s) is still mounted at %s: left for the clean-up after its container stops", a.ID, a.Device, m)
		return nil
	}
	if err := n.releaseRecorded(ctx, a); err != nil {
		return err
	}
	return n.state().RemoveAttachment(a.ID)
}

func (n *node) releaseRecorded(ctx context.Context, a state.Attachment) error {
	cmd, err := contract.Parse(a.Release)
	if err != nil {
		return fmt.Errorf("the record of attachment %s is unreadable (%v): release it by hand", a.ID, err)
	}
	switch cmd.(type) {
	case contract.RBDUnmap, contract.ISCSILogout, contract.LoopDetach, contract.VerityClose:
	default:
		return fmt.Errorf("the record of attachment %s holds %q, not a release command", a.ID, a.Release[0])
	}
	n.describe(cmd)
	return n.run(ctx, cmd)
}

// mountedFrom returns where device is mounted, if anywhere.
func (n *node) mountedFrom(device string) (string, bool) {
	if device == "" {
		return "", false
	}
	ms, err := mountinfo.Read(n.at(mountinfo.Path))
	if err != nil {
		return "", false
	}
	for _, m := range ms {
		if m.Source == device {
			return m.Point, true
		}
	}
	return "", false
}

// started records that a container started, and from which units.
func (n *node) started(c contract.Started) error {
	return n.state().PutContainer(state.Container{Name: c.Container, Generation: c.Generation})
}

// gcLockTimeout bounds the wait for another collection to finish.
const gcLockTimeout = 2 * time.Minute

// collect releases what no unit file describes and nothing uses. One
// collection at a time: two would race for the same mounts.
func (n *node) collect(ctx context.Context, c contract.GC) error {
	lock := n.at(layout.GCLock)
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close() // unlocks
	lctx, cancel := context.WithTimeout(ctx, gcLockTimeout)
	defer cancel()
	if err := flock.Exclusive(lctx, int(f.Fd())); err != nil {
		return fmt.Errorf("another clean-up holds %s: %w", lock, err)
	}
	var dirs []string
	for _, d := range gc.GeneratorDirs {
		dirs = append(dirs, n.at(d))
	}
	g := &gc.Node{
		Mountinfo:     n.at(mountinfo.Path),
		GeneratorDirs: dirs,
		State:         n.state(),
		CDIDir:        n.at(layout.CDIDir),
		ControlDir:    n.at(layout.ControlDir),
		Systemd:       gc.Systemctl{},
		Unmount:       func(p string) error { return unix.Unmount(p, 0) },
		Release:       func(a state.Attachment) error { return n.releaseRecorded(ctx, a) },
		Logf:          n.logf,
	}
	actions, err := g.Collect(gc.Options{Container: c.Container, DryRun: c.DryRun})
	if c.JSON {
		if werr := gc.WriteReport(os.Stdout, c.DryRun, actions); werr != nil {
			return errors.Join(err, werr)
		}
	}
	for _, a := range actions {
		if c.DryRun && !c.JSON {
			fmt.Printf("would release %s\n", a)
		}
	}
	if len(actions) == 0 {
		n.logf("nothing to release")
	}
	return err
}
