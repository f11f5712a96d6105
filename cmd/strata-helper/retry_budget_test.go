package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/helpers/krbd"
	"github.com/strata-project/strata/units"
)

// The map's retries, the wait for the device node and the wait for udev's
// link must together end before systemd fails the attach unit: a failure
// the helper reports says why, a time-out kills it mid-attempt.
func TestMapRetriesFitTheAttachUnit(t *testing.T) {
	b, err := units.Static.ReadFile(units.StaticDir + "/strata-attach@.service")
	if err != nil {
		t.Fatal(err)
	}
	limit := timeoutStartSec(t, b)
	used := krbd.DefaultRetry.Budget + krbd.DefaultDeviceTimeout + stableLinkTimeout
	if used >= limit {
		t.Errorf("map budget %s + device node %s + udev link %s = %s, not under the attach unit's TimeoutStartSec=%s",
			krbd.DefaultRetry.Budget, krbd.DefaultDeviceTimeout, stableLinkTimeout, used, limit)
	}
}

// timeoutStartSec reads TimeoutStartSec= in the "3min" or "90s" forms the
// template uses.
func timeoutStartSec(t *testing.T, unit []byte) time.Duration {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "TimeoutStartSec=")
		if !ok {
			continue
		}
		d, err := time.ParseDuration(strings.Replace(v, "min", "m", 1))
		if err != nil {
			t.Fatalf("TimeoutStartSec=%s: %v", v, err)
		}
		return d
	}
	t.Fatal("the attach template has no TimeoutStartSec=")
	return 0
}
