package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"tags.cncf.io/container-device-interface/pkg/cdi"
	specs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/internal/layout"
)

// cdiResolve resolves a container's CDI devices from the specs on this
// node now (they change without a daemon-reload), allows their device
// nodes on the container unit and writes the nspawn options they need.
// What nspawn cannot do as CDI means it is refused, never half applied.
func (n *node) cdiResolve(ctx context.Context, c contract.CDI) error {
	cache, err := cdi.NewCache(cdi.WithSpecDirs(n.at(cdi.DefaultStaticDir), n.at(cdi.DefaultDynamicDir)), cdi.WithAutoRefresh(false))
	if err != nil && cache == nil {
		return fmt.Errorf("reading the CDI specs: %v", err)
	}
	var edits []specs.ContainerEdits
	for _, name := range c.Devices {
		d := cache.GetDevice(name)
		if d == nil {
			return fmt.Errorf("CDI device %s is in no spec under %s or %s%s: install the vendor's spec or fix the name in the definition", name, cdi.DefaultStaticDir, cdi.DefaultDynamicDir, specErrors(cache))
		}
		edits = append(edits, d.GetSpec().ContainerEdits, d.ContainerEdits)
	}
	var args, allow []string
	for _, e := range edits {
		a, al, err := nspawnEdits(e)
		if err != nil {
			return fmt.Errorf("CDI devices %s: %v", strings.Join(c.Devices, ", "), err)
		}
		args, allow = append(args, a...), append(allow, al...)
	}
	if err := n.allowDevices(ctx, c.Container, dedupe(allow)); err != nil {
		return err
	}
	return writeEnvFile(c.EnvFile, dedupe(args))
}

// nspawnEdits turns one set of CDI container edits into nspawn options and
// DeviceAllow= values.
func nspawnEdits(e specs.ContainerEdits) (args, allow []string, err error) {
	switch {
	case len(e.Hooks) > 0:
		return nil, nil, fmt.Errorf("the spec asks for OCI hooks (%s), which systemd-nspawn has no place for: Strata refuses them rather than run the container without them", e.Hooks[0].HookName)
	case len(e.NetDevices) > 0:
		return nil, nil, fmt.Errorf("the spec moves network devices in, which Strata does not do: use nspawn_args (--network-interface=)")
	case e.IntelRdt != nil:
		return nil, nil, fmt.Errorf("the spec sets Intel RDT, which systemd-nspawn cannot")
	case len(e.AdditionalGIDs) > 0:
		return nil, nil, fmt.Errorf("the spec adds group IDs to the container's process, which systemd-nspawn cannot")
	}
	for _, kv := range e.Env {
		args = append(args, "--setenv="+kv)
	}
	for _, d := range e.DeviceNodes {
		host := d.HostPath
		if host == "" {
			host = d.Path
		}
		perms := d.Permissions
		if perms == "" {
			perms = "rwm"
		}
		args = append(args, "--bind="+host+":"+d.Path)
		allow = append(allow, host+" "+perms)
	}
	for _, m := range e.Mounts {
		if m.Type != "" && m.Type != "bind" && !slices.Contains(m.Options, "bind") && !slices.Contains(m.Options, "rbind") {
			return nil, nil, fmt.Errorf("mount of %s is of type %q: Strata passes bind mounts only", m.ContainerPath, m.Type)
		}
		opt := "--bind="
		if slices.Contains(m.Options, "ro") {
			opt = "--bind-ro="
		}
		args = append(args, opt+m.HostPath+":"+m.ContainerPath)
	}
	for _, a := range args {
		if i := strings.IndexAny(a, " \t\n\"'\\$"); i >= 0 {
			return nil, nil, fmt.Errorf("%q holds %q, which the unit's command line cannot carry from the environment file", a, a[i])
		}
		if strings.HasPrefix(a, "--bind") && strings.Count(a, ":") > 1 {
			return nil, nil, fmt.Errorf("%q: a path holds ':', which systemd-nspawn --bind reads as the end of a path", a)
		}
	}
	return args, allow, nil
}

// allowDevices adds DeviceAllow= entries to the (starting) container unit:
// the template's DevicePolicy=closed allows only its own list, and the
// generator does not know these nodes. set-property applies them now; the
// drop-in it leaves would pin the whole list as it is now (a reset, then
// every entry) over the generator's at the next reload, so it is replaced
// by one that only adds this start's entries.
func (n *node) allowDevices(ctx context.Context, container string, allow []string) error {
	unit := layout.ContainerUnit(container)
	dropIn := n.at(layout.DeviceAllowDropIn(container))
	if len(allow) == 0 {
		if err := os.Remove(dropIn); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	args := []string{"set-property", "--runtime", unit}
	for _, a := range allow {
		args = append(args, "DeviceAllow="+a)
	}
	if out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("allowing the CDI device nodes on %s: systemctl %s: %v: %s", unit, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	var b strings.Builder
	b.WriteString("# Written by strata-helper cdi at the last start of " + unit + ": its CDI device nodes.\n[Service]\n")
	for _, a := range allow {
		b.WriteString("DeviceAllow=" + strings.ReplaceAll(a, "%", "%%") + "\n")
	}
	if err := os.WriteFile(dropIn, []byte(b.String()), 0o644); err != nil {
		return err
	}
	n.logf("allowed %s on %s", strings.Join(allow, ", "), unit)
	return nil
}

// writeEnvFile writes the options as STRATA_CDI_ARGS, which ExecStart=
// splices in as words (systemd splits it at white space).
func writeEnvFile(path string, args []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("STRATA_CDI_ARGS=\""+strings.Join(args, " ")+"\"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// specErrors says why specs were unusable, as a hint when a device is missing.
func specErrors(cache *cdi.Cache) string {
	var msgs []string
	for path, errs := range cache.GetErrors() {
		for _, e := range errs {
			msgs = append(msgs, path+": "+e.Error())
		}
	}
	slices.Sort(msgs)
	if len(msgs) == 0 {
		return ""
	}
	return " (unusable specs: " + strings.Join(msgs, "; ") + ")"
}

func dedupe(s []string) []string {
	var out []string
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
