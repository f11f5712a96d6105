package main

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/strata-project/strata/helpers/contract"
)

type entry struct {
	msg   string
	prio  journal.Priority
	vars  map[string]string // OBJECT_SYSTEMD_UNIT: the first of units
	units []string
}

func journalLogger(entries *[]entry) *logger {
	l := newLogger(new(bytes.Buffer), true)
	l.send = func(msg string, p journal.Priority, vars map[string]string, units []string) error {
		vars = maps.Clone(vars)
		if len(units) > 0 {
			vars["OBJECT_SYSTEMD_UNIT"] = units[0]
		}
		*entries = append(*entries, entry{msg, p, vars, units})
		return nil
	}
	return l
}

func TestJournalEntries(t *testing.T) {
	var got []entry
	l := journalLogger(&got)
	n := &node{log: l}
	l.set(fieldUnit, "strata-attach@iscsi_lun0_33760b18b4.service")
	l.set(fieldDefinition, "/etc/strata/iscsi.json")
	c := contract.ISCSILogin{ISCSI: contract.ISCSI{Host: "10.0.0.5", Port: 3260, Target: "iqn.2003-01.org.linux-iscsi.server:images", LUN: 0}, Initiator: "iqn.2024-01.org.example:node1", CHAPUser: "node1"}
	n.describe(c)
	secret := "Sup3rS3cretChapPassw0rd"
	l.redact(secret)
	l.infof("logged in")
	l.set(fieldDevice, "/dev/sdb")
	l.failure(errors.New("iscsi login: CHAP authentication failed for " + secret + ": check the CHAP user and password"))

	if len(got) != 2 {
		t.Fatalf("entries %+v", got)
	}
	want := map[string]string{
		"SYSLOG_IDENTIFIER":   "strata-helper",
		"STRATA_VERB":         "iscsi-login",
		"STRATA_UNIT":         "strata-attach@iscsi_lun0_33760b18b4.service",
		"OBJECT_SYSTEMD_UNIT": "strata-attach@iscsi_lun0_33760b18b4.service",
		"STRATA_DEFINITION":   "/etc/strata/iscsi.json",
		"STRATA_LAYER":        "iSCSI LUN 0 of iqn.2003-01.org.linux-iscsi.server:images at 10.0.0.5:3260",
		"STRATA_IMAGE":        "iqn.2003-01.org.linux-iscsi.server:images lun 0",
	}
	for k, v := range want {
		if got[0].vars[k] != v {
			t.Errorf("%s = %q, want %q", k, got[0].vars[k], v)
		}
	}
	if _, ok := got[0].vars["STRATA_DEVICE"]; ok || got[1].vars["STRATA_DEVICE"] != "/dev/sdb" {
		t.Errorf("STRATA_DEVICE: %q then %q", got[0].vars["STRATA_DEVICE"], got[1].vars["STRATA_DEVICE"])
	}
	if got[0].prio != journal.PriInfo || got[1].prio != journal.PriErr {
		t.Errorf("priorities %d %d", got[0].prio, got[1].prio)
	}
	f := got[1].msg
	for _, w := range []string{
		"iscsi-login failed for iSCSI LUN 0 of iqn.2003-01.org.linux-iscsi.server:images at 10.0.0.5:3260",
		"(definition /etc/strata/iscsi.json, unit strata-attach@iscsi_lun0_33760b18b4.service)",
		"CHAP authentication failed for [redacted]: check the CHAP user and password",
	} {
		if !strings.Contains(f, w) {
			t.Errorf("failure %q lacks %q", f, w)
		}
	}
	for _, e := range got {
		if strings.Contains(e.msg, secret) {
			t.Errorf("secret in %q", e.msg)
		}
		for k, v := range e.vars {
			if strings.Contains(v, secret) {
				t.Errorf("secret in %s", k)
			}
		}
	}
}

func TestJournalFallsBackToStderr(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(&buf, true)
	l.send = func(string, journal.Priority, map[string]string, []string) error { return errors.New("gone") }
	l.infof("hello")
	if buf.String() != "strata-helper: hello\n" {
		t.Errorf("%q", buf.String())
	}
}

