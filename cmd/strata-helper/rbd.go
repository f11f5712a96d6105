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

const (
	sysfs = "/sys"
	devfs = "/dev"
	// stableLinkTimeout bounds the wait for udev's /dev/rbd/... link.
	stableLinkTimeout = 30 * time.Second
)

func rbdSpec(r contract.RBD, monitors []string, user string, options []string) krbd.Spec {
	return krbd.Spec{Monitors: monitors, User: user, Pool: r.Pool, Namespace: r.Namespace, Image: r.Image, Snapshot: r.Snapshot, Options: options}
}

// rbdMap maps the image through the kernel (or finds its mapping) and waits
// for the stable /dev/rbd/... link that the layer's mount unit names.
func rbdMap(ctx context.Context, c contract.RBDMap) error {
	spec := rbdSpec(c.RBD, c.Monitors, c.User, c.Options)
	key, err := rbdKey(c)
	if err != nil {
		return fmt.Errorf("rbd %s: %w", spec, err)
	}
	dev, err := krbd.Map(ctx, sysfs, devfs, spec, key)
	if err != nil {
		return err // krbd's errors name the image, what failed and what to check; never the key
	}
	verb := "mapped"
	if dev.Reused {
		verb = "reused"
	}
	logf("%s rbd %s as %s", verb, spec, dev.Path)
	link := krbd.StablePath(spec)
	if err := waitFor(link, stableLinkTimeout); err != nil {
		return fmt.Errorf("rbd %s is mapped as %s, but udev made no %s within %s: install the udev rule (Ceph's 50-rbd.rules or Strata's 50-strata-rbd.rules) and check systemd-udevd", spec, dev.Path, link, stableLinkTimeout)
	}
	return nil
}

// rbdKey reads the cephx key from where the unit says it is, or from the
// default keyring of the user when it exists (as the rbd tool does).
func rbdKey(c contract.RBDMap) (string, error) {
	key, err := secret.Read(c.Secret, c.User)
	if !errors.Is(err, secret.ErrNone) {
		return key, err
	}
	def := "/etc/ceph/ceph.client." + c.User + ".keyring"
	if _, err := os.Stat(def); err == nil {
		return secret.FromKeyring(def, c.User)
	}
	return "", nil // no key: a cluster without cephx
}

func rbdUnmap(c contract.RBDUnmap) error {
	spec := rbdSpec(c.RBD, nil, "", nil)
	if err := krbd.UnmapSpec(sysfs, spec, c.Force); err != nil {
		return err
	}
	logf("unmapped rbd %s", spec)
	return nil
}

// rbdNamer prints the /dev/rbd/ link name of a device for udev (the
// 50-strata-rbd.rules PROGRAM), as Ceph's ceph-rbdnamer does.
func rbdNamer(devname string) error {
	name, err := krbd.Namer(sysfs, devname)
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
