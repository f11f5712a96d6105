// Package generatortest checks generated units the way systemd reads them,
// for the tests of the generator and of the docs' examples.
package generatortest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/units"
)

// Verifier runs `systemd-analyze verify` on generated trees. The helper is
// not installed where tests run, so its path in the units is replaced by a
// stub executable, for this check only.
type Verifier struct {
	analyze string
	stub    string
}

// NewVerifier finds systemd-analyze and the nspawn template every container
// unit extends, and writes the helper stub into dir.
func NewVerifier(dir string) (*Verifier, error) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		return nil, errors.New("systemd-analyze is needed (Debian package systemd; run test/setup-host.sh)")
	}
	if _, err := os.Stat("/usr/lib/systemd/system/systemd-nspawn@.service"); err != nil {
		return nil, errors.New("systemd-nspawn@.service is needed (Debian package systemd-container; run test/setup-host.sh)")
	}
	stub := filepath.Join(dir, "strata-helper")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		return nil, err
	}
	return &Verifier{analyze: analyze, stub: stub}, nil
}

// Verify writes out into dir (empty) and verifies every unit in it (a
// drop-in through the unit it extends). It returns what systemd-analyze
// said when it said anything: a clean verify prints nothing.
func (v *Verifier) Verify(out *generator.Output, dir string) error {
	if err := out.Write(dir); err != nil {
		return err
	}
	var names []string
	for p, data := range out.Files {
		data = bytes.ReplaceAll(data, []byte(layout.HelperPath), []byte(v.stub))
		if err := os.WriteFile(filepath.Join(dir, p), data, 0o644); err != nil {
			return err
		}
		name := p
		if i := strings.Index(p, ".d/"); i >= 0 {
			name = p[:i]
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil // nothing could be generated: nothing to verify
	}
	// The templates the package installs, which generated drop-ins extend.
	static, err := fs.ReadDir(units.Static, units.StaticDir)
	if err != nil {
		return err
	}
	for _, e := range static {
		data, err := fs.ReadFile(units.Static, units.StaticDir+"/"+e.Name())
		if err != nil {
			return err
		}
		data = bytes.ReplaceAll(data, []byte(layout.HelperPath), []byte(v.stub))
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			return err
		}
		if !slices.Contains(names, e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	cmd := exec.Command(v.analyze, append([]string{"verify", "--man=no"}, names...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":", "SYSTEMD_LOG_LEVEL=notice")
	msg, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(msg)) > 0 {
		return fmt.Errorf("systemd-analyze verify %s: %v\n%s", strings.Join(names, " "), err, msg)
	}
	return nil
}
