//go:build linux

package iscsi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-project/strata/internal/flock"
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

// ref is one holder's use of a session: STATEDIR/KEY.lunN.HOLDER, where
// KEY hashes target and portal (the resolved address: however a
// definition spells the portal, one session is one KEY) and HOLDER hashes
// Target.Holder (without one, STATEDIR/KEY.lunN). It holds the iface the
// login used. Two holders of one LUN hold two references, so releasing
// one never logs the LUN out under the other.
type ref struct {
	dir, key string
	lun      int
	holder   string
}

func (m *Manager) refFor(t Target, p portal) ref {
	sum := sha256.Sum256([]byte(t.Target + "\n" + p.addr.String() + "\n" + strconv.Itoa(p.port)))
	r := ref{dir: m.stateDir(), key: hex.EncodeToString(sum[:8]), lun: t.LUN}
	if t.Holder != "" {
		h := sha256.Sum256([]byte(t.Holder))
		r.holder = hex.EncodeToString(h[:6])
	}
	return r
}

func (r ref) path() string {
	name := fmt.Sprintf("%s.lun%d", r.key, r.lun)
	if r.holder != "" {
		name += "." + r.holder
	}
	return filepath.Join(r.dir, name)
}

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

// others lists the LUNs of the other references to the same session
// (a LUN once, however many hold it).
func (r ref) others() []string {
	matches, _ := filepath.Glob(filepath.Join(r.dir, r.key+".lun*"))
	var out []string
	for _, m := range matches {
		lun, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(m), r.key+".lun"), ".")
		if m != r.path() && !slices.Contains(out, lun) {
			out = append(out, lun)
		}
	}
	return out
}
