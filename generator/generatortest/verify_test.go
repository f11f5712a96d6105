package generatortest

import (
	"strings"
	"testing"

	"github.com/strata-project/strata/generator"
)

// The verifier reports what systemd-analyze finds wrong, and accepts a
// clean unit.
func TestVerifyCanFail(t *testing.T) {
	v, err := NewVerifier(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bad := &generator.Output{Files: map[string][]byte{"x.service": []byte("[Service]\nType=oneshot\nExecStart=/bin/true\nCPUQuota=400%%\n")}}
	if err := v.Verify(bad, t.TempDir()); err == nil || !strings.Contains(err.Error(), "CPU quota") {
		t.Errorf("an invalid CPUQuota passed: %v", err)
	}
	good := &generator.Output{Files: map[string][]byte{"x.service": []byte("[Service]\nType=oneshot\nExecStart=/usr/libexec/strata/strata-helper fail\n")}}
	if err := v.Verify(good, t.TempDir()); err != nil {
		t.Errorf("a clean unit: %v", err)
	}
}
