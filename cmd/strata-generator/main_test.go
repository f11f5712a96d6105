package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A broken definition beside a good one: the good one's units are written,
// the broken one gets a placeholder, the kernel log gets the problem as an
// error record, and the exit status says something was wrong.
func TestRunLogsToKmsgAndKeepsGoing(t *testing.T) {
	defs, out := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(defs, "good.json"), []byte(`{"command": "/bin/true", "mount": {"kind": "bind", "bind": {"path": "/srv/root", "base": "root"}}}`), 0o600)
	os.WriteFile(filepath.Join(defs, "bad.json"), []byte(`{"comand": "/bin/true"}`), 0o600)
	t.Setenv("STRATA_DEFINITION_PATH", defs)

	var kmsg bytes.Buffer
	code := run([]string{out, out, out}, &bytes.Buffer{}, &logger{w: &kmsg, kmsg: true})
	if code != 1 {
		t.Errorf("exit status %d, want 1 (a definition has errors)", code)
	}
	want := fmt.Sprintf("<3>strata-generator[%d]: %s:1: comand: unknown field \"comand\"; did you mean \"command\"?\n", os.Getpid(), filepath.Join(defs, "bad.json"))
	if !strings.Contains(kmsg.String(), want) {
		t.Errorf("kmsg got:\n%s\nwant a record:\n%s", kmsg.String(), want)
	}
	for _, f := range []string{"systemd-nspawn@good.service.d/50-strata.conf", "var-lib-machines-good.mount", "systemd-nspawn@bad.service.d/50-strata.conf"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}

func TestRunUsage(t *testing.T) {
	var log bytes.Buffer
	if code := run([]string{"a", "b"}, &bytes.Buffer{}, &logger{w: &log}); code != 2 || !strings.Contains(log.String(), "usage") {
		t.Errorf("two directories: exit %d, log %q", code, log.String())
	}
}

// --dryrun prints what would be written and writes nothing.
func TestDryRun(t *testing.T) {
	defs := t.TempDir()
	os.WriteFile(filepath.Join(defs, "good.json"), []byte(`{"command": "/bin/true", "mount": {"kind": "bind", "bind": {"path": "/srv/root", "base": "root"}}}`), 0o600)
	t.Setenv("STRATA_DEFINITION_PATH", defs)
	var out bytes.Buffer
	if code := run([]string{"--dryrun"}, &out, &logger{w: &bytes.Buffer{}}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "# systemd-nspawn@good.service.d/50-strata.conf\n") || !strings.Contains(out.String(), "What=/srv/root") {
		t.Errorf("dry run output:\n%s", out.String())
	}
}
