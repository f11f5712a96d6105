package generator_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/internal/layout"
)

// An unquoted key or password makes the file unparsable, and the parsers'
// messages quote the text they stumble on: the placeholder unit and the
// log still say what is wrong and where, without the secret. The good
// definition beside them gets its units.
func TestParserErrorsKeepSecretsOut(t *testing.T) {
	const secret = "AQBzZ9xvQ2qZZZ"
	dir := t.TempDir()
	files := map[string]string{
		"good.json": `{"command": "/bin/true", "mount": {"kind": "bind", "bind": {"path": "/srv/root", "base": "root"}}}`,
		"rbd.toml":  "command = '/bin/true'\n[mount.attach.attach.rbd.options]\nsecret = " + secret + "==\n",
		"chap.json": "{\"command\": \"/bin/true\", \"mount\": {\"attach\": {\"attach\": {\"iscsi\": {\"chap\": {\"password\":\n " + secret + "}}}}}}",
		"tag.yaml":  "command: /bin/true\nmount:\n  attach:\n    attach:\n      rbd:\n        options:\n          secret: !" + secret + " x\n",
	}
	for name, doc := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := generator.Run([]string{dir})
	if len(r.Loaded) != 1 || len(r.Failed) != 3 {
		t.Fatalf("loaded %d, failed %d: %v", len(r.Loaded), len(r.Failed), r.Problems)
	}
	for _, name := range []string{"rbd", "chap", "tag"} {
		unit := string(r.Output.Files["systemd-nspawn@"+name+".service.d/"+layout.DropInName])
		if !strings.Contains(unit, "the parser's description is withheld") {
			t.Errorf("placeholder of %s:\n%s", name, unit)
		}
	}
	for p, b := range r.Output.Files {
		if strings.Contains(string(b), secret) {
			t.Errorf("the secret appears in %s", p)
		}
	}
	if log := r.Problems.Error(); strings.Contains(log, secret) || !strings.Contains(log, "rbd.toml:3: invalid TOML here") {
		t.Errorf("problems:\n%s", log)
	}
}
