//go:build linux

package iscsi

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The CHAP password goes into the node record file, never into iscsiadm's
// argv: iscsiadm has no other way in for a record value (-v is its only
// source; it reads no stdin, file or environment for one).
//
// The record is the file iscsiadm itself reads at login (idbm_rec_read in
// open-iscsi's usr/idbm.c): NODES/TARGET/ADDR,PORT,TPGT/IFACE for records
// made by discovery, or the older NODES/TARGET/ADDR,PORT file, which
// iscsiadm reads for every iface when it exists. Its lines are "name =
// value"; the parser strips white space around the value and keeps the rest
// of the line verbatim, and the password's length field is derived from it
// when the line is read.

const passwordKey = "node.session.auth.password"

// recordField returns the value of name in a record's text ("" if absent).
func recordField(text, name string) string {
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// recordFiles finds the node records of target at p for iface.
func (m *Manager) recordFiles(target string, p portal, iface string) ([]string, error) {
	dir := filepath.Join(m.config(), "nodes", target)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		addr, port, tpgt, ok := parsePortalDir(e.Name())
		if !ok || port != p.port || !sameAddr(addr, p.addr) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if !tpgt { // old style: one record file for all ifaces
			if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
				out = append(out, path)
			}
			continue
		}
		if fi, err := os.Stat(filepath.Join(path, iface)); err == nil && fi.Mode().IsRegular() {
			out = append(out, filepath.Join(path, iface))
		}
	}
	return out, nil
}

// parsePortalDir splits "ADDR,PORT" or "ADDR,PORT,TPGT".
func parsePortalDir(name string) (addr string, port int, tpgt bool, ok bool) {
	parts := strings.Split(name, ",")
	if len(parts) != 2 && len(parts) != 3 {
		return "", 0, false, false
	}
	port, err := strconv.Atoi(parts[1])
	if err != nil {
		return "", 0, false, false
	}
	return parts[0], port, len(parts) == 3, true
}

func sameAddr(text string, a netip.Addr) bool {
	if b, err := netip.ParseAddr(strings.Trim(text, "[]")); err == nil {
		return b.Unmap() == a
	}
	return text == a.String()
}

// writePassword puts the CHAP password into every node record of the target
// at p through iface.
func (m *Manager) writePassword(target string, p portal, iface, password string) error {
	files, err := m.recordFiles(target, p, iface)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &Error{Step: "CHAP", Msg: "cannot read open-iscsi's node records", Err: err}
	}
	if len(files) == 0 {
		return &Error{Step: "CHAP", Msg: fmt.Sprintf("open-iscsi has no node record for %s at %s through iface %s under %s after discovery, so there is nowhere to put the CHAP password", target, p, iface, filepath.Join(m.config(), "nodes"))}
	}
	unlock, err := m.lockDB()
	if err != nil {
		return &Error{Step: "CHAP", Msg: "cannot take iscsiadm's database lock", Err: err}
	}
	defer unlock()
	for _, f := range files {
		if err := setRecordValue(f, passwordKey, password); err != nil {
			return &Error{Step: "CHAP", Msg: "cannot write the CHAP password into the node record " + f, Err: err}
		}
	}
	m.logf("CHAP password written to the node record (%d file(s), mode 0600)", len(files))
	return nil
}

// setRecordValue replaces (or adds before "# END RECORD") the line of key in
// a record file, through a 0600 temporary file renamed over it. Errors never
// hold the value.
func setRecordValue(file, key, value string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	out := make([]string, 0, len(lines)+1)
	line := key + " = " + value
	done := false
	for _, l := range lines {
		k, _, ok := strings.Cut(strings.TrimSpace(l), "=")
		if ok && strings.TrimSpace(k) == key {
			if !done {
				out = append(out, line)
				done = true
			}
			continue
		}
		if !done && strings.TrimSpace(l) == "# END RECORD" {
			out = append(out, line)
			done = true
		}
		out = append(out, l)
	}
	if !done {
		out = append(out, line)
	}
	body := []byte(strings.Join(out, "\n") + "\n")

	dir := filepath.Dir(file)
	tmp := filepath.Join(dir, "."+filepath.Base(file)+".strata")
	os.Remove(tmp)
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return &fs.PathError{Op: "create", Path: tmp, Err: err}
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, werr := f.Write(body)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, file)
	}
	if werr != nil {
		os.Remove(tmp)
		var pe *fs.PathError
		if errors.As(werr, &pe) {
			return &fs.PathError{Op: pe.Op, Path: pe.Path, Err: pe.Err}
		}
		return errors.New("write failed")
	}
	return nil
}

// lockDB takes iscsiadm's database lock the way iscsiadm does (idbm_lock):
// link LOCKDIR/lock to LOCKDIR/lock.write, retrying every 10ms; release
// unlinks lock.write. Like iscsiadm, after LockTimeout (30s) it goes ahead
// without the lock, assuming a holder that died.
func (m *Manager) lockDB() (func(), error) {
	dir := m.lockDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, write := filepath.Join(dir, "lock"), filepath.Join(dir, "lock.write")
	if f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		f.Close()
	} else {
		return nil, err
	}
	limit := m.LockTimeout
	if limit <= 0 {
		limit = 30 * time.Second
	}
	deadline := time.Now().Add(limit)
	for {
		err := os.Link(lock, write)
		if err == nil {
			return func() { os.Remove(write) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if m.lockBusy != nil {
			m.lockBusy()
		}
		if time.Now().After(deadline) {
			m.logf("iscsiadm's database lock %s has been held for %s; going ahead as iscsiadm does", write, limit)
			return func() {}, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}
