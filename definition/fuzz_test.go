package definition

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds any bytes, as each format, to Parse: it must never panic,
// and must return either a definition or at least one error.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../generator/testdata/cases/*/input/*")
	if len(seeds) < 60 {
		f.Fatalf("%d seeds from the generator's golden cases: the glob misses them", len(seeds))
	}
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
	// Hostile input: duplicate keys, numbers and infinity where text is
	// expected, deep nesting, unquoted secrets, shell quoting.
	f.Add([]byte(`{"command": "/x", "environment": {"A": "1", "A": "2"}}`), uint8(0))
	f.Add([]byte("command = '/x'\n[service]\nUMask = 0o027\nTasksMax = 23\nMemoryMax = inf\nCPUWeight = nan\n"), uint8(1))
	f.Add([]byte("command: /x\nservice: {UMask: 0027, MemoryMax: .inf, A: 99999999999999999999}\nservice: {}\n"), uint8(2))
	f.Add([]byte(`{"x": `+strings.Repeat("[", 100)), uint8(0))
	f.Add([]byte("x = "+strings.Repeat("{x = ", 70)+"1"+strings.Repeat("}", 70)), uint8(1))
	f.Add([]byte(strings.Repeat("a.", 70)+"b = 1\n["+strings.Repeat("c.", 70)+"d]\n[[e.f]]\ng.h = [{i = [[1]]}]"), uint8(1))
	f.Add([]byte("x: "+strings.Repeat("{x: ", 70)), uint8(2))
	f.Add([]byte(`x = ['[[{', "[\"", '''`+"\n"+`]]''', """`+"\n"+`{"""] # [[`), uint8(1))
	f.Add([]byte("command = '/x'\n[mount.attach.attach.rbd.options]\nsecret = AQBzZ9==\n"), uint8(1))
	f.Add([]byte(`{"command": "/x", "p\u0061ssword":`+"\n"+` AQB}`), uint8(0))
	f.Add([]byte("command: /x\npassword: !AQB x\n"), uint8(2))
	f.Add([]byte(`{"command": "/bin/sh -c \"echo \\\"hi\\\"\" 'a b' c\\ d # e; f"}`), uint8(0))
	f.Add([]byte("command: \"a\\\n b\"\n"), uint8(2))
	names := []string{"fuzz.json", "fuzz.toml", "fuzz.yaml"}
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		def, problems := Parse(names[int(format)%3], data)
		if def == nil && !problems.HasErrors() {
			t.Fatalf("no definition and no error for %q", data)
		}
		if def != nil && problems.HasErrors() {
			t.Fatalf("a definition despite errors: %v", problems)
		}
		if def != nil {
			if _, err := SplitCommand(def.Container.Command); err != nil {
				t.Fatalf("a definition whose command does not split: %v", err)
			}
		}
	})
}
