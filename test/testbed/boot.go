package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/strata-project/strata/test/harness"
)

func (tb *Testbed) nspawnArgs() []string {
	a := []string{
		"--register=no", // no machined on the host
		"--keep-unit",   // no host systemd to create a scope
		"--boot",
		"-M", tb.name,
		"--private-network", // off every network
		"--console=read-only",
	}
	if tb.opts.Persistent {
		a = append(a, "-D", filepath.Join(tb.workDir, "state", "merged"))
	} else {
		a = append(a, "-D", tb.root, "--volatile=overlay")
	}
	if len(tb.loops) > 0 {
		a = append(a, "--bind=/dev/loop-control")
		for _, d := range tb.loops {
			a = append(a, "--bind="+d.Path)
		}
	}
	for _, b := range tb.opts.Binds {
		flag := "--bind="
		if b.ReadOnly {
			flag = "--bind-ro="
		}
		a = append(a, flag+b.Host+":"+b.Guest)
	}
	return append(a, tb.opts.ExtraArgs...)
}

// wrapperScript runs as the first process inside the private mount namespace (unshare
// execs it, it execs nspawn: one PID throughout). It mounts a fresh /run (the host's /run
// is on disk and nspawn leaves /run/systemd/nspawn/* behind), mounts the persistent
// overlay when asked, moves itself into the testbed's cgroups (so nspawn's payload/ and
// supervisor/ go there, not to the hierarchy root) and execs nspawn.
const wrapperScript = `set -e
mount -t tmpfs -o mode=0755,size=64m strata-testbed-run /run
if [ -n "$TB_OVERLAY_OPTS" ]; then
	mount -t overlay strata-testbed-root -o "$TB_OVERLAY_OPTS" "$TB_OVERLAY_DIR"
fi
IFS=:
for f in $TB_CGROUP_PROCS; do echo $$ >"$f"; done
unset IFS TB_OVERLAY_OPTS TB_OVERLAY_DIR TB_CGROUP_PROCS
exec systemd-nspawn "$@"
`

func (tb *Testbed) start(ctx context.Context) (err error) {
	tb.mu.Lock()
	if tb.running {
		tb.mu.Unlock()
		return fmt.Errorf("testbed %s: already running", tb.name)
	}
	tb.boots++
	boot := tb.boots
	tb.mu.Unlock()

	// Own cgroups, plus a leaf for Exec'd processes in the cgroup2 hierarchy.
	var procs []string
	var execCG *os.File
	for _, h := range tb.hier {
		dir := filepath.Join(h.Mount, cgroupParent, tb.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("testbed %s: cgroup: %w", tb.name, err)
		}
		procs = append(procs, filepath.Join(dir, "cgroup.procs"))
		if h.Unified && execCG == nil {
			if err := os.Mkdir(filepath.Join(dir, "exec"), 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("testbed %s: cgroup: %w", tb.name, err)
			}
			if execCG, err = os.Open(filepath.Join(dir, "exec")); err != nil {
				return fmt.Errorf("testbed %s: cgroup: %w", tb.name, err)
			}
		}
	}
	defer func() {
		if err != nil && execCG != nil {
			// stop() closes it once the testbed was marked running.
			tb.mu.Lock()
			if tb.execCG != execCG {
				execCG.Close()
			}
			tb.mu.Unlock()
		}
	}()

	logPath := filepath.Join(tb.workDir, fmt.Sprintf("console-%d.log", boot))
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testbed %s: %w", tb.name, err)
	}
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=" + map[bool]string{false: "1", true: "0"}[tb.opts.CgroupV1],
		// No image lock file (.#ROOT.lck beside the root: nspawn cannot remove it while
		// another testbed holds it shared, so it stays on the host). The root is guarded by
		// ROOT.lock and is only ever a read-only lower layer.
		"SYSTEMD_NSPAWN_LOCK=0",
		"TB_CGROUP_PROCS=" + strings.Join(procs, ":"),
	}
	if tb.opts.Persistent {
		st := filepath.Join(tb.workDir, "state")
		env = append(env,
			fmt.Sprintf("TB_OVERLAY_OPTS=lowerdir=%s,upperdir=%s,workdir=%s", tb.root, filepath.Join(st, "upper"), filepath.Join(st, "work")),
			"TB_OVERLAY_DIR="+filepath.Join(st, "merged"))
	}
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", wrapperScript, "strata-testbed"}, tb.nspawnArgs()...)...)
	cmd.Env = env
	fmt.Fprintf(logFile, "# testbed %s boot %d: %s\n", tb.name, boot, strings.Join(cmd.Args[:5], " ")+" ... "+strings.Join(tb.nspawnArgs(), " "))
	logFile.Close()
	// SIGTERM (nspawn: shut the container down) if the test process dies without
	// tearing down.
	nspawn, err := harness.Start(cmd, syscall.SIGTERM, logPath)
	if err != nil {
		return fmt.Errorf("testbed %s: starting nspawn: %w", tb.name, err)
	}
	t0 := time.Now()
	tb.mu.Lock()
	tb.running = true
	tb.nspawn = nspawn
	tb.leader = 0
	tb.execCG = execCG
	tb.logPath = logPath
	tb.timing = BootTiming{}
	tb.mu.Unlock()

	fail := func(stage string, err error) error {
		msg := fmt.Sprintf("testbed %s: boot %d: %s: %v", tb.name, boot, stage, err)
		if extra := tb.diagnose(); extra != "" {
			msg += "\n" + extra
		}
		msg += "\nconsole log (" + logPath + ", last lines):\n" + harness.Tail(logPath, 60)
		return errors.New(msg)
	}
	// 1. The container's PID 1: the child of nspawn that is PID 1 in its PID namespace
	//    and has exec'd systemd.
	leader, err := waitNspawn(ctx, nspawn, func() (int, bool) {
		for _, c := range childrenOf(cmd.Process.Pid) {
			if comm := procComm(c); (comm == "systemd" || comm == "init") && procNSPidIsOne(c) {
				return c, true
			}
		}
		return 0, false
	})
	if err != nil {
		return fail("waiting for the container's PID 1", err)
	}
	tLeader := time.Since(t0)
	tb.mu.Lock()
	tb.leader = leader
	tb.mu.Unlock()
	// 2. The manager's private socket (systemctl's transport).
	_, err = waitNspawn(ctx, nspawn, func() (int, bool) {
		return 0, harness.FileExists(fmt.Sprintf("/proc/%d/root/run/systemd/private", leader))
	})
	if err != nil {
		return fail("waiting for /run/systemd/private", err)
	}
	tManager := time.Since(t0)
	// 3. Boot finished.
	res, err := tb.Run(ctx, "systemctl", "is-system-running", "--wait")
	if err != nil {
		return fail("systemctl is-system-running --wait", err)
	}
	state := strings.TrimSpace(res.Stdout)
	tRunning := time.Since(t0)
	tb.mu.Lock()
	tb.timing = BootTiming{Leader: tLeader, Manager: tManager, Running: tRunning}
	tb.mu.Unlock()
	switch {
	case state == "running":
	case state == "degraded" && tb.opts.AllowDegraded:
		tb.t.Logf("testbed %s: boot %d ended degraded:\n%s", tb.name, boot, tb.diagnose())
	default:
		return fail("system state", fmt.Errorf("%q (want running)%s", state, strings.TrimSpace("\n"+res.Stderr)))
	}
	// 4. D-Bus: the system bus must be up (tests talk to systemd and machined through it).
	res, err = tb.Run(ctx, "systemctl", "is-active", "dbus.service")
	if err != nil || strings.TrimSpace(res.Stdout) != "active" {
		if err == nil {
			err = fmt.Errorf("dbus.service is %q", strings.TrimSpace(res.Stdout))
		}
		return fail("D-Bus", err)
	}
	if !harness.FileExists(tb.Path("/run/dbus/system_bus_socket")) {
		return fail("D-Bus", errors.New("no /run/dbus/system_bus_socket"))
	}
	tb.t.Logf("testbed %s: boot %d: running after %v (PID 1 after %v, manager socket after %v)",
		tb.name, boot, tRunning.Round(time.Millisecond), tLeader.Round(time.Millisecond), tManager.Round(time.Millisecond))
	return nil
}

