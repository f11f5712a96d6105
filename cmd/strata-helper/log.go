package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/strata-project/strata/helpers/contract"
)

// The helper logs to the journal, with fields, when systemd runs it (stderr
// is a journal stream: $JOURNAL_STREAM names stderr's device and inode, and
// journald's socket answers), and plain lines to stderr otherwise.
//
// Journal entries carry:
//
//	MESSAGE               the line, as on stderr without the "strata-helper: " prefix
//	PRIORITY              6 (info), 4 (warning) or 3 (the failure)
//	SYSLOG_IDENTIFIER     strata-helper
//	STRATA_VERB           rbd-map, iscsi-login, ...
//	STRATA_UNIT           the unit running the helper: the last component of
//	                      its cgroup (/proc/self/cgroup)
//	OBJECT_SYSTEMD_UNIT   the same, so that `journalctl -u UNIT` and
//	                      `systemctl status UNIT` find the entry (they match
//	                      _UID=0 + OBJECT_SYSTEMD_UNIT) even when journald
//	                      could not read the cgroup of the helper, which
//	                      exits right after logging; an attach failure's
//	                      entry has it once more for each container waiting
//	STRATA_DEFINITION     the definition file the unit was generated from
//	                      (its SourcePath=)
//	STRATA_LAYER          what the unit attaches or prepares, in words
//	STRATA_IMAGE          the image, file, LUN or directory
//	STRATA_DEVICE         the block device, once known
//
// Every failure is one entry (one line on stderr) that says which
// definition, which layer, what failed and what to check. No secret is
// ever logged: secrets the helper has read are redacted from every line.

const identifier = "strata-helper"

// Journal field names.
const (
	fieldVerb       = "STRATA_VERB"
	fieldUnit       = "STRATA_UNIT"
	fieldDefinition = "STRATA_DEFINITION"
	fieldLayer      = "STRATA_LAYER"
	fieldImage      = "STRATA_IMAGE"
	fieldDevice     = "STRATA_DEVICE"
)

type logger struct {
	mu      sync.Mutex
	journal bool
	send    func(msg string, p journal.Priority, vars map[string]string, units []string) error
	w       io.Writer
	fields  map[string]string
	secrets []string
}

// newLogger logs to the journal when useJournal, else to w.
func newLogger(w io.Writer, useJournal bool) *logger {
	return &logger{journal: useJournal, send: sendJournal, w: w, fields: map[string]string{}}
}

// underJournal reports whether stderr is systemd's journal stream and the
// journal's socket is there.
func underJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	return ok && err == nil && journal.Enabled()
}

func (l *logger) set(key, value string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if value == "" {
		delete(l.fields, key)
		return
	}
	l.fields[key] = value
}

func (l *logger) get(key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fields[key]
}

// redact keeps secret (and its halves, should a line hold part of it) out
// of everything logged from now on.
func (l *logger) redact(secret string) {
	if len(secret) < 4 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.secrets = append(l.secrets, secret)
	// Longest first, so a secret is replaced before its pieces.
	sort.Slice(l.secrets, func(i, j int) bool { return len(l.secrets[i]) > len(l.secrets[j]) })
}

func (l *logger) clean(s string) string {
	for _, sec := range l.secrets {
		s = strings.ReplaceAll(s, sec, "[redacted]")
	}
	return s
}

func (l *logger) infof(format string, args ...any) {
	l.emit(journal.PriInfo, fmt.Sprintf(format, args...))
}
func (l *logger) warnf(format string, args ...any) {
	l.emit(journal.PriWarning, fmt.Sprintf(format, args...))
}

// failure logs err as the helper's failure, with the definition, unit and
// layer it concerns. In the journal, the one entry is also about each of
// containers (OBJECT_SYSTEMD_UNIT once more per container): the containers
// an attachment failed for, whose own status would otherwise only say
// "Dependency failed". One entry, not one per unit: a copy logged for the
// container would still come from the attach unit's process, and so show
// twice in that unit's journal (journalctl -u matches its _SYSTEMD_UNIT).
func (l *logger) failure(err error, containers ...string) {
	l.emitAs(append([]string{l.get(fieldUnit)}, containers...), journal.PriErr, l.failureText(err))
}

