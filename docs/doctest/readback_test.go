package doctest

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/strata-project/strata/image"
)

// The rbd page says what the build's read-back compares in the words the
// build prints (image.ReadBack), and names no other checksum for it: the
// page once said SHA-256 while the tool compared CRC-32C.
func TestReadBackClaim(t *testing.T) {
	b, err := os.ReadFile("../schemes/rbd.md")
	if err != nil {
		t.Fatal(err)
	}
	page := strings.Join(strings.Fields(string(b)), " ")
	i := strings.Index(page, "reads it back and compares ")
	if i < 0 {
		t.Fatal("docs/schemes/rbd.md no longer says what the read-back compares (\"reads it back and compares ...\")")
	}
	claim := page[i:min(len(page), i+120)]
	if !strings.Contains(claim, image.ReadBack) {
		t.Errorf("docs/schemes/rbd.md says the read-back compares %q; the build compares %q", claim, image.ReadBack)
	}
	if m := regexp.MustCompile(`compares[^.(]*(SHA-?256|MD5|SHA-?1)`).FindString(claim); m != "" {
		t.Errorf("docs/schemes/rbd.md: %q names a checksum the read-back does not use", m)
	}
}
