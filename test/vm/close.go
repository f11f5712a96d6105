package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/strata-project/strata/test/harness"
)

// Close powers the VM off (systemctl poweroff inside, bounded by ShutdownTimeout), then
// kills qemu if it is still there and removes the work directory. Safe to call twice.
func (v *VM) Close() error {
	v.closeOnce.Do(func() { v.closeErr = v.close() })
	return v.closeErr
}

func (v *VM) close() error {
	var problems []string
	if v.qemu != nil && !v.qemu.Exited() {
		t0 := time.Now()
		if v.bootID != "" {
			// The agent answered: a clean power-off through systemd.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err := v.Run(ctx, "systemctl", "--no-block", "poweroff")
			cancel()
			if err == nil || v.qemu.Exited() {
				select {
				case <-v.qemu.Done():
				case <-time.After(v.opts.ShutdownTimeout):
				}
			}
			if v.qemu.Exited() {
				v.t.Logf("vm %s: powered off in %s", v.name, time.Since(t0).Round(time.Millisecond))
			} else {
				problems = append(problems, fmt.Sprintf("no clean power-off within %s: qemu killed", v.opts.ShutdownTimeout))
			}
		}
		// A boot that failed before the agent answered has been reported already.
		v.qemu.Stop(syscall.SIGTERM, 5*time.Second)
	}
	if v.conn != nil {
		v.conn.Close()
	}
	if v.qemu != nil && !v.qemu.Exited() {
		problems = append(problems, fmt.Sprintf("qemu (pid %d) still running after SIGKILL", v.qemu.PID()))
	}
	if v.t.Failed() && v.workDir != "" {
		v.t.Logf("vm %s: console log tail:\n%s", v.name, harness.Tail(v.console, 80))
	}
	if v.workDir != "" && os.Getenv("STRATA_VM_KEEP") != "1" {
		if err := os.RemoveAll(v.workDir); err != nil {
			problems = append(problems, err.Error())
		}
	} else if v.workDir != "" {
		v.t.Logf("vm %s: kept %s", v.name, v.workDir)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
