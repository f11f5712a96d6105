//go:build linux

package iscsi

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// session is an iSCSI session as sysfs shows it.
type session struct {
	id     int
	dir    string // SYSFS/class/iscsi_session/sessionN
	target string
	iface  string
	addr   string // the connection's persistent address, as the kernel prints it
	port   int
}

func readAttr(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// sessions lists SYSFS/class/iscsi_session/session*, by number.
func (m *Manager) sessions() []session {
	dirs, _ := filepath.Glob(filepath.Join(m.sysfs(), "class", "iscsi_session", "session*"))
	var out []session
	for _, d := range dirs {
		id, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "session"))
		if err != nil {
			continue
		}
		s := session{id: id, dir: d, target: readAttr(d, "targetname"), iface: readAttr(d, "ifacename")}
		// udev's path_id reads connection<N>:0, so does this.
		conn := filepath.Join(m.sysfs(), "class", "iscsi_connection", fmt.Sprintf("connection%d:0", id))
		s.addr = readAttr(conn, "persistent_address")
		if s.addr == "" {
			s.addr = readAttr(conn, "address")
		}
		port := readAttr(conn, "persistent_port")
		if port == "" {
			port = readAttr(conn, "port")
		}
		s.port, _ = strconv.Atoi(port)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// findSession finds the session to target at p, preferring one through a
// Strata iface.
func (m *Manager) findSession(target string, p portal) (session, bool) {
	var found []session
	for _, s := range m.sessions() {
		if s.target == target && s.port == p.port && sameAddr(s.addr, p.addr) {
			found = append(found, s)
		}
	}
	for _, s := range found {
		if strings.HasPrefix(s.iface, "strata-") {
			return s, true
		}
	}
	if len(found) > 0 {
		return found[0], true
	}
	return session{}, false
}

// lunDevice finds the block device of LUN in the session:
// sessionN/device/target*/H:C:T:LUN/block/NAME.
func (m *Manager) lunDevice(s session, lun int) (string, bool) {
	blocks, _ := filepath.Glob(filepath.Join(s.dir, "device", "target*", "*", "block", "*"))
	sort.Strings(blocks)
	for _, b := range blocks {
		hctl := filepath.Base(filepath.Dir(filepath.Dir(b)))
		parts := strings.Split(hctl, ":")
		if len(parts) == 4 && parts[3] == strconv.Itoa(lun) {
			return filepath.Base(b), true
		}
	}
	return "", false
}

// tune applies the LUN's queue depth and I/O scheduler to
// SYSFS/block/NAME/device/queue_depth and SYSFS/block/NAME/queue/scheduler,
// writing only what differs.
func (m *Manager) tune(name string, t Target) error {
	block := filepath.Join(m.sysfs(), "block", name)
	if t.QueueDepth > 0 {
		file := filepath.Join(block, "device", "queue_depth")
		if cur := readAttr(filepath.Dir(file), "queue_depth"); cur != strconv.Itoa(t.QueueDepth) {
			if err := writeAttr(file, strconv.Itoa(t.QueueDepth)); err != nil {
				msg := fmt.Sprintf("cannot set the queue depth of %s to %d", name, t.QueueDepth)
				if errors.Is(err, syscall.EINVAL) {
					msg += fmt.Sprintf(": the kernel takes 1 up to the session's command limit (can_queue, from max_commands %d); lower queue_depth or raise max_commands", t.MaxCommands)
				}
				return &Error{Step: "queue", Msg: msg, Err: err}
			}
			m.logf("%s: queue_depth %s -> %d", name, or(cur, "?"), t.QueueDepth)
		}
	}
	if t.Scheduler != "" {
		file := filepath.Join(block, "queue", "scheduler")
		avail := readAttr(filepath.Dir(file), "scheduler")
		if current(avail) != t.Scheduler {
			if err := writeAttr(file, t.Scheduler); err != nil {
				msg := fmt.Sprintf("cannot set the I/O scheduler of %s to %s", name, t.Scheduler)
				if errors.Is(err, syscall.EINVAL) {
					msg += fmt.Sprintf(": this kernel offers %q (a scheduler built as a module loads as %s-iosched: modprobe it or choose another)", avail, t.Scheduler)
				}
				return &Error{Step: "queue", Msg: msg, Err: err}
			}
			m.logf("%s: scheduler %s -> %s", name, or(current(avail), "?"), t.Scheduler)
		}
	}
	return nil
}

// current is the bracketed entry of a scheduler list: "[mq-deadline] none".
func current(list string) string {
	for _, f := range strings.Fields(list) {
		if strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]") {
			return strings.Trim(f, "[]")
		}
	}
	return ""
}

// writeAttr writes value to a sysfs attribute in one write(2).
func writeAttr(path, value string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	n, err := unix.Write(fd, []byte(value))
	if err != nil {
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	if n != len(value) {
		return &fs.PathError{Op: "write", Path: path, Err: syscall.EIO}
	}
	return nil
}
