package client

import (
	"strings"
	"testing"
)

func TestLogsCommand(t *testing.T) {
	ch, err := walk(t.Context(), "systemd-nspawn@demo.service", fakeGet(demoUnits(), &[]string{}))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join((&Client{}).LogsCommand(ch, LogsOptions{Lines: -1}), " ")
	// The container first, then its chain: every run, no invocation match.
	want := "journalctl"
	for _, n := range ch.Names() {
		want += " --unit=" + n
	}
	if got != want || !strings.Contains(got, " --unit=systemd-nspawn@demo.service --unit=") {
		t.Errorf("LogsCommand = %s, want %s", got, want)
	}
	got = strings.Join((&Client{root: "/proc/7/root"}).LogsCommand(ch, LogsOptions{Follow: true, Lines: 0, Since: "-1h"}), " ")
	if !strings.HasPrefix(got, "journalctl --root=/proc/7/root --follow --lines=0 --since=-1h --unit=systemd-nspawn@demo.service ") {
		t.Errorf("LogsCommand with options and a root = %s", got)
	}
}

func TestMachineLogsCommand(t *testing.T) {
	m := &Machine{Name: "demo", Leader: 42}
	for root, want := range map[string]string{
		"":             "journalctl --root=/proc/42/root --lines=5",
		"/proc/7/root": "journalctl --root=/proc/7/root/proc/42/root --lines=5",
	} {
		if got := strings.Join((&Client{root: root}).MachineLogsCommand(m, LogsOptions{Lines: 5}), " "); got != want {
			t.Errorf("root %q: %s, want %s", root, got, want)
		}
	}
}
