//go:build linux

package iscsi

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// waitDevice waits for the LUN's block device: udev's by-path link first,
// sysfs as the fallback. A reused session whose LUN is not there yet is
// rescanned once (the LUN may have been added since the login).
func (m *Manager) waitDevice(ctx context.Context, t Target, p portal, reused bool) (Device, error) {
	timeout := m.DeviceTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	grace := m.LinkGrace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rescanned := !reused
	var seen time.Time
	pause := 10 * time.Millisecond
	for {
		sess, sok := m.findSession(t.Target, p)
		addrText := p.addr.String()
		if sok && sess.addr != "" {
			addrText = sess.addr
		}
		link := filepath.Join(m.dev(), "disk", "by-path", ByPathName(addrText, p.port, t.Target, t.LUN))
		if real, err := filepath.EvalSymlinks(link); err == nil {
			if ok, _ := m.isBlock(real); ok {
				d := Device{Name: filepath.Base(real), Path: filepath.Join(m.dev(), filepath.Base(real)), ByPath: link}
				if sok {
					d.Session, d.Iface = sess.id, sess.iface
				}
				return d, nil
			}
		}
		if sok {
			if name, ok := m.lunDevice(sess, t.LUN); ok {
				path := filepath.Join(m.dev(), name)
				if isBlk, _ := m.isBlock(path); isBlk {
					if seen.IsZero() {
						seen = time.Now()
					}
					if time.Since(seen) >= grace {
						m.logf("udev made no %s within %s of %s appearing: the layer's mount waits for that link; check systemd-udevd and its 60-persistent-storage rules", link, grace, path)
						return Device{Name: name, Path: path, Session: sess.id, Iface: sess.iface}, nil
					}
				}
			} else if !rescanned {
				rescanned = true
				m.logf("LUN %d is not in session %d yet; rescanning it", t.LUN, sess.id)
				if r, err := m.run(ctx, []string{"-m", "session", "-r", strconv.Itoa(sess.id), "--rescan"}); err == nil && r.Exit != 0 {
					m.logf("rescan of session %d failed (iscsiadm exit %d: %s)", sess.id, r.Exit, lastLines(r.Stderr))
				}
			}
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("logged in, but %s did not appear within %s", t, timeout)
			switch {
			case !sok:
				msg += ": no session for it in " + filepath.Join(m.sysfs(), "class", "iscsi_session") + " (did iscsid log in? journalctl -u iscsid)"
			case !seen.IsZero():
				msg += " (sysfs shows it, but not as a block device under " + m.dev() + ": is devtmpfs mounted?)"
			default:
				msg += fmt.Sprintf(": session %d has no LUN %d; check the target exports LUN %d to initiator %s (iscsiadm -m session -P 3 lists what it sees)", sess.id, t.LUN, t.LUN, t.Initiator)
			}
			return Device{}, &Error{Step: "device", Msg: msg}
		case <-time.After(pause):
		}
		if pause < 200*time.Millisecond {
			pause *= 2
		}
	}
}

// ByPathName is udev's by-path name of an iSCSI LUN (path_id's
// handle_scsi_iscsi and format_lun_number): the connection's persistent
// address as the kernel prints it, IPv6 without brackets.
func ByPathName(addr string, port int, target string, lun int) string {
	l := "lun-" + strconv.Itoa(lun)
	if lun >= 256 {
		l = fmt.Sprintf("lun-0x%04x%04x00000000", lun&0xffff, (lun>>16)&0xffff)
	}
	return fmt.Sprintf("ip-%s:%d-iscsi-%s-%s", addr, port, target, l)
}

func (m *Manager) isBlock(path string) (bool, error) {
	if m.IsBlockDevice != nil {
		return m.IsBlockDevice(path)
	}
	return isBlockDevice(path)
}
