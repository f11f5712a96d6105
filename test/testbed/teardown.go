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

// stop shuts the container down (reboot: through `systemctl reboot`, else SIGTERM to
// nspawn, which halts the container), kills what is left in its cgroups and removes
// them.
func (tb *Testbed) stop(ctx context.Context, reboot bool) error {
	tb.mu.Lock()
	running, nspawn, execCG := tb.running, tb.nspawn, tb.execCG
	tb.mu.Unlock()
	var errs []error
	if running {
		pid, done := nspawn.PID(), nspawn.Done()
		t0 := time.Now()
		select {
		case <-done:
		default:
			// Which loop devices are the container's, while its mount table can be read:
			// after shutdown, those still attached were leaked.
			if leader := tb.Leader(); leader != 0 {
				own, ambiguous := loopsOfContainer(leader)
				tb.mu.Lock()
				tb.ownLoops = append(tb.ownLoops, own...)
				tb.sharedLoops = append(tb.sharedLoops, ambiguous...)
				tb.mu.Unlock()
			}
			if reboot {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				// The command may be killed as the container goes down: ignore its result.
				_, _ = tb.Run(rctx, "systemctl", "--no-block", "reboot")
				cancel()
			} else {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
		timer := time.NewTimer(tb.opts.ShutdownTimeout)
		select {
		case <-done:
		case <-timer.C:
			errs = append(errs, fmt.Errorf("container did not shut down within %v; killed it", tb.opts.ShutdownTimeout))
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for _, d := range tb.cgroupDirs() {
				killCgroup(d, 5*time.Second)
			}
			<-done
		}
		timer.Stop()
		werr := nspawn.Err()
		tb.mu.Lock()
		tb.running = false
		tb.leader = 0
		tb.execCG = nil
		tb.mu.Unlock()
		if execCG != nil {
			execCG.Close()
		}
		want := 0
		if reboot {
			want = 133 // nspawn's exit status when the container asked for a reboot
		}
		var ee *exec.ExitError
		switch {
		case werr == nil && want == 0:
		case errors.As(werr, &ee) && ee.ExitCode() == want:
		default:
			tb.t.Logf("testbed %s: systemd-nspawn exited with %v (expected status %d)", tb.name, werr, want)
		}
		tb.t.Logf("testbed %s: %s took %v", tb.name, map[bool]string{true: "reboot shutdown", false: "shutdown"}[reboot], time.Since(t0).Round(time.Millisecond))
	}
	// Leftovers: processes still in the testbed's cgroups (e.g. started by Exec).
	for _, d := range tb.cgroupDirs() {
		if pids := cgroupPIDs(d); len(pids) > 0 {
			var desc []string
			for _, p := range pids {
				desc = append(desc, fmt.Sprintf("%d(%s)", p, procComm(p)))
			}
			tb.t.Logf("testbed %s: killing leftover processes in %s: %s", tb.name, d, strings.Join(desc, " "))
		}
		if left := killCgroup(d, 10*time.Second); len(left) > 0 {
			errs = append(errs, fmt.Errorf("processes survive SIGKILL in %s: %v", d, left))
		}
		if err := removeCgroup(d, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("testbed %s: stop: %w", tb.name, errors.Join(errs...))
	}
	return nil
}

// checkLoops waits briefly for the loop devices the container had attached when it was
// stopped to be released (autoclear devices go when their last user does), then
// detaches those still bound to the same file and describes them: the container leaked
// them. Loop devices of the host or of other testbeds are never touched.
func (tb *Testbed) checkLoops() []string {
	tb.mu.Lock()
	own, shared := tb.ownLoops, tb.sharedLoops
	tb.ownLoops, tb.sharedLoops = nil, nil
	tb.mu.Unlock()
	attached := func(autoclearOnly bool) []loopFile {
		var out []loopFile
		for _, lf := range own {
			if (lf.autoclear() || !autoclearOnly) && lf.stillAttached() {
				out = append(out, lf)
			}
		}
		return out
	}
	_ = harness.Poll(2*time.Second, 20*time.Millisecond, func() bool { return len(attached(true)) == 0 })
	for _, lf := range shared {
		if lf.stillAttached() {
			tb.t.Logf("testbed %s: /dev/loop%d is still attached to %s, a file that other containers or the host see too: it may be this testbed's leak, or theirs; left alone",
				tb.name, lf.Index, lf.Backing)
		}
	}
	var out []string
	for _, lf := range attached(false) {
		msg := fmt.Sprintf("loop device /dev/loop%d was left attached to %s", lf.Index, lf.Backing)
		if err := detachLoop(lf.Index); err != nil {
			msg += fmt.Sprintf(" (detach failed: %v)", err)
		} else {
			msg += " (detached it)"
			tb.mu.Lock()
			tb.detached = append(tb.detached, lf)
			tb.mu.Unlock()
		}
		out = append(out, msg)
	}
	return out
}

// Close shuts the testbed down and cleans up the host: powers the container off and
// waits, kills leftovers by cgroup and removes the cgroups, detaches loop devices it had
// bound in that are still attached and removes the ones it created, removes its work
// directory, then checks that nothing it owned is left on the host (mounts, loop devices,
// cgroups, processes). Every problem is reported with t.Errorf and returned. Boot
// registers Close with t.Cleanup; calling it earlier is fine, later calls do nothing.
func (tb *Testbed) Close() error {
	tb.mu.Lock()
	if tb.closed {
		tb.mu.Unlock()
		return tb.closeErr
	}
	tb.closed = true
	tb.mu.Unlock()

	t0 := time.Now()
	var problems []string
	ctx, cancel := context.WithTimeout(context.Background(), tb.opts.ShutdownTimeout+30*time.Second)
	defer cancel()
	logPath := tb.ConsoleLog()
	if err := tb.stop(ctx, false); err != nil {
		problems = append(problems, err.Error())
	}
	problems = append(problems, tb.checkLoops()...)
	for _, err := range releaseLoops(tb.loops) {
		problems = append(problems, err.Error())
	}
	if tb.t.Failed() && logPath != "" {
		tb.t.Logf("testbed %s: console log (last lines of %s):\n%s", tb.name, logPath, harness.Tail(logPath, 40))
	}
	if os.Getenv("STRATA_TESTBED_KEEP") == "1" {
		tb.t.Logf("testbed %s: keeping %s", tb.name, tb.workDir)
	} else if err := os.RemoveAll(tb.workDir); err != nil {
		problems = append(problems, fmt.Sprintf("removing %s: %v", tb.workDir, err))
	}
	problems = append(problems, tb.leaks(tb.before)...)
	for _, h := range tb.hier {
		removeIfEmptyParent(filepath.Join(h.Mount, cgroupParent))
	}
	if tb.rootLock != nil {
		tb.rootLock.Close() // drops the flock
	}
	for _, p := range problems {
		tb.t.Errorf("testbed %s: %s", tb.name, p)
	}
	var err error
	if len(problems) > 0 {
		err = fmt.Errorf("testbed %s: teardown: %s", tb.name, strings.Join(problems, "; "))
	}
	tb.t.Logf("testbed %s: teardown took %v", tb.name, time.Since(t0).Round(time.Millisecond))
	tb.mu.Lock()
	tb.closeErr = err
	tb.mu.Unlock()
	return err
}
