package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/state"
)

// A check of a container that does not run fails (machinectl, the real
// one, knows no leader); failures count in a row up to retries, then the
// container is unhealthy; --reset starts over; the gate gives up after its
// time with the reason.
func TestHealthRecords(t *testing.T) {
	var buf bytes.Buffer
	n := &node{root: t.TempDir(), log: newLogger(&buf, false)}
	ctx := context.Background()
	c := contract.Health{Container: "strata-test-no-such-machine", Retries: 2, OnFailure: "none", Timeout: "5s", Command: []string{"/bin/true"}}
	record := func() state.Health {
		t.Helper()
		h, ok, err := n.state().Health(c.Container)
		if err != nil || !ok {
			t.Fatalf("no health record: %v", err)
		}
		return h
	}

	if err := n.health(ctx, contract.Health{Container: c.Container, Reset: true}); err != nil {
		t.Fatal(err)
	}
	if h := record(); h.Status != state.HealthStarting || !h.LastCheck.IsZero() {
		t.Errorf("after --reset: %+v", h)
	}
	for i, want := range []string{state.HealthStarting, state.HealthUnhealthy, state.HealthUnhealthy} {
		if err := n.health(ctx, c); err != nil {
			t.Fatal(err)
		}
		h := record()
		if h.Status != want || h.Failures != i+1 || h.LastExit != -1 || !strings.Contains(h.Output, "is not running") {
			t.Errorf("after %d failed checks: %+v, want status %s", i+1, h, want)
		}
	}
	if !strings.Contains(buf.String(), "container strata-test-no-such-machine is unhealthy: 2 failed health checks in a row (on_failure is none)") {
		t.Errorf("the log does not say it is unhealthy:\n%s", buf.String())
	}

	gate := c
	gate.Gate = "1s"
	start := time.Now()
	err := n.health(ctx, gate)
	if err == nil || !strings.Contains(err.Error(), "is not healthy 1s after it started") {
		t.Errorf("gate: %v", err)
	}
	if d := time.Since(start); d < time.Second || d > 10*time.Second {
		t.Errorf("the gate gave up after %s, want about 1s", d)
	}
}
