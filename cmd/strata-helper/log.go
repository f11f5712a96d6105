package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
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
//	                      exits right after logging
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
	send    func(msg string, p journal.Priority, vars map[string]string) error
	w       io.Writer
	fields  map[string]string
	secrets []string
}

// newLogger logs to the journal when useJournal, else to w.
func newLogger(w io.Writer, useJournal bool) *logger {
	return &logger{journal: useJournal, send: journal.Send, w: w, fields: map[string]string{}}
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
// layer it concerns.
func (l *logger) failure(err error) {
	l.emit(journal.PriErr, l.failureText(err))
}

// failureFor logs err's failure entry once more for each of units, as
// theirs (OBJECT_SYSTEMD_UNIT): the containers an attachment failed for,
// whose own status would otherwise only say "Dependency failed". Journal
// only: on stderr the entry is there once already.
func (l *logger) failureFor(units []string, err error) {
	if !l.journal {
		return
	}
	text := l.failureText(err)
	for _, u := range units {
		l.emitAs(u, journal.PriErr, text)
	}
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
	l.emitAs(l.get(fieldUnit), p, msg)
}

// emitAs logs msg as about unit (OBJECT_SYSTEMD_UNIT, when set).
func (l *logger) emitAs(unit string, p journal.Priority, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg = l.clean(msg)
	if l.journal {
		vars := map[string]string{"SYSLOG_IDENTIFIER": identifier}
		for k, v := range l.fields {
			vars[k] = l.clean(v)
		}
		if unit != "" {
			vars["OBJECT_SYSTEMD_UNIT"] = unit
		}
		if err := l.send(msg, p, vars); err == nil {
			return
		}
		// The journal went away: fall back to stderr, which systemd
		// also collects.
	}
	fmt.Fprintf(l.w, "%s: %s\n", identifier, msg)
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
