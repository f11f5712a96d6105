package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/strata-project/strata/helpers/contract"
)

// Shaped like systemctl list-dependencies --reverse --all --plain
// --no-legend of an attach unit that two containers use: one unit a line,
// indented by depth, some with a state mark, a container reached twice.
// (The VM suite's TestBootActivation runs the real command.)
const reverseDeps = `strata-attach@rbd_image1_0a0c859d1e.service
  run-strata-layers-rbd_image1_0a0c859d1e.mount
  ● run-strata-upper-b.mount
    strata-upper-b.service
      var-lib-machines-b.mount
        systemd-nspawn@b.service
          machines.target
            multi-user.target
              graphical.target
  run-strata-upper-a.mount
    strata-upper-a.service
      var-lib-machines-a.mount
        systemd-nspawn@a.service
          machines.target
  systemd-nspawn@a.service
`

func TestContainerUnits(t *testing.T) {
	got := containerUnits(reverseDeps)
	if want := []string{"systemd-nspawn@a.service", "systemd-nspawn@b.service"}; !slices.Equal(got, want) {
		t.Errorf("containerUnits = %q, want %q", got, want)
	}
	if got := containerUnits(""); got != nil {
		t.Errorf("no dependencies: %q", got)
	}
}

func TestAttaches(t *testing.T) {
	for _, c := range []contract.Command{contract.RBDMap{}, contract.ISCSILogin{}, contract.LoopAttach{}, contract.LocalWait{}} {
		if !attaches(c) {
			t.Errorf("%T does not attach", c)
		}
	}
	for _, c := range []contract.Command{contract.RBDUnmap{}, contract.OverlayPrepare{}, contract.Release{}, contract.GC{}, contract.Fail{}} {
		if attaches(c) {
			t.Errorf("%T attaches", c)
		}
	}
}

// The failure is logged once, as the attach unit's and each waiting
// container's (one entry: a copy per container would show twice in the
// attach unit's journal), with no secret.
func TestFailureForContainers(t *testing.T) {
	var got []entry
	l := journalLogger(&got)
	n := &node{log: l}
	l.set(fieldUnit, "strata-attach@rbd_image1_0a0c859d1e.service")
	n.describe(contract.RBDMap{RBD: contract.RBD{Pool: "rbd", Image: "image1"}})
	secret := "AQBZ0ktmAAAAABAA2bqZ0uJ6ETm2r3Cqsu9YzQ=="
	l.redact(secret)
	err := errors.New("no answer from the monitors 10.99.0.9:6789 within mount_timeout=60 (the default) seconds, key " + secret)
	l.failure(err, "systemd-nspawn@a.service", "systemd-nspawn@b.service")

	if len(got) != 1 {
		t.Fatalf("entries %+v, want one", got)
	}
	e := got[0]
	if want := []string{"strata-attach@rbd_image1_0a0c859d1e.service", "systemd-nspawn@a.service", "systemd-nspawn@b.service"}; !slices.Equal(e.units, want) || e.prio != journal.PriErr {
		t.Errorf("OBJECT_SYSTEMD_UNIT %q priority %d, want %q and an error", e.units, e.prio, want)
	}
	if e.vars["STRATA_UNIT"] != "strata-attach@rbd_image1_0a0c859d1e.service" {
		t.Errorf("STRATA_UNIT %q", e.vars["STRATA_UNIT"])
	}
	if strings.Contains(e.msg, secret) || !strings.Contains(e.msg, "no answer from the monitors") {
		t.Errorf("failure %q", e.msg)
	}

	// Without the journal (stderr), the failure is there once.
	var plain []entry
	l2 := journalLogger(&plain)
	l2.journal = false
	var buf bytes.Buffer
	l2.w = &buf
	l2.failure(err, "systemd-nspawn@a.service")
	if len(plain) != 0 || strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("stderr mode sent %+v, wrote %q", plain, buf.String())
	}
}
