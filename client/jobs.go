package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/strata-project/strata/internal/layout"
)

// JournalLines is how many journal lines come with each failed unit.
const JournalLines = 10

// StopWait bounds how long Stop waits for the lower units of a chain: they
// stop as separate jobs after the container (StopWhenUnneeded=), so the
// container's stop job returns first.
const StopWait = 60 * time.Second

// ErrNotStrata is returned when systemd has no Strata drop-in for a
// container: the name is not defined, or systemd was not reloaded since.
var ErrNotStrata = errors.New("not a Strata container")

// Failure is a unit of a chain in the failed state and what its journal
// says about it.
type Failure struct {
	Unit       *Unit
	Journal    []string // the last JournalLines lines, oldest first
	JournalErr error    // why Journal is empty, when reading it failed
}

// JobError is a start, stop or restart job on a container's unit that did
// not end "done", with the units of its chain that are failed.
type JobError struct {
	Action   string // start, stop, restart
	Unit     string
	Result   string // failed, dependency, timeout, canceled, skipped, ...
	Failures []Failure
}

func (e *JobError) Error() string {
	msg := fmt.Sprintf("%s %s: job %s", e.Action, e.Unit, e.Result)
	if why := JobResultMeaning(e.Result); why != "" {
		msg += " (" + why + ")"
	}
	if len(e.Failures) > 0 {
		var names []string
		for _, f := range e.Failures {
			names = append(names, f.Unit.Name)
		}
		msg += "; failed: " + strings.Join(names, ", ")
	}
	return msg
}

// JobResultMeaning explains a job result the way systemctl does.
func JobResultMeaning(result string) string {
	switch result {
	case "failed":
		return "the unit failed"
	case "dependency":
		return "a unit it requires failed"
	case "timeout":
		return "the job timed out"
	case "canceled":
		return "another job canceled it"
	case "skipped":
		return "it did not apply to the unit's state"
	case "invalid":
		return "it did not apply to the unit"
	}
	return ""
}

// Start starts container name (mode "replace", as systemctl start). With
// wait, it waits for the job and returns a *JobError when it does not end
// "done"; otherwise it returns once the job is queued.
func (c *Client) Start(ctx context.Context, name string, wait bool) error {
	return c.job(ctx, "start", name, wait)
}

// Restart restarts container name; see Start.
func (c *Client) Restart(ctx context.Context, name string, wait bool) error {
	return c.job(ctx, "restart", name, wait)
}

// Kept is a unit of a stopped container's chain that stays active because
// other active units need it (a layer shared with a running container).
type Kept struct {
	Unit string
	By   []string // the active units that need it
}

// StopError is a container that stopped, but not cleanly: its own unit
// ended with another result than success (it was killed after its stop
// time-out, say), or lower units failed on the way down, or were still
// active, though nothing needed them, when the wait ended.
type StopError struct {
	Unit     string
	Result   string // the container unit's result when not success
	Failures []Failure
	Stuck    []string
}

func (e *StopError) Error() string {
	var parts []string
	if e.Result != "" {
		parts = append(parts, "it ended with result "+e.Result)
		if why := UnitResultMeaning(e.Result); why != "" {
			parts[0] += " (" + why + ")"
		}
	}
	if len(e.Failures) > 0 {
		var names []string
		for _, f := range e.Failures {
			names = append(names, f.Unit.Name)
		}
		parts = append(parts, "failed while stopping: "+strings.Join(names, ", "))
	}
	if len(e.Stuck) > 0 {
		parts = append(parts, fmt.Sprintf("still active after %s: %s", StopWait, strings.Join(e.Stuck, ", ")))
	}
	return fmt.Sprintf("stop %s: the container stopped, but %s", e.Unit, strings.Join(parts, "; "))
}

// UnitResultMeaning explains a service's Result property (how its last
// run ended) the way systemctl status does.
func UnitResultMeaning(result string) string {
	switch result {
	case "timeout":
		return "it did not stop within its time-out and was killed"
	case "signal":
		return "its main process was killed by a signal"
	case "core-dump":
		return "its main process dumped core"
	case "exit-code":
		return "its main process exited with a non-zero status"
	case "watchdog":
		return "its watchdog timed out"
	case "oom-kill":
		return "the kernel's out-of-memory killer killed a process"
	case "resources":
		return "systemd could not set it up"
	}
	return ""
}

