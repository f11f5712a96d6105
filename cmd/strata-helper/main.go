// Command strata-helper does the node-side work that Strata's generated
// units call it for: attach devices, prepare overlay layers, report broken
// definitions. Its command lines are defined in helpers/contract. It is
// static and cgo-free: it runs on diskless nodes at boot, without Ceph's
// libraries or tools.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/krbd"
	"github.com/strata-project/strata/helpers/overlay"
	"github.com/strata-project/strata/internal/layout"
)

// testRootEnv is for tests only: when set, the helper finds /sys, /dev,
// /etc/ceph, /etc/iscsi, /run (its state, iscsiadm's lock, the generator's
// units) and /proc/self/cgroup under this directory instead, so that a test
// can run the real binary against a fake kernel. Loop devices and the
// paths given on the command line are not moved. Nothing sets it in
// production; units never do.
const testRootEnv = "STRATA_HELPER_TEST_ROOT"

// node is where the helper finds the system it works on.
type node struct {
	root string // "" in production; see testRootEnv
	log  *logger
}

// at returns the system path p (absolute) on this node.
func (n *node) at(p string) string {
	if n.root == "" {
		return p
	}
	return filepath.Join(n.root, p)
}

func main() {
	n := &node{root: os.Getenv(testRootEnv)}
	n.log = newLogger(os.Stderr, underJournal())
	unit := unitOf(n.at("/proc"))
	n.log.set(fieldUnit, unit)
	n.log.set(fieldDefinition, definitionOf(n.root, unit))

	// udev's rule calls "rbd-namer rbdN"; it is udev's contract, not a unit's.
	if len(os.Args) == 3 && os.Args[1] == "rbd-namer" {
		if err := n.rbdNamer(os.Args[2]); err != nil {
			n.log.set(fieldVerb, "rbd-namer")
			n.log.failure(err)
			os.Exit(1)
		}
		return
	}
	cmd, err := contract.Parse(os.Args[1:])
	if err != nil {
		n.log.failure(fmt.Errorf("malformed command line: %v: the unit and this helper disagree; reinstall Strata and run 'systemctl daemon-reload'", err))
		os.Exit(2)
	}
	n.describe(cmd)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := n.run(ctx, cmd); err != nil {
		var waiting []string
		if attaches(cmd) && n.root == "" {
			waiting = containersNeeding(unit)
		}
		n.log.failure(err, waiting...)
		stop()
		os.Exit(1)
	}
}

// logf logs progress.
func (n *node) logf(format string, args ...any) { n.log.infof(format, args...) }

// describe sets the log fields that say what cmd works on.
func (n *node) describe(cmd contract.Command) {
	l := n.log
	l.set(fieldVerb, contract.Argv(cmd)[1])
	switch c := cmd.(type) {
	case contract.RBDMap:
		s := rbdSpec(c.RBD, nil, "", nil).String()
		l.set(fieldLayer, "rbd image "+s)
		l.set(fieldImage, s)
		if c.Secret.DefinitionFile != "" && l.get(fieldDefinition) == "" {
			l.set(fieldDefinition, c.Secret.DefinitionFile)
		}
	case contract.RBDUnmap:
		s := rbdSpec(c.RBD, nil, "", nil).String()
		l.set(fieldLayer, "rbd image "+s)
		l.set(fieldImage, s)
	case contract.ISCSILogin:
		l.set(fieldLayer, "iSCSI "+iscsiTarget(c).String())
		l.set(fieldImage, c.Target+" lun "+strconv.Itoa(c.LUN))
		if c.CHAPSecret.DefinitionFile != "" && l.get(fieldDefinition) == "" {
			l.set(fieldDefinition, c.CHAPSecret.DefinitionFile)
		}
	case contract.ISCSILogout:
		l.set(fieldLayer, "iSCSI "+iscsiLogoutTarget(c).String())
		l.set(fieldImage, c.Target+" lun "+strconv.Itoa(c.LUN))
	case contract.LoopAttach:
		l.set(fieldLayer, "loop file "+c.File)
		l.set(fieldImage, c.File)
	case contract.LoopDetach:
		l.set(fieldLayer, "loop device "+c.Link)
	case contract.LocalWait:
		l.set(fieldLayer, "local device "+c.Device)
		l.set(fieldDevice, c.Device)
	case contract.VerityOpen:
		l.set(fieldLayer, "verity device "+c.Name+" over "+c.Device)
		l.set(fieldImage, c.Device)
	case contract.VerityClose:
		l.set(fieldLayer, "verity device "+c.Name)
	case contract.OverlayPrepare:
		l.set(fieldLayer, "overlay upper layer "+c.Dir)
		l.set(fieldImage, c.Dir)
	case contract.Fail:
		l.set(fieldLayer, "the container's definition")
	case contract.Release:
		l.set(fieldLayer, "attachment "+c.Attachment)
	case contract.GC:
		l.set(fieldLayer, "what no container needs")
	case contract.Started:
		l.set(fieldLayer, "container "+c.Container)
	case contract.Health:
		l.set(fieldLayer, "container "+c.Container)
	case contract.CDI:
		l.set(fieldLayer, "container "+c.Container)
	}
}

func (n *node) run(ctx context.Context, cmd contract.Command) error {
	switch c := cmd.(type) {
	case contract.Fail:
		for _, m := range c.Messages {
			n.log.warnf("%s", m)
		}
		return fmt.Errorf("its definition has errors (above); fix them and run 'strata reload' (or 'systemctl daemon-reload')")
	case contract.OverlayPrepare:
		if err := overlay.Prepare(c.Dir); err != nil {
			return err
		}
		n.logf("prepared %s/upper and %s/work", c.Dir, c.Dir)
		return nil
	case contract.LoopAttach:
		if err := n.loopAttach(c); err != nil {
			return err
		}
		return n.record(c, c.Attachment, n.at(c.Link), c.File)
	case contract.LoopDetach:
		return n.loopDetach(c)
	case contract.RBDMap:
		if err := n.rbdMap(ctx, c); err != nil {
			return err
		}
		return n.record(c, c.Attachment, n.at(krbd.StablePath(rbdSpec(c.RBD, nil, "", nil))), "")
	case contract.RBDUnmap:
		return n.rbdUnmap(c)
	case contract.ISCSILogin:
		if err := n.iscsiLogin(ctx, c); err != nil {
			return err
		}
		return n.record(c, c.Attachment, n.at(c.Link), "")
	case contract.Release:
		return n.release(ctx, c)
	case contract.GC:
		return n.collect(ctx, c)
	case contract.Started:
		return n.started(c)
	case contract.Health:
		return n.health(ctx, c)
	case contract.CDI:
		return n.cdiResolve(ctx, c)
	case contract.ISCSILogout:
		return n.iscsiLogout(ctx, c)
	case contract.LocalWait:
		return waitBlockDevice(c.Device, localTimeout)
	case contract.VerityOpen:
		if err := n.verityOpen(ctx, c); err != nil {
			return err
		}
		return n.record(c, c.Attachment, layout.VerityDevicePath(c.Name), "")
	case contract.VerityClose:
		return n.verityClose(ctx, c)
	}
	return fmt.Errorf("%T is not implemented on this node yet", cmd)
}
