package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/krbd"
	"github.com/strata-project/strata/helpers/secret"
)

// stableLinkTimeout bounds the wait for udev's /dev/rbd/... link.
const stableLinkTimeout = 30 * time.Second

func rbdSpec(r contract.RBD, monitors []string, user string, options []string) krbd.Spec {
	return krbd.Spec{Monitors: monitors, User: user, Pool: r.Pool, Namespace: r.Namespace, Image: r.Image, Snapshot: r.Snapshot, Options: options}
}

func (n *node) mapper() *krbd.Mapper {
	return &krbd.Mapper{Logf: n.log.infof}
}

// rbdMap maps the image through the kernel (or finds its mapping) and waits
// for the stable /dev/rbd/... link that the layer's mount unit names.
func (n *node) rbdMap(ctx context.Context, c contract.RBDMap) error {
	spec := rbdSpec(c.RBD, c.Monitors, c.User, c.Options)
	key, err := n.rbdKey(c)
	if err != nil {
		return fmt.Errorf("rbd %s: %w", spec, err)
	}
	n.log.redact(key)
	dev, err := n.mapper().Map(ctx, n.at("/sys"), n.at("/dev"), spec, key)
	if err != nil {
		return err // krbd's errors name the image, what failed and what to check; never the key
	}
	n.log.set(fieldDevice, dev.Path)
	verb := "mapped"
	if dev.Reused {
		verb = "reused"
	}
	n.logf("%s rbd %s as %s", verb, spec, dev.Path)
	link := n.at(krbd.StablePath(spec))
	if err := waitFor(link, stableLinkTimeout); err != nil {
		return fmt.Errorf("rbd %s is mapped as %s, but udev made no %s within %s: install the udev rule (Ceph's 50-rbd.rules or Strata's 50-strata-rbd.rules) and check systemd-udevd", spec, dev.Path, link, stableLinkTimeout)
	}
	return nil
}

// rbdKey reads the cephx key from where the unit says it is, or from the
// default keyring of the user when it exists (as the rbd tool does).
func (n *node) rbdKey(c contract.RBDMap) (string, error) {
	key, err := secret.Read(c.Secret, c.User)
	if !errors.Is(err, secret.ErrNone) {
		return key, err
	}
	def := n.at("/etc/ceph/ceph.client." + c.User + ".keyring")
	if _, err := os.Stat(def); err == nil {
		return secret.FromKeyring(def, c.User)
	}
	return "", nil // no key: a cluster without cephx
}

func (n *node) rbdUnmap(c contract.RBDUnmap) error {
	spec := rbdSpec(c.RBD, nil, "", nil)
	if err := n.mapper().UnmapSpec(n.at("/sys"), spec, c.Force); err != nil {
		return err
	}
	n.logf("unmapped rbd %s", spec)
	return nil
}

// rbdNamer prints the /dev/rbd/ link name of a device for udev (the
// 50-strata-rbd.rules PROGRAM), as Ceph's ceph-rbdnamer does.
func (n *node) rbdNamer(devname string) error {
	name, err := krbd.Namer(n.at("/sys"), devname)
	if err != nil {
		return err
	}
	fmt.Print(name)
	return nil
}

func waitFor(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return os.ErrNotExist
		}
		time.Sleep(50 * time.Millisecond)
	}
}