// Stop stops container name. With wait, it waits for the container's stop
// job, then (up to StopWait) for the lower units of its chain to stop,
// and returns the units other containers keep active. A job that does not
// end "done" is a *JobError; lower units that fail or stay active are a
// *StopError.
func (c *Client) Stop(ctx context.Context, name string, wait bool) ([]Kept, error) {
	unit, err := unitFor(name)
	if err != nil {
		return nil, err
	}
	// The chain is read before stopping: which units to wait for, and which
	// were already failed (an old failure is not this stop's).
	before, err := c.Chain(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := c.runJob(ctx, "stop", unit, name, wait); err != nil || !wait {
		return nil, err
	}
	// The job is "done" even when systemd had to kill the container: its
	// unit's Result says how it ended.
	ended, err := c.stopResult(ctx, before.Root())
	if err != nil {
		return nil, err
	}
	kept, err := c.waitLower(ctx, before, StopWait)
	if ended == nil {
		return kept, err
	}
	se := &StopError{Unit: unit}
	if err != nil && !errors.As(err, &se) {
		return kept, err
	}
	se.Result = ended.Unit.Result
	se.Failures = append([]Failure{*ended}, se.Failures...)
	return kept, se
}

// stopResult reads how a container unit that was running before a stop
// ended: nil for a clean stop (or one that was not running, whose old
// result is not this stop's), else the unit with its journal.
func (c *Client) stopResult(ctx context.Context, before *Unit) (*Failure, error) {
	if before.ActiveState == "inactive" || before.ActiveState == "failed" {
		return nil, nil
	}
	u, err := c.Unit(ctx, before.Name)
	if err != nil {
		return nil, err
	}
	if u.Result == "" || u.Result == "success" {
		return nil, nil
	}
	f := c.failure(ctx, u, true)
	return &f, nil
}

// job checks that name is a Strata container, then runs the job.
func (c *Client) job(ctx context.Context, action, name string, wait bool) error {
	unit, err := unitFor(name)
	if err != nil {
		return err
	}
	u, err := c.Unit(ctx, unit)
	if err != nil {
		return err
	}
	// Without the drop-in, starting the unit would boot whatever is in
	// /var/lib/machines/NAME with the template's settings: not Strata's
	// container. Stop has no such check: stopping is always safe.
	if !u.HasStrataDropIn() {
		return fmt.Errorf("%s: %w: systemd has no %s drop-in for %s (is %q defined, and was systemd reloaded since? see strata list, strata reload)",
			name, ErrNotStrata, layout.DropInName, unit, name)
	}
	return c.runJob(ctx, action, unit, name, wait)
}

// runJob queues a job in mode "replace" and, with wait, waits for its
// result.
func (c *Client) runJob(ctx context.Context, action, unit, name string, wait bool) error {
	var done chan string
	if wait {
		// Buffered: go-systemd's signal dispatcher blocks on this send, and
		// must not when we have given up waiting (Ctrl-C).
		done = make(chan string, 1)
	}
	var err error
	switch action {
	case "start":
		_, err = c.systemd.StartUnitContext(ctx, unit, "replace", done)
	case "stop":
		_, err = c.systemd.StopUnitContext(ctx, unit, "replace", done)
	case "restart":
		_, err = c.systemd.RestartUnitContext(ctx, unit, "replace", done)
	default:
		return fmt.Errorf("unknown job %q", action)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", action, unit, err)
	}
	if !wait {
		return nil
	}
	var result string
	select {
	case result = <-done:
	case <-ctx.Done():
		return fmt.Errorf("%s %s: stopped waiting (the job goes on): %w", action, unit, ctx.Err())
	}
	if result == "done" {
		return nil
	}
	e := &JobError{Action: action, Unit: unit, Result: result}
	ch, err := c.Chain(ctx, name)
	if err != nil {
		return errors.Join(e, err)
	}
	for _, u := range ch.Failed() {
		e.Failures = append(e.Failures, c.failure(ctx, u, true))
	}
	return e
}

// failure reads the journal of a failed unit. fresh says the unit failed
// just now, so the journal may still be catching up (see journalAfter).
func (c *Client) failure(ctx context.Context, u *Unit, fresh bool) Failure {
	f := Failure{Unit: u}
	if fresh {
		f.Journal, f.JournalErr = c.journalAfter(ctx, u, JournalLines, u.StateChange)
	} else {
		f.Journal, f.JournalErr = c.Journal(ctx, u, JournalLines)
	}
	return f
}

// Failures returns the failed units of a chain with their journal lines.
func (c *Client) Failures(ctx context.Context, ch *Chain) []Failure {
	var out []Failure
	for _, u := range ch.Failed() {
		out = append(out, c.failure(ctx, u, false))
	}
	return out
}

// waitLower waits until every lower unit of a stopped container's chain
// is inactive, failed, or kept active by units outside the stop.
func (c *Client) waitLower(ctx context.Context, before *Chain, limit time.Duration) ([]Kept, error) {
	var lower []string
	wasFailed := map[string]bool{}
	neededBy := map[string][]string{}
	var names []string
	for _, u := range before.Lower() {
		// Only StopWhenUnneeded units stop by themselves; the generator
		// sets it on all of them, but a local override could remove it.
		if !u.StopWhenUnneeded {
			continue
		}
		lower = append(lower, u.Name)
		wasFailed[u.Name] = u.Failed()
		neededBy[u.Name] = u.NeededBy
		names = append(names, u.Name)
		names = append(names, u.NeededBy...)
	}
	if len(lower) == 0 {
		return nil, nil
	}
	names = union(names)
	deadline := time.Now().Add(limit)
	var waiting []string
	var kept []Kept
	var st map[string]unitState
	nudged := map[string]bool{}
	for {
		var err error
		if st, err = c.states(ctx, names); err != nil {
			return nil, err
		}
		waiting, kept = settle(lower, neededBy, st)
		if len(waiting) == 0 || time.Now().After(deadline) {
			break
		}
		for _, n := range orphans(waiting, neededBy, st) {
			if !nudged[n] {
				nudged[n] = true
				// Mode "fail": never replace a start job someone queued
				// meanwhile (a container starting that shares the unit).
				// An error means such a job exists: nothing to do.
				_, _ = c.systemd.StopUnitContext(ctx, n, "fail", nil)
			}
		}
		select {
		case <-ctx.Done():
			return kept, fmt.Errorf("waiting for %s to stop: %w", strings.Join(waiting, ", "), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	e := &StopError{Unit: before.Container, Stuck: waiting}
	for _, n := range lower {
		if st[n].ActiveState == "failed" && !wasFailed[n] {
			u, err := c.Unit(ctx, n)
			if err != nil {
				return kept, err
			}
			e.Failures = append(e.Failures, c.failure(ctx, u, true))
		}
	}
	if len(e.Failures) > 0 || len(e.Stuck) > 0 {
		return kept, e
	}
	return kept, nil
}

// settle sorts the lower units of a stopping chain: those still to stop
// (waiting) and those other units keep active (kept). A unit is kept when
// a unit that needs it (neededBy) is itself kept, or is outside the chain
// and active or about to be (a job other than stop): what systemd checks
// before stopping a StopWhenUnneeded= unit. Units inactive or failed are
// neither: they are done.
func settle(lower []string, neededBy map[string][]string, st map[string]unitState) (waiting []string, kept []Kept) {
	inLower := map[string]bool{}
	for _, n := range lower {
		inLower[n] = true
	}
	memo := map[string][]string{}
	visiting := map[string]bool{}
	// keepers returns the units that keep n active (nil: none).
	var keepers func(n string) []string
	keepers = func(n string) []string {
		if by, ok := memo[n]; ok {
			return by
		}
		if visiting[n] {
			return nil // a cycle keeps nothing by itself
		}
		visiting[n] = true
		var by []string
		for _, d := range neededBy[n] {
			s, known := st[d]
			if !known {
				continue
			}
			if inLower[d] {
				if !down(st[d]) && len(keepers(d)) > 0 {
					by = append(by, d)
				}
			} else if needs(s) {
				by = append(by, d)
			}
		}
		visiting[n] = false
		memo[n] = by
		return by
	}
	for _, n := range lower {
		if down(st[n]) {
			continue
		}
		if by := keepers(n); len(by) > 0 {
			sort.Strings(by)
			kept = append(kept, Kept{Unit: n, By: by})
		} else {
			waiting = append(waiting, n)
		}
	}
	return waiting, kept
}

// orphans returns the waiting units that systemd has not queued a stop
// for although everything that could need them is down. systemd checks
// StopWhenUnneeded= for a unit when it, or a unit that needs it, changes
// state; not when a job that needed it fails. So when a start fails for a
// dependency (the attach service of a missing image) after a sibling
// finished starting (the upper service), nothing above the sibling
// changes state, and systemd 252 leaves it running: seen in the testbed.
// Stopping such a unit is what systemd would have done; stopping only
// units whose dependents are all down keeps the order right (a layer is
// never unmounted under a mounted overlay).
func orphans(waiting []string, neededBy map[string][]string, st map[string]unitState) []string {
	var out []string
	for _, n := range waiting {
		if st[n].JobType != "" {
			continue // a job is queued: systemd is on it
		}
		free := true
		for _, d := range neededBy[n] {
			if s, known := st[d]; known && !down(s) {
				free = false
				break
			}
		}
		if free {
			out = append(out, n)
		}
	}
	return out
}

// down: inactive or failed, with no job that would change it.
func down(s unitState) bool {
	return (s.ActiveState == "inactive" || s.ActiveState == "failed") && s.JobType == ""
}

// needs reports whether a unit in state s keeps the units it requires
// from being stopped as unneeded.
func needs(s unitState) bool {
	if s.JobType != "" {
		return s.JobType != "stop"
	}
	return s.ActiveState != "inactive" && s.ActiveState != "failed"
}
