package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-project/strata/generator"
)

// listenJournal is a real datagram socket standing in for journald's.
func listenJournal(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socket")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, c
}

// parseRecord decodes a native-protocol datagram: KEY=value lines, or KEY,
// a 64-bit little-endian length and that many bytes.
func parseRecord(t *testing.T, b []byte) map[string]string {
	t.Helper()
	fields := map[string]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			t.Fatalf("record ends without a newline: %q", b)
		}
		line := string(b[:nl])
		b = b[nl+1:]
		if k, v, ok := strings.Cut(line, "="); ok {
			fields[k] = v
			continue
		}
		n := binary.LittleEndian.Uint64(b)
		fields[line] = string(b[8 : 8+n])
		b = b[8+n+1:]
	}
	return fields
}

// With the journal's socket there, a record goes there (and nowhere else)
// with its priority and the identifier the documents tell to look for.
func TestLogToJournalSocket(t *testing.T) {
	path, c := listenJournal(t)
	var kmsg, stderr bytes.Buffer
	l := &logger{journal: path, kmsg: &kmsg, stderr: &stderr}
	l.printf(3, "%s: line one\nline two", "/etc/strata/x.json:1")

	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got := parseRecord(t, buf[:n])
	want := map[string]string{"PRIORITY": "3", "SYSLOG_IDENTIFIER": "strata-generator", "SYSLOG_PID": fmt.Sprint(os.Getpid()), "MESSAGE": "/etc/strata/x.json:1: line one\nline two"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q (record %q)", k, got[k], v, buf[:n])
		}
	}
	if kmsg.Len()+stderr.Len() != 0 {
		t.Errorf("also logged elsewhere: kmsg %q, stderr %q", kmsg.String(), stderr.String())
	}
}

// A socket file nobody listens on (journald stopped) and a journal that
// does not read (its buffer full): the record goes to the kernel log at
// once, without waiting for the journal.
func TestLogFallsBackWithoutWaiting(t *testing.T) {
	stale, c := listenJournal(t)
	c.Close()
	full, _ := listenJournal(t)
	fill(t, full)

	for name, path := range map[string]string{"stale": stale, "full": full} {
		var kmsg bytes.Buffer
		l := &logger{journal: path, kmsg: &kmsg, stderr: &bytes.Buffer{}}
		start := time.Now()
		l.printf(4, "a warning")
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: logging took %v", name, d)
		}
		if want := fmt.Sprintf("<4>strata-generator[%d]: a warning\n", os.Getpid()); kmsg.String() != want {
			t.Errorf("%s: kmsg got %q, want %q", name, kmsg.String(), want)
		}
	}
}

// Neither journal nor kernel log (a container node at boot): stderr.
func TestLogToStderrLast(t *testing.T) {
	var stderr bytes.Buffer
	l := &logger{journal: filepath.Join(t.TempDir(), "none"), stderr: &stderr}
	l.printf(3, "an error")
	if stderr.String() != "strata-generator: an error\n" {
		t.Errorf("stderr got %q", stderr.String())
	}
}

// fill sends to the socket until its buffer takes no more.
func fill(t *testing.T, path string) {
	t.Helper()
	for i := 0; ; i++ {
		err := sendJournal(path, 6, strings.Repeat("x", 4096))
		if err == syscall.EAGAIN {
			return
		}
		if err != nil || i > 100000 {
			t.Fatalf("filling the socket: %v after %d records", err, i)
		}
	}
}

// At boot on a node with neither journal socket nor kernel log, what went
// to stderr (the console) is also handed to the journal by a unit started
// at boot, with its priority; systemd reads that unit as meant.
func TestUnheardMessagesReplayedAtBoot(t *testing.T) {
	defs, out := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(defs, "bad.json"), []byte(`{"comand": "/bin/true"}`), 0o600)
	t.Setenv("STRATA_DEFINITION_PATH", defs)

	l := &logger{journal: filepath.Join(t.TempDir(), "none"), stderr: io.Discard, unheard: &[]generator.Record{}}
	if code := run([]string{out}, io.Discard, l); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	unit, err := os.ReadFile(filepath.Join(out, generator.LogReplayUnit))
	if err != nil {
		t.Fatal(err)
	}
	want := `ExecStart=/bin/echo "<3>` + filepath.Join(defs, "bad.json") + `:1: comand: unknown field \"comand\"; did you mean \"command\"?"`
	if !strings.Contains(string(unit), want+"\n") || !strings.Contains(string(unit), "SyslogIdentifier=strata-generator\n") {
		t.Errorf("%s:\n%s\nwant the line %s", generator.LogReplayUnit, unit, want)
	}
	if target, err := os.Readlink(filepath.Join(out, "sysinit.target.wants", generator.LogReplayUnit)); err != nil || target != "../"+generator.LogReplayUnit {
		t.Errorf("not started at boot: %q %v", target, err)
	}
	analyze := exec.Command("systemd-analyze", "verify", "--man=no", filepath.Join(out, generator.LogReplayUnit))
	if msg, err := analyze.CombinedOutput(); err != nil || len(msg) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, msg)
	}

	// Heard (the journal or the kernel log took it): no replay.
	out2 := t.TempDir()
	l = &logger{kmsg: io.Discard, stderr: io.Discard, unheard: &[]generator.Record{}}
	run([]string{out2}, io.Discard, l)
	if _, err := os.Stat(filepath.Join(out2, generator.LogReplayUnit)); err == nil {
		t.Errorf("replay unit written although the kernel log took the messages")
	}
}
