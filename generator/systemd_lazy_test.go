package generator

import (
	"strings"
	"testing"
)

// The node's version is read only when a definition needs a
// version-gated setting, and at most once per run: reading the manager's
// binary is megabytes at every boot and reload.
func TestSystemdVersionReadOnlyWhenNeeded(t *testing.T) {
	defer func(v *Version, read func() (int, error)) { Systemd, nodeSystemd = v, read }(Systemd, nodeSystemd)
	t.Setenv(SystemdVersionEnv, "")
	reads := 0
	nodeSystemd = func() (int, error) { reads++; return 239, nil }
	DetectSystemd()
	for _, dir := range []string{"seed-rbd", "rbd-keyring", "health", "cdi", "iscsi-chap-password"} {
		if r := Run([]string{"testdata/cases/" + dir + "/input"}); len(r.Loaded) == 0 {
			t.Fatalf("%s: nothing loaded: %v", dir, r.Problems)
		}
	}
	if reads != 0 {
		t.Errorf("the version was read %d times for definitions that need none", reads)
	}
	for i := 0; i < 2; i++ {
		if r := Run([]string{"testdata/cases/rbd-credential/input", "testdata/cases/iscsi-chap-credential/input"}); len(r.Failed) != 2 {
			t.Errorf("on systemd 239, want both credentials refused: %v", r.Problems)
		}
	}
	if reads != 1 || Systemd.Err() != nil {
		t.Errorf("the version was read %d times (%v), want once", reads, Systemd.Err())
	}
}

// $STRATA_SYSTEMD_VERSION comes before the node's own version, which is
// then never read; a value that is no version refuses nothing and says
// why once the version was needed.
func TestDetectSystemdFromTheEnvironment(t *testing.T) {
	defer func(v *Version, read func() (int, error)) { Systemd, nodeSystemd = v, read }(Systemd, nodeSystemd)
	nodeSystemd = func() (int, error) { t.Error("the node's version read despite $" + SystemdVersionEnv); return 0, nil }
	t.Setenv(SystemdVersionEnv, "246")
	DetectSystemd()
	if r := Run([]string{"testdata/cases/rbd-credential/input"}); len(r.Failed) != 1 || !strings.Contains(r.Problems[0].Message, "this node runs systemd 246") {
		t.Errorf("with $%s=246: %v", SystemdVersionEnv, r.Problems)
	}
	t.Setenv(SystemdVersionEnv, "new")
	DetectSystemd()
	if r := Run([]string{"testdata/cases/rbd-credential/input"}); len(r.Failed) != 0 {
		t.Errorf("an unknown version refused: %v", r.Problems)
	}
	if err := Systemd.Err(); err == nil || !strings.Contains(err.Error(), `$STRATA_SYSTEMD_VERSION="new": want a systemd version such as 252`) {
		t.Errorf("Err: %v", err)
	}
}
