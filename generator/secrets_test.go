package generator_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-project/strata/generator"
)

// No secret a definition holds appears in anything the generator writes
// or logs: keys and passwords are read by the helper at run time.
func TestSecretsStayOut(t *testing.T) {
	checked := 0
	for _, dir := range cases(t) {
		dirs, _ := searchPath(t, filepath.Join(dir, "input"))
		r := generator.Run(dirs)
		var secrets []string
		for _, d := range r.Loaded {
			secrets = append(secrets, d.Secrets()...)
		}
		for _, s := range secrets {
			checked++
			for p, b := range r.Output.Files {
				if strings.Contains(string(b), s) {
					t.Errorf("%s: secret of %s appears in %s", dir, s[:2]+"...", p)
				}
			}
			if strings.Contains(r.Problems.Error(), s) {
				t.Errorf("%s: a secret appears in the generator's messages", dir)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d secrets checked: the cases lost their secrets", checked)
	}
}
