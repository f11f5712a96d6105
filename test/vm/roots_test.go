//go:build vm

package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ensureRootVariant builds a VM root with extra Debian packages (and its
// squashfs, returned): test/testbed/build-root.sh with
// STRATA_TESTBED_EXTRA_PACKAGES, so it gets the testbed root's
// post-processing, stamp (a no-op when up to date), locking and mirror
// detection; only the package list differs. $env overrides the directory.
func ensureRootVariant(t *testing.T, env, dir, packages string) string {
	t.Helper()
	if d := os.Getenv(env); d != "" {
		dir = d
	}
	cmd := exec.CommandContext(ctxFor(t, 20*time.Minute), "/bin/bash",
		filepath.Join(ScriptsDir(), "..", "testbed", "build-root.sh"), "--squashfs", dir+".sqfs", dir)
	cmd.Env = append(os.Environ(), "STRATA_TESTBED_EXTRA_PACKAGES="+packages)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-root.sh with %s: %v\n%s", packages, err, out)
	}
	return dir + ".sqfs"
}
