//go:build integration

package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/strata-project/strata/test/testbed"
)

// withFields is demo (a loopback squashfs under a tmpfs overlay, systemd
// booted inside) with more top-level fields.
func withFields(fields string) string {
	return strings.Replace(demo, `"state": "created",`, `"state": "created",`+fields+`,`, 1)
}

// A device node passed in is there and usable inside the container; a
// node of the same kind that is not passed in does not exist there. The
// template's DeviceAllow= list already holds loop devices (block-loop), so
// a character device it does not hold shows that the definition's
// DeviceAllow= is what lets the container open a node.
func TestDevices(t *testing.T) {
	// systemd enforces DevicePolicy= with a BPF program, and nspawn's
	// system call filter keeps bpf(2) from the testbed's systemd, which
	// then enforces nothing.
	n := boot(t, testbed.Options{LoopDevices: 6, ExtraArgs: []string{"--system-call-filter=bpf"}})
	n.run("sh", "-c", "printf strata-device-ok > /root/passed.img && truncate -s 1M /root/passed.img && truncate -s 1M /root/other.img")
	passed := n.run("losetup", "--find", "--show", "--read-only", "/root/passed.img")
	other := n.run("losetup", "--find", "--show", "/root/other.img")
	t.Cleanup(func() { n.try("losetup", "--detach", passed); n.try("losetup", "--detach", other) })
	// The kernel's cpu_dma_latency (misc, 10:N; reading it gives the
	// current limit, 4 bytes, and changes nothing) under a name of its own.
	const char = "/dev/strata-latency"
	n.run("sh", "-c", "mknod "+char+" c $(tr : ' ' < /sys/class/misc/cpu_dma_latency/dev)")
	if tmpl := n.run("systemctl", "cat", "systemd-nspawn@.service"); strings.Contains(tmpl, "char-misc") || strings.Contains(tmpl, "/dev/cpu_dma_latency") {
		t.Fatalf("the template allows %s already: it cannot show that Strata's DeviceAllow= is needed:\n%s", char, tmpl)
	}
	if out, code := n.try("systemd-run", "--property=DevicePolicy=closed", "--wait", "--pipe", "--quiet", "/usr/bin/od", "-N4", char); code == 0 {
		t.Fatalf("the testbed's systemd does not enforce DevicePolicy=closed (read %s: %q): it cannot show that DeviceAllow= is needed", char, out)
	}

	n.define("dev.json", withFields(`"devices": [{"path": "`+passed+`", "permissions": "r"}, {"path": "`+char+`", "permissions": "r"}]`))
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@dev.service")
	t.Cleanup(func() { n.try("systemctl", "stop", "systemd-nspawn@dev.service") })

	allow := n.run("systemctl", "show", "--property=DeviceAllow", "systemd-nspawn@dev.service")
	for _, want := range []string{passed + " r", char + " r"} {
		if !strings.Contains(allow, want) {
			t.Errorf("DeviceAllow of the container unit does not hold %s: %s", want, allow)
		}
	}
	if out, code := n.try("systemd-run", "--machine=dev", "--wait", "--pipe", "--quiet", "/usr/bin/od", "-An", "-td4", "-N4", char); code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("reading %s in the container: exit %d, %q", char, code, out)
	}
	out, code := n.try("systemd-run", "--machine=dev", "--wait", "--pipe", "--quiet", "/bin/dd", "if="+passed, "bs=16", "count=1", "status=none")
	if code != 0 || !strings.HasPrefix(out, "strata-device-ok") {
		t.Errorf("reading %s in the container: exit %d, %q", passed, code, out)
	}
	if out, code := n.try("systemd-run", "--machine=dev", "--wait", "--pipe", "--quiet", "/bin/ls", "-l", other); code == 0 {
		t.Errorf("%s, not passed in, exists in the container: %s", other, out)
	}
}

// A passing health check shows healthy in strata status; a failing one
// restarts the container after retries failures in a row.
func TestHealth(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.run("sh", "-c", "mkdir -p /srv/health && touch /srv/health/ok")
	n.define("hc.json", withFields(`"binds": [{"source": "/srv/health", "target": "/health"}],
  "health": {"command": "/bin/test -e /health/ok", "interval": "2s", "start_period": "1s", "retries": 2, "on_failure": "restart"}`))
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@hc.service")
	t.Cleanup(func() { n.try("systemctl", "stop", "systemd-nspawn@hc.service") })

	n.waitUntil("strata status to show hc healthy", func() (bool, string) {
		out, _ := n.try("strata", "status", "--json", "hc")
		var s struct {
			Health *struct {
				Status   string `json:"status"`
				LastExit int    `json:"last_exit"`
			} `json:"health"`
		}
		if err := json.Unmarshal([]byte(out), &s); err != nil || s.Health == nil {
			return false, out
		}
		return s.Health.Status == "healthy", out
	})
	if out := n.run("strata", "status", "hc"); !strings.Contains(out, "Health:     healthy") {
		t.Errorf("strata status does not say healthy:\n%s", out)
	}

	before := n.run("systemctl", "show", "--property=InvocationID", "--value", "systemd-nspawn@hc.service")
	n.run("rm", "/srv/health/ok")
	n.waitUntil("the failing health check to restart hc", func() (bool, string) {
		now, _ := n.try("systemctl", "show", "--property=InvocationID", "--value", "systemd-nspawn@hc.service")
		return now != before && now != "", "InvocationID " + now
	})
	if out, _ := n.try("journalctl", "--unit=strata-health@hc.service", "--no-pager", "--output=cat"); !strings.Contains(out, "is unhealthy: 2 failed health checks in a row; restarting systemd-nspawn@hc.service") {
		t.Errorf("the health service's journal does not say why it restarted hc:\n%s", out)
	}
}

// With gate_ready, the container's start waits for a passing check: it
// fails when none passes within start_period, and once one passes the
// container is healthy as soon as its start returns.
func TestHealthGate(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.run("mkdir", "-p", "/srv/health")
	n.define("gate.json", withFields(`"binds": [{"source": "/srv/health", "target": "/health"}],
  "health": {"command": "/bin/test -e /health/ok", "interval": "1min", "start_period": "3s", "gate_ready": true}`))
	n.run("systemctl", "daemon-reload")
	t.Cleanup(func() { n.try("systemctl", "stop", "systemd-nspawn@gate.service") })

	if out, code := n.try("systemctl", "start", "systemd-nspawn@gate.service"); code == 0 {
		t.Errorf("the start succeeded without a passing health check: %s", out)
	}
	if out, _ := n.try("journalctl", "--unit=systemd-nspawn@gate.service", "--no-pager", "--output=cat"); !strings.Contains(out, "container gate is not healthy 3s after it started (last check: exit status 1): not ready") {
		t.Errorf("the failed start does not say why:\n%s", out)
	}

	n.run("touch", "/srv/health/ok")
	n.run("systemctl", "start", "systemd-nspawn@gate.service")
	out := n.run("strata", "status", "--json", "gate")
	var s struct {
		Health *struct {
			Status string `json:"status"`
		} `json:"health"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Health == nil || s.Health.Status != "healthy" {
		t.Errorf("right after a gated start, status is not healthy (%v):\n%s", err, out)
	}
}
