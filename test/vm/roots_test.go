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
	return ensureRootVariantPost(t, env, dir, packages, "")
}

// ensureRootVariantPost is ensureRootVariant with a post-processing script
// of the variant's own (STRATA_TESTBED_POSTPROCESS, part of the stamp).
func ensureRootVariantPost(t *testing.T, env, dir, packages, post string) string {
	t.Helper()
	if d := os.Getenv(env); d != "" {
		dir = d
	}
	cmd := exec.CommandContext(ctxFor(t, 20*time.Minute), "/bin/bash",
		filepath.Join(ScriptsDir(), "..", "testbed", "build-root.sh"), "--squashfs", dir+".sqfs", dir)
	cmd.Env = append(os.Environ(), "STRATA_TESTBED_EXTRA_PACKAGES="+packages, "STRATA_TESTBED_POSTPROCESS="+post)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-root.sh with %q %s: %v\n%s", packages, post, err, out)
	}
	return dir + ".sqfs"
}

// ensureNetworkdRoot is the testbed root with systemd-networkd and
// systemd-networkd-wait-online enabled (root-networkd.sh): the boot
// activation test's node, which waits for its network as a real one does.
// /var/lib/strata-vm/root-networkd, $STRATA_VM_NETWORKD_ROOT.
func ensureNetworkdRoot(t *testing.T) string {
	return ensureRootVariantPost(t, "STRATA_VM_NETWORKD_ROOT", "/var/lib/strata-vm/root-networkd", "",
		filepath.Join(ScriptsDir(), "root-networkd.sh"))
}
