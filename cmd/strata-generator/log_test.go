package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
