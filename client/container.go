package client

import (
	"context"
	"fmt"
	"strings"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/internal/layout"
)

// Container is the systemd side of one container: its unit chain and, while
// it runs, its machine.
type Container struct {
	Name    string
	Chain   *Chain
	Machine *Machine // nil when not registered with machined
}

// Unit returns the container's own unit (systemd-nspawn@NAME.service).
func (ct *Container) Unit() *Unit { return ct.Chain.Root() }

// Container reads the chain and machine of container name.
func (c *Client) Container(ctx context.Context, name string) (*Container, error) {
	ch, err := c.Chain(ctx, name)
	if err != nil {
		return nil, err
	}
	ct := &Container{Name: name, Chain: ch}
	// Only a started unit can have a machine: asking machined about stopped
	// ones would only bus-activate it for nothing.
	if s := ch.Root().ActiveState; s != "inactive" && s != "failed" {
		if ct.Machine, err = c.Machine(ctx, name); err != nil {
			return nil, err
		}
	}
	return ct, nil
}

// unitFor returns the container unit of name, checking the name first so
// that a bad argument gets a clear error rather than a D-Bus one.
func unitFor(name string) (string, error) {
	if p := definition.MachineNameProblem(name); p != "" {
		return "", fmt.Errorf("%q is not a container name: %s", name, p)
	}
	return layout.ContainerUnit(name), nil
}

// Loaded returns the names of the containers whose unit systemd has loaded
// and that are not inactive: with a definition or, since a removal, without
// one (the CLI lists both). The caller checks which are Strata's.
func (c *Client) Loaded(ctx context.Context) ([]string, error) {
	list, err := c.systemd.ListUnitsByPatternsContext(ctx, nil, []string{layout.ContainerUnit("*")})
	if err != nil {
		return nil, fmt.Errorf("listing container units: %w", err)
	}
	var out []string
	for _, u := range list {
		if u.ActiveState == "inactive" {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(u.Name, "systemd-nspawn@"), ".service")
		if definition.MachineNameProblem(name) == "" {
			out = append(out, name)
		}
	}
	return out, nil
}
