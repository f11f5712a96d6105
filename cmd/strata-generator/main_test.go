package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run this test binary as the generator itself
// (STRATA_GENERATOR_TEST_MAIN=1): a real process, with its own memory,
// stack and exit, that a test can time out.
func TestMain(m *testing.M) {
	if os.Getenv("STRATA_GENERATOR_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// A broken definition beside a good one: the good one's units are written,
// the broken one gets a placeholder, the kernel log gets the problem as an
// error record, and the exit status says something was wrong.
func TestRunLogsToKmsgAndKeepsGoing(t *testing.T) {
	defs, out := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(defs, "good.json"), []byte(`{"command": "/bin/true", "mount": {"kind": "bind", "bind": {"path": "/srv/root", "base": "root"}}}`), 0o600)
	os.WriteFile(filepath.Join(defs, "bad.json"), []byte(`{"comand": "/bin/true"}`), 0o600)
	t.Setenv("STRATA_DEFINITION_PATH", defs)

	var kmsg bytes.Buffer
	code := run([]string{out, out, out}, &bytes.Buffer{}, &logger{kmsg: &kmsg, stderr: io.Discard})
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
	if code := run([]string{"a", "b"}, &bytes.Buffer{}, &logger{stderr: &log}); code != 2 || !strings.Contains(log.String(), "usage") {
		t.Errorf("two directories: exit %d, log %q", code, log.String())
	}
}

// --dryrun prints what would be written and writes nothing.
func TestDryRun(t *testing.T) {
	defs := t.TempDir()
	os.WriteFile(filepath.Join(defs, "good.json"), []byte(`{"command": "/bin/true", "mount": {"kind": "bind", "bind": {"path": "/srv/root", "base": "root"}}}`), 0o600)
	t.Setenv("STRATA_DEFINITION_PATH", defs)
	var out bytes.Buffer
	if code := run([]string{"--dryrun"}, &out, &logger{stderr: &bytes.Buffer{}}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "# systemd-nspawn@good.service.d/50-strata.conf\n") || !strings.Contains(out.String(), "What=/srv/root") {
		t.Errorf("dry run output:\n%s", out.String())
	}
}

// Hostile and odd files beside good definitions, through the generator as a
// process: the good ones get their units, each bad one a placeholder that
// says why, a masked one nothing, and the process ends (it is killed after a
// generous hang guard, which fails the test).
func TestOddFilesCostOnlyTheirOwnContainer(t *testing.T) {
	defs, out := t.TempDir(), t.TempDir()
	at := func(name string) string { return filepath.Join(defs, name) }
	put := func(name, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(at(name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(at(name), mode); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	good := `{"command": "/bin/true", "mount": {"kind": "bind", "bind": {"path": "/srv/root", "base": "root"}}}`
	put("good.json", good, 0o644)
	put("good2.yaml", "command: /bin/true\nmount: {kind: bind, bind: {path: /srv/other, base: root}}\n", 0o600)
	must(syscall.Mkfifo(at("fifo.json"), 0o600))
	must(os.Symlink("/dev/zero", at("zero.json")))
	put("sparse.json", "", 0o600)
	must(os.Truncate(at("sparse.json"), 8<<30))
	put("group.json", good, 0o664)
	must(os.Symlink(os.DevNull, at("masked.json")))
	// Deep nesting within the size cap (the parsers' own limits handle it).
	put("deepjson.json", `{"command": `+strings.Repeat("[", 500_000), 0o600)
	put("deepyaml.yaml", "command: "+strings.Repeat("[", 500_000), 0o600)
	put("deeptoml.toml", "command = "+strings.Repeat("[", 500_000), 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], out)
	cmd.Env = append(os.Environ(), "STRATA_GENERATOR_TEST_MAIN=1", "STRATA_DEFINITION_PATH="+defs)
	// A character device as stderr: the generator logs there, not to the
	// host's /dev/kmsg; the placeholders carry the problems.
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	must(err)
	defer devNull.Close()
	cmd.Stderr = devNull
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the generator did not finish: %v", err)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want status 1 (some definitions are broken)", err)
	}

	for _, f := range []string{"var-lib-machines-good.mount", "var-lib-machines-good2.mount"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("good definition's unit: %v", err)
		}
	}
	for name, why := range map[string]string{
		"fifo":     "is a FIFO (named pipe), not a regular file",
		"zero":     "is a character device, not a regular file",
		"sparse":   "is larger than a definition may be (8589934592 bytes, at most 1048576)",
		"group":    "is writable by its group (mode 0664)",
		"deepjson": "nested more than 64 levels",
		"deepyaml": "nested more than 64 levels",
		"deeptoml": "nested more than 64 levels",
	} {
		b, err := os.ReadFile(filepath.Join(out, "systemd-nspawn@"+name+".service.d", "50-strata.conf"))
		if err != nil || !strings.Contains(string(b), "strata-helper fail -- ") || !strings.Contains(string(b), why) {
			t.Errorf("%s: placeholder %v:\n%s\nwant the reason %q", name, err, b, why)
		}
	}
	if ents, _ := filepath.Glob(filepath.Join(out, "*masked*")); len(ents) != 0 {
		t.Errorf("masked name got units: %v", ents)
	}
}
