package definition

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds any bytes, as each format, to Parse: it must never panic,
// and must return either a definition or at least one error.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../generator/testdata/cases/*/input/*")
	seeds = append(seeds, "testdata/seed.json")
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data, uint8(0))
			f.Add(data, uint8(1))
			f.Add(data, uint8(2))
		}
	}
	f.Add([]byte(`{"mount":{"kind":"overlay","overlay":{"lower":[{"id":1}]}}}`), uint8(0))
	f.Add([]byte("command = 1\n[mount]\nkind='x'"), uint8(1))
	f.Add([]byte("a: &x [1]\nb: *x\n"), uint8(2))
	names := []string{"fuzz.json", "fuzz.toml", "fuzz.yaml"}
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		def, problems := Parse(names[int(format)%3], data)
		if def == nil && !problems.HasErrors() {
			t.Fatalf("no definition and no error for %q", data)
		}
		if def != nil && problems.HasErrors() {
			t.Fatalf("a definition despite errors: %v", problems)
		}
	})
}