func TestStderrLines(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(&buf, false)
	n := &node{log: l}
	n.describe(contract.RBDMap{RBD: contract.RBD{Pool: "rbd", Image: "image1"}})
	l.infof("mapped rbd rbd/image1 as /dev/rbd0")
	l.failure(errors.New("map rbd/image1: permission denied: check the cephx key"))
	want := "strata-helper: mapped rbd rbd/image1 as /dev/rbd0\n" +
		"strata-helper: rbd-map failed for rbd image rbd/image1: map rbd/image1: permission denied: check the cephx key\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestUnitOf(t *testing.T) {
	for _, tc := range []struct{ cgroup, want string }{
		{"0::/system.slice/strata-attach@rbd_image1_0123456789.service\n", "strata-attach@rbd_image1_0123456789.service"},
		{"0::/system.slice/system-systemd\\x2dnspawn.slice/systemd-nspawn@test.service\n", "systemd-nspawn@test.service"},
		{"12:pids:/system.slice/x.service\n1:name=systemd:/system.slice/strata-upper-test.service\n0::/\n", "strata-upper-test.service"},
		{"0::/user.slice/user-0.slice/session-3.scope\n", "session-3.scope"},
		{"0::/\n", ""},
		{"0::/init\n", ""},
	} {
		proc := t.TempDir()
		os.MkdirAll(filepath.Join(proc, "self"), 0o755)
		os.WriteFile(filepath.Join(proc, "self", "cgroup"), []byte(tc.cgroup), 0o644)
		if got := unitOf(proc); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.cgroup, got, tc.want)
		}
	}
	if got := unitOf(t.TempDir()); got != "" {
		t.Errorf("no cgroup file: %q", got)
	}
}

func TestDefinitionOf(t *testing.T) {
	root := t.TempDir()
	gen := filepath.Join(root, "run", "systemd", "generator")
	os.MkdirAll(filepath.Join(gen, "systemd-nspawn@test.service.d"), 0o755)
	os.WriteFile(filepath.Join(gen, "strata-attach@rbd_image1_0123456789.service"), []byte("# Automatically generated by strata-generator from /etc/strata/test.json.\n\n[Unit]\nSourcePath=/etc/strata/test.json\n"), 0o644)
	os.WriteFile(filepath.Join(gen, "systemd-nspawn@test.service.d", "50-strata.conf"), []byte("[Unit]\nSourcePath=/etc/strata/test.yaml\n"), 0o644)
	if got := definitionOf(root, "strata-attach@rbd_image1_0123456789.service"); got != "/etc/strata/test.json" {
		t.Errorf("attach unit: %q", got)
	}
	if got := definitionOf(root, "systemd-nspawn@test.service"); got != "/etc/strata/test.yaml" {
		t.Errorf("drop-in: %q", got)
	}
	if got := definitionOf(root, "other.service"); got != "" {
		t.Errorf("other: %q", got)
	}
	if got := definitionOf(root, "../x"); got != "" {
		t.Errorf("path: %q", got)
	}
}

// The native protocol: NAME=value lines, the binary form for a value with
// a newline, and OBJECT_SYSTEMD_UNIT repeated, once per unit.
func TestJournalDatagram(t *testing.T) {
	got := string(journalDatagram("attach failed", journal.PriErr, map[string]string{"STRATA_VERB": "loop-attach", "STRATA_LAYER": "a\nb"},
		[]string{"strata-attach@x.service", "systemd-nspawn@a.service"}))
	want := "MESSAGE=attach failed\nPRIORITY=3\nSTRATA_LAYER\n\x03\x00\x00\x00\x00\x00\x00\x00a\nb\nSTRATA_VERB=loop-attach\n" +
		"OBJECT_SYSTEMD_UNIT=strata-attach@x.service\nOBJECT_SYSTEMD_UNIT=systemd-nspawn@a.service\n"
	if got != want {
		t.Errorf("datagram\n%q\nwant\n%q", got, want)
	}
}
