package main

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/internal/layout"
)

// When an attachment fails, systemd fails the containers waiting for it
// with only "Dependency failed for ..." in their status; the reason is in
// the attach unit's. The helper logs its failure for each of those
// containers too, so that `systemctl status systemd-nspawn@NAME` says why.

// attaches reports whether cmd attaches a device (what containers wait for).
func attaches(cmd contract.Command) bool {
	switch cmd.(type) {
	case contract.RBDMap, contract.ISCSILogin, contract.LoopAttach, contract.LocalWait, contract.VerityOpen:
		return true
	}
	return false
}

// containersNeeding lists the container units that need unit, directly or
// through their layer and root mounts (systemd's reverse dependencies).
// Best effort, and bounded (the failure is logged once it returns, so a
// hung systemctl delays the line by 10 s at most and never loses it).
func containersNeeding(unit string) []string {
	if unit == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", "list-dependencies", "--reverse", "--all", "--plain", "--no-legend", "--", unit).Output()
	if err != nil {
		return nil
	}
	return containerUnits(string(out))
}

// containerUnits picks the container units out of systemctl
// list-dependencies' output, once each, sorted.
func containerUnits(out string) []string {
	var units []string
	for _, f := range strings.Fields(out) {
		if isContainer(f) && !slices.Contains(units, f) {
			units = append(units, f)
		}
	}
	slices.Sort(units)
	return units
}

func isContainer(unit string) bool {
	_, ok := layout.Instance(unit, layout.ContainerPrefix)
	return ok
}
