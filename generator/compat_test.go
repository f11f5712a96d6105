package generator

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docs/COMPATIBILITY.md names every setting the generator writes (the
// golden trees' keys, the static templates' keys, nspawn's options) and
// the version of each setting it refuses on an older systemd.
func TestCompatibilityDocCoversWhatIsWritten(t *testing.T) {
	data, err := os.ReadFile("../docs/COMPATIBILITY.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	files, _ := filepath.Glob("testdata/cases/*/expected/*")
	more, _ := filepath.Glob("testdata/cases/*/expected/*/*")
	static, _ := filepath.Glob("../units/static/*")
	keys := map[string]bool{}
	key := regexp.MustCompile(`(?m)^([A-Za-z]+)=`)
	for _, f := range append(append(files, more...), static...) {
		if fi, err := os.Lstat(f); err != nil || !fi.Mode().IsRegular() {
			continue // directories; .wants links lead to systemd's own units
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range key.FindAllStringSubmatch(string(b), -1) {
			keys[m[1]] = true
		}
	}
	if len(keys) < 20 {
		t.Fatalf("only %d keys found in the golden trees", len(keys))
	}
	for k := range keys {
		if !strings.Contains(doc, "`"+k+"=") {
			t.Errorf("docs/COMPATIBILITY.md does not say which systemd has %s=", k)
		}
	}
	src, err := os.ReadFile("container.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"(--[a-z-]+?)=?"`).FindAllStringSubmatch(string(src), -1) {
		if m[1] != "--generation" && !strings.Contains(doc, "`"+m[1]) {
			t.Errorf("docs/COMPATIBILITY.md does not say which systemd has nspawn's %s", m[1])
		}
	}
	for k, f := range newerSettings {
		row := regexp.MustCompile("(?m)^\\| `" + k + "=` \\|.*\\*\\*" + strconv.Itoa(f.version) + "\\*\\*")
		if !row.MatchString(doc) {
			t.Errorf("docs/COMPATIBILITY.md has no row saying %s= needs systemd %d", k, f.version)
		}
	}
}
