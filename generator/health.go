package generator

import (
	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/units"
)

// health gives a container with a health check a timer and a service,
// started with the container (Wants=) and stopped with it (BindsTo=).
// The checks' results live under /run/strata/state/health, forgotten at
// each start; gate_ready holds the start until a check passes.
func (b *builder) health(container *units.Unit) {
	h, name := b.d.Container.Health, b.d.Name
	if h == nil {
		return
	}
	words, _ := definition.SplitCommand(h.Command) // validated
	// The helper reads Go's spelling of durations, not systemd's.
	check := contract.Health{Container: name, Retries: int(h.Retries), OnFailure: h.OnFailure, Timeout: h.Timeout, Command: words}

	container.Add("Unit", "Wants", layout.HealthTimer(name))
	container.AddExecMayFail("Service", "ExecStartPre", contract.Argv(contract.Health{Container: name, Reset: true})...)
	if h.GateReady {
		gate := check
		gate.Gate = h.StartPeriod
		container.AddExec("Service", "ExecStartPost", contract.Argv(gate)...)
	}

	t := units.New(layout.HealthTimer(name))
	t.Add("Unit", "Description", "Strata health checks of container "+name)
	t.Add("Unit", "Documentation", "man:strata.definition(5)")
	t.Add("Unit", "BindsTo", layout.ContainerUnit(name))
	t.Add("Unit", "After", layout.ContainerUnit(name))
	first := h.StartPeriod
	if first == "0" {
		first = "1s" // a timer needs a positive delay
	}
	t.Add("Timer", "OnActiveSec", first)
	t.Add("Timer", "OnUnitActiveSec", h.Interval)
	t.Add("Timer", "AccuracySec", "1s")
	b.s.add(t)

	s := units.New(layout.HealthUnit(name))
	s.Add("Unit", "Description", "Strata health check of container "+name)
	s.Add("Unit", "Documentation", "man:strata.definition(5)")
	s.Add("Service", "Type", "oneshot")
	// The helper bounds the check by its timeout and acts on the result;
	// a failed check is a result, recorded, not a failure of this unit.
	s.Add("Service", "TimeoutStartSec", "infinity")
	s.AddExec("Service", "ExecStart", contract.Argv(check)...)
	b.s.add(s)
}
