package generator_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/helpers/secret"
)

// A secret from a drop-in (or a template's drop-in) is read by the helper
// from that file, at the same field path: the generator points it there.
func TestSecretFromDropIn(t *testing.T) {
	dir, _ := filepath.Abs("testdata/cases/dropin-secret/input")
	r := generator.Run([]string{dir})
	if len(r.Failed) != 0 {
		t.Fatalf("failed: %+v", r.Failed)
	}
	want := map[string]string{
		filepath.Join(dir, "key.d", "10-key.yaml"):   "AQBSdFhcS0oXGhAAlJ8tX7dC3vQH9a1DJ2w3eA==",
		filepath.Join(dir, "tpl@.d", "10-chap.toml"): "s3cret-pass-${instance}", // as written: secrets are not substituted
	}
	arg := regexp.MustCompile(`--secret-file=(\S+) --secret-field=(\S+)`)
	found := 0
	for p, b := range r.Output.Files {
		for _, m := range arg.FindAllStringSubmatch(string(b), -1) {
			found++
			got, err := secret.FromDefinition(m[1], m[2])
			if err != nil || got != want[m[1]] {
				t.Errorf("%s: the helper reads %s %s: %v (want the drop-in's secret)", p, m[1], m[2], err)
			}
			if strings.Contains(string(b), got) && got != "" {
				t.Errorf("%s holds the secret", p)
			}
		}
	}
	if found != 2 {
		t.Errorf("%d secret arguments, want 2", found)
	}
}