// waitNspawn polls check every 10 ms until it succeeds, nspawn exits or ctx ends.
func waitNspawn(ctx context.Context, nspawn *harness.Daemon, check func() (int, bool)) (int, error) {
	var v int
	err := harness.Until(ctx, 0, 10*time.Millisecond, nspawn.Done(), func() error {
		return fmt.Errorf("systemd-nspawn exited (%v)", nspawn.Err())
	}, func() bool {
		var ok bool
		v, ok = check()
		return ok
	})
	return v, err
}

// diagnose collects failed units and the tail of the journal, when the manager answers.
func (tb *Testbed) diagnose() string {
	tb.mu.Lock()
	ok := tb.running && tb.leader != 0 && harness.FileExists(fmt.Sprintf("/proc/%d/root/run/systemd/private", tb.leader))
	tb.mu.Unlock()
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	if res, err := tb.Run(ctx, "systemctl", "list-units", "--failed", "--no-legend", "--plain"); err == nil {
		fmt.Fprintf(&b, "failed units:\n%s", res.Stdout)
	}
	if res, err := tb.Run(ctx, "journalctl", "-b", "-p", "warning", "--no-pager", "-n", "40"); err == nil {
		fmt.Fprintf(&b, "journal (warnings and worse, last 40):\n%s", res.Stdout)
	}
	return b.String()
}

// Reboot restarts the container as a real reboot would (`systemctl reboot` inside,
// then nspawn is started again) and waits until systemd is running again. What
// survives: the Binds, and with Options.Persistent every change to the root file
// system; with the default --volatile=overlay, changes to the root are lost. The
// leader's PID, Path and SystemBusAddress change.
func (tb *Testbed) Reboot(ctx context.Context) error {
	if err := tb.stop(ctx, true); err != nil {
		return err
	}
	if leaked := tb.checkLoops(); len(leaked) > 0 {
		return fmt.Errorf("testbed %s: after shutdown: %s", tb.name, strings.Join(leaked, "; "))
	}
	bctx, cancel := context.WithTimeout(ctx, tb.opts.BootTimeout)
	defer cancel()
	return tb.start(bctx)
}
