package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `strata validate --json` reports a file that does not parse with its
// line, and never with the text of an unquoted key or password.
func TestValidateJSONWithholdsSecrets(t *testing.T) {
	const secret = "AQBzZ9xvQ2qZZZ"
	dir := t.TempDir()
	for name, doc := range map[string]string{
		"rbd.toml":  "command = '/bin/true'\n[mount.attach.attach.rbd.options]\nsecret = " + secret + "==\n",
		"chap.yaml": "command: /bin/true\nmount:\n  attach:\n    attach:\n      iscsi:\n        chap:\n          password: !" + secret + " x\n",
		"rbd2.json": "{\"command\": \"/bin/true\", \"secret\":\n " + secret + "}",
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o600)
	}
	var out bytes.Buffer
	run([]string{"validate", "--json", dir}, &out, &bytes.Buffer{})
	if strings.Contains(out.String(), secret) || strings.Contains(out.String(), "'A'") {
		t.Fatalf("a secret in the report: %s", out.String())
	}
	var report struct {
		Invalid  []string
		Problems []struct {
			File, Message string
			Line          int
		}
	}
	if err := json.Unmarshal(out.Bytes(), &report); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	lines := map[string]int{"rbd.toml": 3, "chap.yaml": 7, "rbd2.json": 2}
	if len(report.Invalid) != 3 || len(report.Problems) != 3 {
		t.Fatalf("report: %+v", report)
	}
	for _, p := range report.Problems {
		if p.Line != lines[filepath.Base(p.File)] || !strings.Contains(p.Message, "the parser's description is withheld") {
			t.Errorf("problem: %+v", p)
		}
	}
}
