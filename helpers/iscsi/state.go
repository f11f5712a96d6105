//go:build linux

package iscsi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-project/strata/helpers/flock"
)

// lockState serialises Strata's logins and logouts on this node (flock on
// STATEDIR/lock), so two LUNs of one target cannot race over the session.
// A login may take minutes (iscsid retries), hence the wait follows ctx.
func (m *Manager) lockState(ctx context.Context) (func(), error) {
	dir := m.stateDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &Error{Msg: "cannot create " + dir, Err: err}
	}
	path := filepath.Join(dir, "lock")
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &Error{Msg: "cannot open " + path, Err: err}
	}
	if err := flock.Exclusive(ctx, fd); err != nil {
		unix.Close(fd)
		if ctx.Err() != nil {
			return nil, &Error{Msg: "gave up waiting for another iSCSI login or logout on this node", Err: err}
		}
		return nil, &Error{Msg: "cannot lock " + path, Err: err}
	}
	return func() { unix.Flock(fd, unix.LOCK_UN); unix.Close(fd) }, nil
}

// ref is one LUN's use of a session: STATEDIR/KEY.lunN, where KEY hashes
// target and portal. It holds the iface the login used.
type ref struct {
	dir, key string
	lun      int
}

func (m *Manager) refFor(t Target, p portal) ref {
	sum := sha256.Sum256([]byte(t.Target + "\n" + p.addr.String() + "\n" + strconv.Itoa(p.port)))
	return ref{dir: m.stateDir(), key: hex.EncodeToString(sum[:8]), lun: t.LUN}
}

func (r ref) path() string { return filepath.Join(r.dir, fmt.Sprintf("%s.lun%d", r.key, r.lun)) }

func (r ref) add(iface string) error {
	return os.WriteFile(r.path(), []byte("iface="+iface+"\n"), 0o600)
}

func (r ref) iface() string {
	b, err := os.ReadFile(r.path())
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(b)), "iface="))
}

func (r ref) remove() { os.Remove(r.path()) }

// others lists the other LUNs holding the same session.
func (r ref) others() []string {
	matches, _ := filepath.Glob(filepath.Join(r.dir, r.key+".lun*"))
	var out []string
	for _, m := range matches {
		lun := strings.TrimPrefix(filepath.Base(m), r.key+".lun")
		if lun != strconv.Itoa(r.lun) {
			out = append(out, lun)
		}
	}
	return out
}
