package gc

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Systemctl asks the service manager through systemctl(1): the helper runs
// inside units, where systemctl is always there and D-Bus may not be yet.
type Systemctl struct{ Timeout time.Duration }

func (s Systemctl) run(args ...string) ([]byte, error) {
	t := s.Timeout
	if t <= 0 {
		t = 90 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), t)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "systemctl", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// States implements Systemd.
func (s Systemctl) States(units []string) (map[string]State, error) {
	out, err := s.run(append([]string{"show", "--property=ActiveState,MainPID", "--"}, units...)...)
	if err != nil {
		return nil, err
	}
	states := map[string]State{}
	for i, block := range strings.Split(strings.TrimSpace(string(out)), "\n\n") {
		var st State
		for _, l := range strings.Split(block, "\n") {
			if v, ok := strings.CutPrefix(l, "ActiveState="); ok {
				st.Active = v
			}
			if v, ok := strings.CutPrefix(l, "MainPID="); ok {
				st.MainPID, _ = strconv.Atoi(v)
			}
		}
		if i < len(units) {
			states[units[i]] = st // in the order asked
		}
	}
	return states, nil
}

// List implements Systemd.
func (s Systemctl) List(pattern string) ([]Unit, error) {
	out, err := s.run("list-units", "--all", "--plain", "--no-legend", "--full", "--", pattern)
	if err != nil {
		return nil, err
	}
	var us []Unit
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "●"))
		if len(f) >= 3 {
			us = append(us, Unit{Name: f[0], Load: f[1], Active: f[2]})
		}
	}
	return us, sc.Err()
}

// Stop implements Systemd.
func (s Systemctl) Stop(unit string, wait bool) error {
	args := []string{"stop"}
	if !wait {
		args = append(args, "--no-block")
	}
	_, err := s.run(append(args, "--", unit)...)
	return err
}

// ResetFailed implements Systemd.
func (s Systemctl) ResetFailed(unit string) error {
	_, err := s.run("reset-failed", "--", unit)
	return err
}
