package generator

import (
	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/units"
)

// cdiVariable is the variable of that file that the command line splices in.
const cdiVariable = "STRATA_CDI_ARGS"

// cdi resolves the container's CDI devices at each start, not here: the
// specs under /etc/cdi and /var/run/cdi change without a daemon-reload,
// and the generator must not read what drivers write. The helper
// (ExecStartPre=) resolves them, allows their device nodes on this unit
// (DeviceAllow= at run time) and writes the nspawn options they need into
// an environment file that ExecStart= splices in as words.
func (b *builder) cdi(u *units.Unit, argv []string, at int) {
	name := b.d.Name
	env := layout.CDIEnvFile(name)
	u.AddExec("Service", "ExecStartPre", contract.Argv(contract.CDI{Container: name, Devices: b.d.Container.CDI, EnvFile: env})...)
	// "-": systemd reads the file before every command, the helper's
	// too, which writes it; the helper's own failure fails the start.
	u.Add("Service", "EnvironmentFile", "-"+env)
	u.AddExecSplice("Service", "ExecStart", argv, at, cdiVariable)
}
