package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/state"
)

// healthPath is the PATH a check runs with in the container, whatever
// the helper's own environment holds.
const healthPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// health runs one check and acts on the result, or, with Gate, holds
// the container's start until a check passes, or forgets past results.
func (n *node) health(ctx context.Context, c contract.Health) error {
	if c.Reset {
		return n.state().PutHealth(state.Health{Name: c.Container, Status: state.HealthStarting})
	}
	timeout, err := span("--timeout", c.Timeout)
	if err != nil {
		return err
	}
	if c.Gate != "" {
		return n.healthGate(ctx, c, timeout)
	}
	h := n.check(ctx, c, timeout)
	if err := n.state().PutHealth(h); err != nil {
		return err
	}
	if h.Status == state.HealthUnhealthy {
		return n.onFailure(ctx, c, h)
	}
	return nil
}

// span reads a time span as the definition wrote it (systemd.time(7)'s
// subset that definition.ParseSpan and systemd both read the same way).
func span(flag, s string) (time.Duration, error) {
	d, ok := definition.ParseSpan(s)
	if !ok {
		return 0, fmt.Errorf("%s=%s: not a time span such as 30s, 5min or 1min 30s", flag, s)
	}
	return d, nil
}

// healthGate checks every second until a check passes (the start
// succeeds) or the gate's time is over (the start fails): the container
// is ready only once healthy. At least one check runs.
func (n *node) healthGate(ctx context.Context, c contract.Health, timeout time.Duration) error {
	period, err := span("--gate", c.Gate)
	if err != nil {
		return err
	}
	end := time.Now().Add(period)
	for {
		h := n.check(ctx, contract.Health{Container: c.Container, Retries: 0, Command: c.Command}, timeout)
		if h.Status == state.HealthHealthy {
			return n.state().PutHealth(h)
		}
		if time.Now().After(end) || ctx.Err() != nil {
			h.Status = state.HealthStarting
			_ = n.state().PutHealth(h)
			return fmt.Errorf("container %s is not healthy %s after it started (last check: exit status %d%s): not ready", c.Container, period, h.LastExit, said(h.Output))
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// check runs the command once in the container and returns the new
// record: the previous one with this result.
func (n *node) check(ctx context.Context, c contract.Health, timeout time.Duration) state.Health {
	h, _, err := n.state().Health(c.Container)
	if err != nil {
		n.logf("the health record of %s is unreadable (%v): starting over", c.Container, err)
	}
	h.Name = c.Container
	exit, out := n.runCheck(ctx, c, timeout)
	h.LastCheck, h.LastExit, h.Output = time.Now().UTC(), exit, out
	switch {
	case exit == 0:
		h.Status, h.Failures = state.HealthHealthy, 0
	default:
		h.Failures++
		if h.Failures >= c.Retries && c.Retries > 0 {
			h.Status = state.HealthUnhealthy
		}
		n.logf("health check of %s failed (%d in a row, exit status %d)%s", c.Container, h.Failures, exit, said(out))
	}
	if h.Status == "" {
		h.Status = state.HealthStarting
	}
	return h
}

// runCheck runs the command in every namespace of the container's leader
// process; exit status -1 when it could not run or timed out.
func (n *node) runCheck(ctx context.Context, c contract.Health, timeout time.Duration) (int, string) {
	leader, err := machineLeader(ctx, c.Container)
	if err != nil {
		return -1, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--target=" + leader, "--all", "--"}, c.Command...)...)
	cmd.Env = []string{healthPath}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return -1, fmt.Sprintf("timed out after %s", timeout)
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), tail(out.String())
	case err != nil:
		return -1, err.Error()
	}
	return 0, tail(out.String())
}

// machineLeader is the PID of the container's init, as machined knows it.
func machineLeader(ctx context.Context, name string) (string, error) {
	out, err := exec.CommandContext(ctx, "machinectl", "show", "--property=Leader", "--value", name).Output()
	leader := strings.TrimSpace(string(out))
	if err != nil || leader == "" || leader == "0" {
		return "", fmt.Errorf("container %s is not running (machinectl knows no leader process)", name)
	}
	return leader, nil
}

// onFailure applies the definition's on_failure to an unhealthy
// container. --no-block: the container's restart stops this check's
// timer, which must not wait for this check.
func (n *node) onFailure(ctx context.Context, c contract.Health, h state.Health) error {
	unit := "systemd-nspawn@" + c.Container + ".service"
	doing := map[string]string{"restart": "restarting", "stop": "stopping"}
	verb := c.OnFailure
	if doing[verb] == "" {
		n.log.warnf("container %s is unhealthy: %d failed health checks in a row (on_failure is none)", c.Container, h.Failures)
		return nil
	}
	n.log.warnf("container %s is unhealthy: %d failed health checks in a row; %s %s", c.Container, h.Failures, doing[verb], unit)
	if out, err := exec.CommandContext(ctx, "systemctl", verb, "--no-block", unit).CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl %s %s: %v: %s", verb, unit, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// tail keeps the last lines a check printed, enough to say why it failed.
func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 512 {
		s = "…" + s[len(s)-512:]
	}
	return s
}

func said(out string) string {
	if out == "" {
		return ""
	}
	return ": " + strings.ReplaceAll(out, "\n", " | ")
}
