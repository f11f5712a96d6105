package client

import (
	"context"
	"sort"
	"strings"

	"github.com/strata-project/strata/internal/layout"
)

// chainPrefixes are the names of the units Strata generates below a
// container: its services (attach, clean-up, upper), layer and upper
// mounts (under /run/strata) and root mounts (under /var/lib/machines).
// Everything else a unit requires (-.mount, system slices, the template's
// modprobe services) belongs to the system, not to the container's chain.
var chainPrefixes = []string{layout.ServicePrefix, layout.RunMountPrefix, layout.MachinesMountPrefix}

// InChain reports whether a unit name is one Strata generates below a container.
func InChain(name string) bool {
	for _, p := range chainPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Chain is a container's unit and every Strata unit it transitively
// requires, as systemd has them loaded.
type Chain struct {
	Container string           // systemd-nspawn@NAME.service
	Units     map[string]*Unit // by name, the container's unit included
}

// Chain reads the chain of container name from systemd: its unit's
// Requires=/BindsTo=, followed through the units Strata generates. It
// works whatever the definitions say now (a definition edited or removed
// since the last daemon-reload still shows the chain systemd runs).
func (c *Client) Chain(ctx context.Context, name string) (*Chain, error) {
	root, err := unitFor(name)
	if err != nil {
		return nil, err
	}
	ch, err := walk(ctx, root, c.Unit)
	if err != nil {
		return nil, err
	}
	// GetAll does not give a pending job's type; one listing call for the
	// whole chain does.
	st, err := c.states(ctx, ch.Names())
	if err != nil {
		return nil, err
	}
	for n, s := range st {
		if u := ch.Units[n]; u != nil {
			u.JobType = s.JobType
		}
	}
	return ch, nil
}

// walk builds the chain below root with get, which reads one unit. It is
// separate from Client.Chain so that it can be tested without a bus.
func walk(ctx context.Context, root string, get func(context.Context, string) (*Unit, error)) (*Chain, error) {
	ch := &Chain{Container: root, Units: map[string]*Unit{}}
	var visit func(name string) error
	visit = func(name string) error {
		if _, seen := ch.Units[name]; seen {
			return nil // shared below two parents, or a cycle: read once
		}
		u, err := get(ctx, name)
		if err != nil {
			return err
		}
		ch.Units[name] = u
		for _, d := range u.Requires {
			if InChain(d) {
				if err := visit(d); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := visit(root); err != nil {
		return nil, err
	}
	return ch, nil
}

// Names returns the names of the chain's units, the container's first,
// then the others sorted.
func (ch *Chain) Names() []string {
	out := []string{ch.Container}
	var rest []string
	for n := range ch.Units {
		if n != ch.Container {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// Root returns the container's unit.
func (ch *Chain) Root() *Unit { return ch.Units[ch.Container] }

// Below returns the units name requires directly within the chain,
// sorted by name.
func (ch *Chain) Below(name string) []*Unit {
	u := ch.Units[name]
	if u == nil {
		return nil
	}
	var out []*Unit
	for _, d := range u.Requires {
		if du := ch.Units[d]; du != nil && d != name {
			out = append(out, du)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lower returns every unit of the chain except the container's, sorted.
func (ch *Chain) Lower() []*Unit {
	var out []*Unit
	for _, n := range ch.Names()[1:] {
		out = append(out, ch.Units[n])
	}
	return out
}

// Mounts returns the chain's mount units in tree order, top down: the
// root mount first, then the layers, then the upper.
func (ch *Chain) Mounts() []*Unit {
	var out []*Unit
	seen := map[string]bool{}
	var visit func(n *Node)
	visit = func(n *Node) {
		if n.IsMount() && !seen[n.Name] {
			seen[n.Name] = true
			out = append(out, n.Unit)
		}
		for _, c := range n.Children {
			visit(c)
		}
	}
	visit(ch.Tree())
	return out
}

// Failed returns the chain's units in the failed state, the container's
// first.
func (ch *Chain) Failed() []*Unit {
	var out []*Unit
	for _, n := range ch.Names() {
		if u := ch.Units[n]; u.Failed() {
			out = append(out, u)
		}
	}
	return out
}

// Node is a unit in the chain's tree: the container at the top, each
// unit's children the units it requires.
type Node struct {
	*Unit
	Children []*Node
}

// Tree returns the chain as a tree rooted at the container's unit, each
// unit once (which also cuts a cycle, which the generator never writes).
func (ch *Chain) Tree() *Node {
	// Each unit once, under the first parent that reaches it: the upper
	// layer also requires the layers (so that it waits for them), which
	// would show every layer twice.
	placed := map[string]bool{}
	var build func(name string) *Node
	build = func(name string) *Node {
		n := &Node{Unit: ch.Units[name]}
		placed[name] = true
		for _, c := range ch.Below(name) {
			if !placed[c.Name] {
				n.Children = append(n.Children, build(c.Name))
			}
		}
		return n
	}
	return build(ch.Container)
}
