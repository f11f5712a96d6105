package doctest

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// generatorLogCommand is the one command that shows the generator's
// messages on every node (cmd/strata-generator/log.go; proved on a node
// without a kernel log by test/integration's TestGeneratorLog).
const generatorLogCommand = "journalctl -b -t strata-generator"

// Every page that tells how to read the generator's messages gives that
// command, not another one that shows them only on some nodes.
func TestGeneratorLogCommand(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(docs, "*.md"))
	more, _ := filepath.Glob(filepath.Join(docs, "schemes", "*.md"))
	man, _ := filepath.Glob(filepath.Join(docs, "..", "packaging", "man", "*.md"))
	files = append(append(append(files, more...), man...), filepath.Join(docs, "..", "README.md"))
	// A journalctl or dmesg command about the generator, up to its end.
	cmd := regexp.MustCompile("(journalctl|dmesg)[^`\\n]*strata-generator[^`\\n]*")
	found := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cmd.FindAllString(string(data), -1) {
			found++
			if m != generatorLogCommand {
				t.Errorf("%s: %q: give %q, the command that shows the generator's messages on every node", f, m, generatorLogCommand)
			}
		}
	}
	if found < 3 {
		t.Errorf("the command is given %d times; TROUBLESHOOTING, OPERATIONS and strata-generator(8) give it", found)
	}
}
