package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// journalctl is the program the journal is read with. journald has no
// D-Bus API for reading, and go-systemd's sdjournal needs cgo (the CLI is
// static), so the CLI runs journalctl as systemctl status does internally.
var journalctl = "journalctl"

// Journal returns the last n messages the journal has for unit's current
// (or last) run: its processes' output and systemd's messages about it,
// oldest first. Earlier runs are left out: their failures are not this
// one's.
//
// When the system bus is another system's (a container's socket reached
// through /proc/PID/root, as in the integration tests), the journal is
// read below that system's root: the journal of the system whose units we
// are looking at, not this one's.
func (c *Client) Journal(ctx context.Context, unit *Unit, n int) ([]string, error) {
	entries, err := c.readJournal(ctx, unit, n)
	if err != nil {
		return nil, err
	}
	return messages(entries), nil
}

// journalAfter is Journal for a unit that just changed state at t: it
// waits (briefly) until the journal holds an entry from t on. The output a
// failing process wrote reaches journald through a stream that journald
// reads on its own schedule, so right after a job fails the lines that say
// why may not be stored yet; systemd logs the failure itself after the
// state change, so an entry at or after t means journald has caught up to
// the failure.
func (c *Client) journalAfter(ctx context.Context, unit *Unit, n int, t time.Time) ([]string, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		entries, err := c.readJournal(ctx, unit, n)
		if err != nil {
			return nil, err
		}
		if t.IsZero() || time.Now().After(deadline) || len(entries) > 0 && !entries[len(entries)-1].time.Before(t) {
			return messages(entries), nil
		}
		select {
		case <-ctx.Done():
			return messages(entries), nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// entry is one journal entry: when journald received it, and its text.
type entry struct {
	time    time.Time
	message string
}

func messages(es []entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.message)
	}
	return out
}

func (c *Client) readJournal(ctx context.Context, unit *Unit, n int) ([]entry, error) {
	args := append([]string{"--no-pager", "--quiet", "--output=json", "--output-fields=MESSAGE", "--lines=" + strconv.Itoa(n)}, journalMatch(unit)...)
	if c.root != "" {
		args = append([]string{"--root=" + c.root}, args...)
	}
	cmd := exec.CommandContext(ctx, journalctl, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", journalctl, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return parseJournalJSON(out), nil
}

// journalMatch selects a unit's current run: its processes' entries carry
// _SYSTEMD_INVOCATION_ID, systemd's own about it INVOCATION_ID. A unit that
// never ran has no ID: then all of its entries.
func journalMatch(u *Unit) []string {
	if u.InvocationID == "" {
		return []string{"--unit=" + u.Name}
	}
	return []string{"_SYSTEMD_INVOCATION_ID=" + u.InvocationID, "+", "INVOCATION_ID=" + u.InvocationID}
}

// parseJournalJSON reads journalctl's --output=json: one object per line.
// MESSAGE is a string, or an array of bytes when it is not valid UTF-8
// (null when too large); lines that are not entries are skipped.
func parseJournalJSON(out []byte) []entry {
	var es []entry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var raw struct {
			Realtime string          `json:"__REALTIME_TIMESTAMP"`
			Message  json.RawMessage `json:"MESSAGE"`
		}
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			continue
		}
		e := entry{}
		if us, err := strconv.ParseInt(raw.Realtime, 10, 64); err == nil {
			e.time = time.UnixMicro(us)
		}
		var s string
		var b []byte
		if len(raw.Message) == 0 || string(raw.Message) == "null" {
			// Unmarshal accepts null into anything: check it first.
			e.message = "[message not shown: too large]"
		} else if json.Unmarshal(raw.Message, &s) == nil {
			e.message = s
		} else if json.Unmarshal(raw.Message, &b) == nil {
			e.message = strings.ToValidUTF8(string(b), "\uFFFD")
		} else {
			e.message = "[message not shown: unreadable]"
		}
		es = append(es, e)
	}
	return es
}

// systemRoot returns the root directory of the system whose bus address
// is addr, as seen from here: the part of a unix socket path before
// /run/dbus/system_bus_socket, e.g. /proc/1234/root for a container's bus
// reached from its host. It returns "" for this system's own bus (or an
// address it cannot read a path from).
func systemRoot(addr string) string {
	for _, a := range strings.Split(addr, ";") {
		transport, params, ok := strings.Cut(a, ":")
		if !ok || transport != "unix" {
			continue
		}
		for _, kv := range strings.Split(params, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k != "path" {
				continue
			}
			v = unescapeBusValue(v)
			for _, sock := range []string{"/var/run/dbus/system_bus_socket", "/run/dbus/system_bus_socket"} {
				if root, ok := strings.CutSuffix(v, sock); ok {
					return root
				}
			}
			return ""
		}
	}
	return ""
}

// unescapeBusValue undoes the %XX escapes of D-Bus address values.
func unescapeBusValue(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) {
			if x, err := strconv.ParseUint(v[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(x))
				i += 2
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
