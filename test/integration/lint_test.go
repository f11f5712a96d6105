//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Both packages are clean under the distributions' own checkers: lintian
// for the .debs (with the overrides in packaging/lintian, shipped in the
// packages) and rpmlint for the .rpms (packaging/rpmlint.toml). Every
// tag overridden says why where it is overridden.
func TestPackagesLint(t *testing.T) {
	for _, tool := range []string{"lintian", "rpmlint"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (packaging/setup-host.sh installs it): %v", tool, err)
		}
	}
	out := t.TempDir()
	build := exec.Command("../../packaging/build.sh", out)
	build.Env = append(os.Environ(), "STRATA_PACKAGE_FORMATS=deb rpm")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("packaging/build.sh: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(out, "*.rpm"))
	// strata-image is built when Ceph's headers are there (build.sh says
	// so otherwise); the node package always.
	if len(debs) == 0 || len(rpms) == 0 {
		t.Fatalf("build.sh made %v %v", debs, rpms)
	}
	t.Logf("checking %d .deb and %d .rpm", len(debs), len(rpms))
	lintian := exec.Command("lintian", append([]string{"--fail-on", "error,warning", "--tag-display-limit", "0"}, debs...)...)
	if b, err := lintian.CombinedOutput(); err != nil || tags(string(b)) != "" {
		t.Errorf("lintian: %v\n%s", err, b)
	}
	rpmlint := exec.Command("rpmlint", append([]string{"-c", "../../packaging/rpmlint.toml"}, rpms...)...)
	b, err := rpmlint.CombinedOutput()
	if err != nil || !strings.Contains(string(b), " 0 errors, 0 warnings") {
		t.Errorf("rpmlint: %v\n%s", err, b)
	}
}

// tags are lintian's E:, W: and I: lines.
func tags(out string) string {
	var ts []string
	for _, l := range strings.Split(out, "\n") {
		if len(l) > 2 && strings.Contains("EWI", l[:1]) && l[1] == ':' {
			ts = append(ts, l)
		}
	}
	return strings.Join(ts, "\n")
}
