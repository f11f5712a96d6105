package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/iscsi"
	"github.com/strata-project/strata/helpers/secret"
	"github.com/strata-project/strata/internal/layout"
)

func (n *node) iscsiManager() *iscsi.Manager {
	return &iscsi.Manager{
		SysfsRoot:  n.at("/sys"),
		DevRoot:    n.at("/dev"),
		ConfigRoot: n.at("/etc/iscsi"),
		LockDir:    n.at("/run/lock/iscsi"),
		StateDir:   n.at(layout.ISCSIDir),
		Logf:       n.log.infof,
	}
}

func iscsiTarget(c contract.ISCSILogin) iscsi.Target {
	return iscsi.Target{
		Host: c.Host, Port: c.Port, Target: c.Target, LUN: c.LUN,
		Initiator: c.Initiator, MaxCommands: c.MaxCommands, QueueDepth: c.QueueDepth,
		Scheduler: c.Scheduler, CHAPUser: c.CHAPUser, Holder: c.Link,
	}
}

func iscsiLogoutTarget(c contract.ISCSILogout) iscsi.Target {
	return iscsi.Target{Host: c.Host, Port: c.Port, Target: c.Target, LUN: c.LUN, Holder: c.Link}
}

// iscsiLogin logs in to the LUN's target (or reuses its session) and tunes
// the LUN's queue.
func (n *node) iscsiLogin(ctx context.Context, c contract.ISCSILogin) error {
	t := iscsiTarget(c)
	password, err := chapPassword(c)
	if err != nil {
		return fmt.Errorf("iscsi %s: %w", t, err)
	}
	n.log.redact(password)
	dev, err := n.iscsiManager().Login(ctx, t, password)
	if err != nil {
		return err // names the LUN, the step, iscsiadm's code and what to check; never the password
	}
	n.log.set(fieldDevice, dev.Path)
	how := "logged in"
	if dev.Reused {
		how = fmt.Sprintf("reused session %d", dev.Session)
	}
	n.logf("%s: %s is %s (%s)", how, t, dev.Path, or(dev.ByPath, "udev made no by-path link"))
	// The layer's mount unit mounts the link, whatever udev named the LUN.
	return replaceLink(dev.Path, n.at(c.Link))
}

func (n *node) iscsiLogout(ctx context.Context, c contract.ISCSILogout) error {
	if err := os.Remove(n.at(c.Link)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return n.iscsiManager().Logout(ctx, iscsiLogoutTarget(c))
}

// chapPassword reads the CHAP password from the unit's secret source.
func chapPassword(c contract.ISCSILogin) (string, error) {
	if c.CHAPUser == "" {
		if c.CHAPSecret != (contract.Secret{}) {
			return "", errors.New("a CHAP password source is given without --chap-user: the unit is malformed; run 'systemctl daemon-reload'")
		}
		return "", nil
	}
	pw, err := secret.Read(c.CHAPSecret, c.CHAPUser)
	if errors.Is(err, secret.ErrNone) {
		return "", fmt.Errorf("CHAP user %q has no password source (--secret-file/--secret-field, --keyring or --credential): give the definition's chap a password or credential", c.CHAPUser)
	}
	if err != nil {
		return "", fmt.Errorf("CHAP password: %w", err)
	}
	return pw, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
