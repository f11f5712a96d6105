package definition

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-project/strata/internal/layout"
)

// The trust store lies among the definitions (/etc/strata/trust): it is
// neither read nor reported as a skipped file, while another directory
// still is.
func TestScanPassesTheTrustStore(t *testing.T) {
	etc := t.TempDir()
	for _, d := range []string{filepath.Base(layout.TrustDir), "notes"} {
		if err := os.Mkdir(filepath.Join(etc, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f := Scan([]string{etc})
	if len(f.Sources) != 0 || len(f.Skipped) != 1 || f.Skipped[0].Path != filepath.Join(etc, "notes") {
		t.Errorf("sources %+v, skipped %+v: want only notes skipped", f.Sources, f.Skipped)
	}
}
