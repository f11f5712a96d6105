package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-project/strata/helpers/contract"
)

// Two attach units for one LUN (a host name in one definition, its address
// in another) through the real helper binary: each --link holds its own
// reference, so the first logout keeps the session and the last one ends it.
func TestISCSITwoUnitsOneLUN(t *testing.T) {
	needRoot(t)
	const target = "iqn.2003-01.org.linux-iscsi.server:images"
	root, fakeLog := t.TempDir(), t.TempDir()
	script, err := os.ReadFile(filepath.Join("..", "..", "helpers", "iscsi", "testdata", "iscsiadm"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "fakebin"), 0o755)
	os.WriteFile(filepath.Join(root, "fakebin", "iscsiadm"), script, 0o755)
	os.MkdirAll(filepath.Join(root, "fake"), 0o755)
	os.WriteFile(filepath.Join(root, "fake", "targets"), []byte("10.0.0.5:3260,1 "+target+"\n"), 0o644)
	fakeUnit(t, root, "strata-attach@iscsi_lun0_a.service", "/etc/strata/a.json")
	env := helperEnv(root, fakeLog, nil)

	units := []contract.ISCSI{
		{Host: "10.0.0.5", Port: 3260, Target: target, LUN: 0},
		{Host: "[::ffff:10.0.0.5]", Port: 3260, Target: target, LUN: 0},
	}
	links := []string{"/run/strata/dev/iscsi_lun0_a", "/run/strata/dev/iscsi_lun0_b"}
	for i, u := range units {
		r := runHelper(t, env, contract.ISCSILogin{ISCSI: u, Link: links[i], Initiator: "iqn.2024-01.org.example:node1"})
		if r.err != nil {
			t.Fatalf("login %d: %v\n%s", i, r.err, r.stderr)
		}
	}
	logouts := func() int {
		calls, _ := childCalls(t, fakeLog)
		n := 0
		for _, c := range calls {
			if len(c) > 0 && c[len(c)-1] == "--logout" {
				n++
			}
		}
		return n
	}
	r := runHelper(t, env, contract.ISCSILogout{ISCSI: units[0], Link: links[0]})
	if r.err != nil || logouts() != 0 || !strings.Contains(r.stderr, "the session stays for LUN 0") {
		t.Errorf("first logout: %v, %d iscsiadm logouts, log:\n%s", r.err, logouts(), r.stderr)
	}
	r = runHelper(t, env, contract.ISCSILogout{ISCSI: units[1], Link: links[1]})
	if r.err != nil || logouts() != 1 {
		t.Errorf("last logout: %v, %d iscsiadm logouts, log:\n%s", r.err, logouts(), r.stderr)
	}
}
