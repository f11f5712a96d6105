package client

import (
	"context"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	machinedName    = "org.freedesktop.machine1"
	machinedPath    = "/org/freedesktop/machine1"
	machinedManager = "org.freedesktop.machine1.Manager"
	machinedMachine = "org.freedesktop.machine1.Machine"
)

// Machine is a container as machined has it registered (systemd-nspawn
// registers it: --register=yes in Strata's drop-in).
type Machine struct {
	Name          string
	Class         string // container
	Service       string // who registered it: "systemd-nspawn"
	Unit          string // the unit it runs in: systemd-nspawn@NAME.service
	State         string // opening, running, closing
	Leader        uint32 // PID of the container's init, as seen from the managed system
	RootDirectory string
	Since         time.Time
}

// Machine returns the machine registered under name, or nil when there is
// none (the container is not running, or machined is not installed).
func (c *Client) Machine(ctx context.Context, name string) (*Machine, error) {
	conn, err := c.machinedConn()
	if err != nil {
		return nil, err
	}
	var path dbus.ObjectPath
	// GetMachine bus-activates machined when it is not running, as
	// machinectl does.
	err = conn.Object(machinedName, machinedPath).CallWithContext(ctx, machinedManager+".GetMachine", 0, name).Store(&path)
	switch dbusErrorName(err) {
	case "":
	case "org.freedesktop.machine1.NoSuchMachine", "org.freedesktop.DBus.Error.ServiceUnknown":
		return nil, nil
	default:
		return nil, fmt.Errorf("asking machined for machine %s: %w", name, err)
	}
	var props map[string]dbus.Variant
	err = conn.Object(machinedName, path).CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, machinedMachine).Store(&props)
	if dbusErrorName(err) == "org.freedesktop.DBus.Error.UnknownObject" {
		return nil, nil // it went away between the two calls
	} else if err != nil {
		return nil, fmt.Errorf("reading machine %s: %w", name, err)
	}
	return machineFromProps(props), nil
}

func machineFromProps(p map[string]dbus.Variant) *Machine {
	get := func(k string) any { return p[k].Value() }
	m := &Machine{
		Name:          str(get("Name")),
		Class:         str(get("Class")),
		Service:       str(get("Service")),
		Unit:          str(get("Unit")),
		State:         str(get("State")),
		RootDirectory: str(get("RootDirectory")),
	}
	m.Leader, _ = get("Leader").(uint32)
	if us, ok := get("Timestamp").(uint64); ok && us != 0 {
		m.Since = time.UnixMicro(int64(us))
	}
	return m
}
