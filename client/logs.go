package client

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// LogsOptions are strata logs' choices of what to show, passed on to
// journalctl as they are.
type LogsOptions struct {
	Follow bool   // -f: keep showing new lines
	Lines  int    // -n: the last Lines lines only; < 0 for all
	Since  string // --since, in journalctl's own syntax ("" for no bound)
}

// LogsCommand is the journalctl command line that shows a container's
// chain: every unit of ch, each in all its runs (not only the current
// one, unlike Journal: an operator reading logs wants the earlier
// attempts too), interleaved by time. `-u UNIT` matches a unit's processes,
// systemd's messages about it and the helper's entries that name it
// (OBJECT_SYSTEMD_UNIT).
func (c *Client) LogsCommand(ch *Chain, o LogsOptions) []string {
	args := c.journalctlCommand(o)
	for _, n := range ch.Names() {
		args = append(args, "--unit="+n)
	}
	return args
}

// MachineLogsCommand is the journalctl command line that shows the
// machine's own journal (what the container's systemd logs inside), read
// below the root of its leader as `journalctl -M NAME` does, which works
// only while the machine runs. Unlike -M, it also works when the managed
// system is a container seen from its host (c.root).
func (c *Client) MachineLogsCommand(m *Machine, o LogsOptions) []string {
	args := []string{journalctl, "--root=" + filepath.Join(c.root, "/proc", strconv.FormatUint(uint64(m.Leader), 10), "root")}
	return append(args, options(o)...)
}

func (c *Client) journalctlCommand(o LogsOptions) []string {
	args := []string{journalctl}
	if c.root != "" {
		args = append(args, "--root="+c.root)
	}
	return append(args, options(o)...)
}

func options(o LogsOptions) []string {
	var args []string
	if o.Follow {
		args = append(args, "--follow")
	}
	if o.Lines >= 0 {
		args = append(args, fmt.Sprintf("--lines=%d", o.Lines))
	}
	if o.Since != "" {
		args = append(args, "--since="+o.Since)
	}
	return args
}
