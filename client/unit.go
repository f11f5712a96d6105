package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/strata-project/strata/internal/layout"
)

// Unit is one unit as systemd reports it: the properties the CLI shows and
// those it needs to walk the chain and to tell whether a unit will stop.
type Unit struct {
	Name        string
	Description string
	LoadState   string // loaded, not-found, bad-setting, masked, ...
	ActiveState string // active, inactive, failed, activating, deactivating, reloading
	SubState    string // per type: running, exited, mounted, dead, failed, ...
	// Result is how the last run of a service or mount ended: success,
	// exit-code, signal, timeout, resources, ... ("" for other types).
	Result string
	// What and Where are a mount unit's device and mount point.
	What, Where string
	// SourcePath is the file the unit was generated from: for Strata's
	// units, the definition.
	SourcePath  string
	DropInPaths []string
	// StopWhenUnneeded: systemd stops the unit once nothing active needs
	// it. Everything Strata generates below a container has it.
	StopWhenUnneeded bool
	// Requires lists Requires= and BindsTo=: the units this one cannot run
	// without, i.e. its children in the chain.
	Requires []string
	// NeededBy lists the units whose being active keeps this one from being
	// unneeded: the reverse of Requires=, Requisite=, Wants=, BindsTo= and
	// Upholds= (what systemd looks at for StopWhenUnneeded=).
	NeededBy []string
	// JobType is the type of the unit's pending job (start, stop, ...), ""
	// when there is none. Filled in by Chain (GetAll has only the job's id).
	JobType string
	// StateChange is when ActiveState last changed (zero if never).
	StateChange time.Time
	// NeedDaemonReload: a file the unit was loaded from (for Strata's
	// units, the definition) changed on disk since systemd loaded it.
	NeedDaemonReload bool
	// AtBoot: a target started at boot wants the unit (machines.target,
	// from the definition's state "running" or systemctl enable).
	AtBoot bool
	// InvocationID identifies the unit's current (or last) run in the
	// journal (_SYSTEMD_INVOCATION_ID), "" if it never ran.
	InvocationID string
}

// bootTargets are the targets whose wants start a container at boot.
var bootTargets = []string{"machines.target", "multi-user.target", "default.target", "graphical.target"}

// Failed reports whether systemd holds the unit in the failed state.
func (u *Unit) Failed() bool { return u.ActiveState == "failed" }

// IsMount reports whether the unit is a mount unit.
func (u *Unit) IsMount() bool { return strings.HasSuffix(u.Name, ".mount") }

// HasStrataDropIn reports whether systemd loaded Strata's drop-in for this
// (container) unit, i.e. whether the unit is Strata's container and not
// the bare systemd-nspawn@.service template.
func (u *Unit) HasStrataDropIn() bool {
	for _, p := range u.DropInPaths {
		if strings.HasSuffix(p, "/"+u.Name+".d/"+layout.DropInName) {
			return true
		}
	}
	return false
}

// Image is what an attach unit attaches, as its description names it
// ("RBD image rbd/base@v3", "loop device for /srv/base.sqfs", "iSCSI LUN 0
// of iqn..."); "" for other units.
func (u *Unit) Image() string {
	if !strings.HasPrefix(u.Name, "strata-attach@") {
		return ""
	}
	return strings.TrimPrefix(u.Description, "Strata ")
}

// Unit reads one unit's properties. systemd loads a unit on access, so an
// unknown name is not an error: its LoadState says "not-found".
func (c *Client) Unit(ctx context.Context, name string) (*Unit, error) {
	// The empty interface name asks for every interface's properties in
	// one call: the generic Unit ones and the type's (Service, Mount).
	props, err := c.systemd.GetAllPropertiesContext(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reading unit %s: %w", name, err)
	}
	return unitFromProps(name, props), nil
}

// unitFromProps picks the properties the CLI uses out of a GetAll reply.
func unitFromProps(name string, p map[string]any) *Unit {
	u := &Unit{
		Name:             name,
		Description:      str(p["Description"]),
		LoadState:        str(p["LoadState"]),
		ActiveState:      str(p["ActiveState"]),
		SubState:         str(p["SubState"]),
		Result:           str(p["Result"]),
		SourcePath:       str(p["SourcePath"]),
		DropInPaths:      strs(p["DropInPaths"]),
		StopWhenUnneeded: p["StopWhenUnneeded"] == true,
		NeedDaemonReload: p["NeedDaemonReload"] == true,
		InvocationID:     invocationID(p["InvocationID"]),
	}
	for _, t := range strs(p["WantedBy"]) {
		u.AtBoot = u.AtBoot || slices.Contains(bootTargets, t)
	}
	if u.IsMount() {
		u.What, u.Where = str(p["What"]), str(p["Where"])
	}
	u.Requires = union(strs(p["Requires"]), strs(p["BindsTo"]))
	u.NeededBy = union(strs(p["RequiredBy"]), strs(p["RequisiteOf"]), strs(p["WantedBy"]), strs(p["BoundBy"]), strs(p["UpheldBy"]))
	if us, ok := p["StateChangeTimestamp"].(uint64); ok && us != 0 {
		u.StateChange = time.UnixMicro(int64(us))
	}
	return u
}

// unitState is the part of a unit that changes while jobs run.
type unitState struct {
	ActiveState, SubState, JobType string
}

// states reads the current states of many units in one call
// (ListUnitsByNames also answers for units that are not loaded).
func (c *Client) states(ctx context.Context, names []string) (map[string]unitState, error) {
	list, err := c.systemd.ListUnitsByNamesContext(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("reading unit states: %w", err)
	}
	out := make(map[string]unitState, len(list))
	for _, s := range list {
		out[s.Name] = stateOf(s)
	}
	return out, nil
}

func stateOf(s sddbus.UnitStatus) unitState {
	return unitState{ActiveState: s.ActiveState, SubState: s.SubState, JobType: s.JobType}
}

// invocationID formats the InvocationID property (16 bytes) as the
// journal writes it: 32 hex digits, "" when all zero.
func invocationID(v any) string {
	b, _ := v.([]byte)
	if len(b) == 0 || !slices.ContainsFunc(b, func(x byte) bool { return x != 0 }) {
		return ""
	}
	return hex.EncodeToString(b)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func strs(v any) []string {
	s, _ := v.([]string)
	return s
}

// union concatenates lists, dropping repeats, keeping first-seen order.
func union(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}
