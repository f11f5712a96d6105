package client

import (
	"context"
	"fmt"

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