func (l *logger) failureText(err error) string {
	l.mu.Lock()
	verb, layer, unit, def := l.fields[fieldVerb], l.fields[fieldLayer], l.fields[fieldUnit], l.fields[fieldDefinition]
	l.mu.Unlock()
	var b strings.Builder
	switch {
	case verb == contract.VerbFail:
		// The verb reports a definition's errors: nothing of its own
		// failed, the container was not started.
		b.WriteString("not started")
	case verb != "":
		b.WriteString(verb + " failed")
	default:
		b.WriteString("failed")
	}
	if layer != "" && verb != contract.VerbFail {
		b.WriteString(" for " + layer)
	}
	var ctx []string
	if def != "" {
		ctx = append(ctx, "definition "+def)
	}
	if unit != "" {
		ctx = append(ctx, "unit "+unit)
	}
	if len(ctx) > 0 {
		b.WriteString(" (" + strings.Join(ctx, ", ") + ")")
	}
	b.WriteString(": " + err.Error())
	return b.String()
}

func (l *logger) emit(p journal.Priority, msg string) {
	l.emitAs([]string{l.get(fieldUnit)}, p, msg)
}

// emitAs logs msg as about units (OBJECT_SYSTEMD_UNIT, each that is set).
func (l *logger) emitAs(units []string, p journal.Priority, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg = l.clean(msg)
	if l.journal {
		vars := map[string]string{"SYSLOG_IDENTIFIER": identifier}
		for k, v := range l.fields {
			vars[k] = l.clean(v)
		}
		units = slices.DeleteFunc(slices.Clone(units), func(u string) bool { return u == "" })
		if err := l.send(msg, p, vars, units); err == nil {
			return
		}
		// The journal went away: fall back to stderr, which systemd
		// also collects.
	}
	fmt.Fprintf(l.w, "%s: %s\n", identifier, msg)
}

// journalSocket is journald's native socket.
const journalSocket = "/run/systemd/journal/socket"

// sendJournal is go-systemd's journal.Send with OBJECT_SYSTEMD_UNIT once
// per unit: a field may repeat in an entry, and journalctl -u finds the
// entry under each value. (journal.Send takes a map: one value a name.)
// Entries here are small, so one datagram always holds them; should the
// socket refuse one, the caller writes to stderr instead.
func sendJournal(msg string, p journal.Priority, vars map[string]string, units []string) error {
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: journalSocket, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write(journalDatagram(msg, p, vars, units))
	return err
}

// journalDatagram encodes an entry in journald's native protocol.
func journalDatagram(msg string, p journal.Priority, vars map[string]string, units []string) []byte {
	var b bytes.Buffer
	put := func(name, value string) {
		if !strings.Contains(value, "\n") {
			fmt.Fprintf(&b, "%s=%s\n", name, value)
			return
		}
		// The binary form: name, newline, little-endian length, value.
		b.WriteString(name + "\n")
		binary.Write(&b, binary.LittleEndian, uint64(len(value)))
		b.WriteString(value + "\n")
	}
	put("MESSAGE", msg)
	put("PRIORITY", strconv.Itoa(int(p)))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		put(k, vars[k])
	}
	for _, u := range units {
		put("OBJECT_SYSTEMD_UNIT", u)
	}
	return b.Bytes()
}

// unitOf returns the systemd unit whose cgroup the process is in: the last
// component of its cgroup path in PROC/self/cgroup (the unified "0::" line,
// else the name=systemd one), when that is a unit name. Services do not
// get their unit's name in the environment.
func unitOf(procRoot string) string {
	f, err := os.Open(filepath.Join(procRoot, "self", "cgroup"))
	if err != nil {
		return ""
	}
	defer f.Close()
	var unified, named string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			unified = parts[2]
		case parts[1] == "name=systemd":
			named = parts[2]
		}
	}
	path := unified
	if path == "" || path == "/" {
		path = named
	}
	base := filepath.Base(path)
	for _, suffix := range []string{".service", ".scope", ".mount", ".socket", ".swap"} {
		if strings.HasSuffix(base, suffix) && len(base) > len(suffix) {
			return base
		}
	}
	return ""
}

// definitionOf reads the SourcePath= of a unit Strata's generator wrote
// (GENDIR/UNIT, or a drop-in GENDIR/UNIT.d/*.conf for the container) in the
// generator directories under root.
func definitionOf(root, unit string) string {
	if unit == "" || strings.ContainsAny(unit, "/") {
		return ""
	}
	for _, dir := range []string{"/run/systemd/generator", "/run/systemd/generator.late", "/run/systemd/generator.early"} {
		dir = filepath.Join(root, dir)
		files := []string{filepath.Join(dir, unit)}
		if dropins, _ := filepath.Glob(filepath.Join(dir, unit+".d", "*.conf")); len(dropins) > 0 {
			slices.Sort(dropins)
			files = append(files, dropins...)
		}
		for _, file := range files {
			if src := sourcePath(file); src != "" {
				return src
			}
		}
	}
	return ""
}

func sourcePath(file string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "SourcePath="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
