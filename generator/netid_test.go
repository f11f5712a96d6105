package generator_test

import (
	"strings"
	"testing"

	"github.com/strata-project/strata/generator"
)

// One iSCSI portal or NFS server spelt several ways is one attachment:
// one attach unit (so one helper reference, counted by systemd) and one
// shared layer mount, not one per spelling.
func TestOneAttachmentPerCanonicalHost(t *testing.T) {
	r := generator.Run([]string{"testdata/cases/shared-spellings/input"})
	if r.Problems.HasErrors() {
		t.Fatalf("problems: %v", r.Problems)
	}
	count := func(prefix string) (n int) {
		for p := range r.Output.Files {
			if strings.HasPrefix(p, prefix) {
				n++
			}
		}
		return n
	}
	if n := count("strata-attach@iscsi_"); n != 1 {
		t.Errorf("%d iSCSI attach units for one portal spelt 3 ways, want 1", n)
	}
	if n := count("run-strata-layers-iscsi_"); n != 1 {
		t.Errorf("%d iSCSI layer mounts, want 1", n)
	}
	// fd00::9 two ways, nfs.example.com two ways.
	if n := count("run-strata-layers-nfs_"); n != 2 {
		t.Errorf("%d NFS layer mounts for two servers, want 2", n)
	}
	if len(r.Loaded) != 6 {
		t.Errorf("%d containers loaded, want 6", len(r.Loaded))
	}
}
