// Package client talks to systemd and machined over D-Bus for the strata
// CLI: it reads the state of a container's unit chain and of its machine,
// starts, stops and restarts containers and waits for the outcome, reloads
// systemd, and fetches the journal lines that explain a failure.
//
// Strata has no daemon, so everything here asks systemd itself: the chain
// of a container is discovered from the dependencies of its unit (the
// generator's output, as systemd loaded it), not recomputed from the
// definition, so what is shown is what systemd will actually do.
//
// The system bus is the one in $DBUS_SYSTEM_BUS_ADDRESS when set (the
// integration tests point it at a testbed's bus), else the default one.
//
// The package returns data and typed errors; presenting them (text, JSON)
// is the CLI's job.
package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Client is a connection to systemd (and, when first needed, machined) on
// one system bus, for one command at a time: it is not safe for
// concurrent use.
type Client struct {
	ctx      context.Context // bounds the connections' lifetime (godbus closes them when it ends)
	systemd  *sddbus.Conn
	machined *dbus.Conn // dialled lazily: list and status of stopped containers never need it
	// root is where the managed system's files are seen from here: "" for
	// this system, or e.g. /proc/PID/root when the bus is a container's
	// (see systemRoot). The journal is read below it.
	root string
}

// Connect connects to the system bus. ctx bounds the whole life of the
// client, not just the dial: godbus closes the connection when it ends, so
// pass the command's context (cancelled on Ctrl-C), not a short timeout.
func Connect(ctx context.Context) (*Client, error) {
	// go-systemd dials through godbus's SystemBusPrivate, which honours
	// $DBUS_SYSTEM_BUS_ADDRESS: no custom dialer is needed.
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to systemd on the system bus (%s): %w", BusAddress(), err)
	}
	return &Client{ctx: ctx, systemd: conn, root: systemRoot(os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"))}, nil
}

// BusAddress is the system bus address the client uses, for messages.
func BusAddress() string {
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a
	}
	return "unix:path=/run/dbus/system_bus_socket"
}

// Close closes the connections.
func (c *Client) Close() {
	c.systemd.Close()
	if c.machined != nil {
		c.machined.Close()
	}
}

// Reload is `systemctl daemon-reload`: systemd reruns its generators
// (strata-generator among them) and reloads every unit. It returns when
// systemd has finished reloading.
func (c *Client) Reload(ctx context.Context) error {
	if err := c.systemd.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	return nil
}

// machinedConn returns the connection used for machined, dialling it on
// first use. go-systemd's machine1 package is not used: it has no context
// support (a hung machined would hang the CLI past Ctrl-C) and always opens
// its own connection without one.
func (c *Client) machinedConn() (*dbus.Conn, error) {
	if c.machined != nil {
		return c.machined, nil
	}
	conn, err := dbus.SystemBusPrivate(dbus.WithContext(c.ctx))
	if err != nil {
		return nil, fmt.Errorf("connecting to the system bus (%s): %w", BusAddress(), err)
	}
	// EXTERNAL with the numeric uid, as go-systemd does: no user name
	// lookup, so the static (no cgo) binary needs no NSS.
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticating on the system bus: %w", err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("system bus hello: %w", err)
	}
	c.machined = conn
	return conn, nil
}

// dbusErrorName returns the D-Bus error name of err ("" if it is not one).
func dbusErrorName(err error) string {
	var e dbus.Error
	if errors.As(err, &e) {
		return e.Name
	}
	var pe *dbus.Error
	if errors.As(err, &pe) {
		return pe.Name
	}
	return ""
}
