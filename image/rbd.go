//go:build cgo && pacific

package image

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"
)

// Conn is a connection to a Ceph cluster as one cephx user.
type Conn struct {
	conn *rados.Conn
	opts ConnectOptions
	sc   scope
}

// Connect connects to the cluster. It fails within about opts.Timeout when
// no monitor answers, with ErrUnreachable; with ErrAuth when the key is
// refused.
func Connect(ctx context.Context, opts ConnectOptions) (*Conn, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	sc := opts.scope()
	conn, err := rados.NewConnWithUser(opts.user())
	if err != nil {
		return nil, sc.fail("connect", "", accessNone, err)
	}
	ok := false
	defer func() {
		if !ok {
			conn.Shutdown()
		}
	}()
	switch {
	case opts.Conf != "":
		if err := conn.ReadConfigFile(opts.Conf); err != nil {
			return nil, fmt.Errorf("reading %s: %w", opts.Conf, err)
		}
	case len(opts.Monitors) == 0:
		if err := conn.ReadDefaultConfigFile(); err != nil {
			return nil, fmt.Errorf("no monitors given (--mon) and no ceph.conf found ($CEPH_CONF, /etc/ceph/ceph.conf): %w", err)
		}
	}
	secs := strconv.FormatFloat(sc.Timeout.Seconds(), 'f', -1, 64)
	set := [][2]string{
		// librados's own log lines would only repeat our errors on stderr.
		{"log_to_stderr", "false"},
		{"err_to_stderr", "false"},
		{"client_mount_timeout", secs},
		{"rados_mon_op_timeout", secs},
		{"rados_osd_op_timeout", secs},
	}
	if len(opts.Monitors) > 0 {
		set = append(set, [2]string{"mon_host", strings.Join(opts.Monitors, ",")})
	}
	if opts.Keyring != "" {
		set = append(set, [2]string{"keyring", opts.Keyring})
	}
	if opts.Key != "" {
		set = append(set, [2]string{"key", opts.Key})
	}
	for _, kv := range set {
		if err := conn.SetConfigOption(kv[0], kv[1]); err != nil {
			what := kv[1]
			if kv[0] == "key" {
				what = "(the key)"
			}
			return nil, fmt.Errorf("setting %s = %s: %w", kv[0], what, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- conn.Connect() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// The connect goes on in the background until its own time-out;
		// its Conn is then released there.
		go func() {
			if <-done == nil {
				conn.Shutdown()
			}
		}()
		ok = true // not ours to shut down any more
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, sc.fail("connect", "", accessNone, err)
	}
	ok = true
	return &Conn{conn: conn, opts: opts, sc: sc}, nil
}

// Close ends the connection.
func (c *Conn) Close() {
	if c != nil && c.conn != nil {
		c.conn.Shutdown()
		c.conn = nil
	}
}

// MonHost is the monitors the connection was given (mon_host), for a
// definition's "monitors".
func (c *Conn) MonHost() string {
	v, err := c.conn.GetConfigOption("mon_host")
	if err != nil {
		return ""
	}
	return v
}

// scope of ref, for messages.
func (c *Conn) scope(ref Ref) scope {
	s := c.sc
	s.Pool, s.Namespace = ref.Pool, ref.Namespace
	return s
}

// ioctx opens ref's pool and namespace.
func (c *Conn) ioctx(ref Ref, acc access) (*rados.IOContext, error) {
	sc := c.scope(ref)
	ioc, err := c.conn.OpenIOContext(ref.Pool)
	if err != nil {
		e := sc.fail("open pool", ref.Pool, acc, err)
		if errors.Is(e, ErrNoSuchPool) {
			if pools, lerr := c.conn.ListPools(); lerr == nil {
				if len(pools) == 0 {
					e.(*Error).Msg += " (the cluster has no pools)"
				} else {
					sort.Strings(pools)
					e.(*Error).Msg += " (pools: " + strings.Join(pools, ", ") + ")"
				}
			}
		}
		return nil, e
	}
	if ref.Namespace != "" {
		exists, err := rbd.NamespaceExists(ioc, ref.Namespace)
		if err == nil && !exists {
			err = rados.ErrNotFound
		}
		if err != nil {
			ioc.Destroy()
			return nil, sc.fail("open namespace", ref.PoolSpec(), acc, err)
		}
		ioc.SetNamespace(ref.Namespace)
	}
	return ioc, nil
}

// existing opens the image read-only (no watch of ours) and tells its
// watchers; nil when there is no such image.
func (c *Conn) existing(ioc *rados.IOContext, ref Ref) (*rbd.Image, []rbd.ImageWatcher, error) {
	sc := c.scope(ref)
	head := ref
	head.Snapshot = ""
	img, err := rbd.OpenImageReadOnly(ioc, ref.Image, rbd.NoSnapshot)
	if errors.Is(err, rbd.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, sc.fail("open image", head.String(), accessRead, err)
	}
	w, err := img.ListWatchers()
	if err != nil {
		img.Close()
		return nil, nil, sc.fail("list the watchers of", head.String(), accessRead, err)
	}
	return img, w, nil
}

func watcherList(ws []rbd.ImageWatcher) string {
	var s []string
	for _, w := range ws {
		s = append(s, w.Addr)
	}
	return strings.Join(s, ", ")
}

// refuseExisting is the error for an existing image without force.
func refuseExisting(ref Ref, ws []rbd.ImageWatcher) error {
	if len(ws) > 0 {
		return &Error{Op: "create image", Spec: ref.String(), Kind: ErrHasWatchers,
			Msg: fmt.Sprintf("image %s exists and has %d watcher(s) (mapped or open at %s): refusing to write over it; --force writes over it in place, under the readers",
				ref, len(ws), watcherList(ws))}
	}
	return &Error{Op: "create image", Spec: ref.String(), Kind: ErrExists,
		Msg: fmt.Sprintf("image %s already exists: --force replaces it (or strata-image rm %s)", ref, ref)}
}

// checkTarget refuses early when the image exists (or is in use) and force
// is not given, and checks that pool and namespace exist.
func (c *Conn) checkTarget(ref Ref, force bool) error {
	ref.Snapshot = ""
	ioc, err := c.ioctx(ref, accessWrite)
	if err != nil {
		return err
	}
	defer ioc.Destroy()
	img, ws, err := c.existing(ioc, ref)
	if err != nil || img == nil {
		return err
	}
	img.Close()
	if !force {
		return refuseExisting(ref, ws)
	}
	return nil
}
