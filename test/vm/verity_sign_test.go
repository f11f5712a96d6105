//go:build vm

package vm

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/image"
	"github.com/strata-project/strata/internal/verity"
	"github.com/strata-project/strata/internal/verity/veritytest"
)

// signedImages builds, into dir (bound into TestVerity's VM as
// /srv/images), signed.img signed by a key whose certificate is
// trust.pem and untrusted.img signed by a stranger's key; it returns
// signed.img's root hash.
func signedImages(t *testing.T, dir string) string {
	t.Helper()
	trusted, stranger := veritytest.NewSigner(t, "strata images"), veritytest.NewSigner(t, "stranger")
	var root string
	for file, s := range map[string]*verity.Signer{"signed.img": trusted, "untrusted.img": stranger} {
		res, err := image.BuildFile(context.Background(), rootSqfs, filepath.Join(dir, file), image.BuildOptions{Verity: true, Sign: s})
		if err != nil {
			t.Fatal(err)
		}
		if file == "signed.img" {
			root = res.Verity.RootHashHex()
		}
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: trusted.Chain[0].Raw})
	if err := os.WriteFile(filepath.Join(dir, "trust.pem"), cert, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// veritySigned runs signed root hashes (docs/schemes/verity.md, "Keys
// and the trust store") through the stock kernel's dm-verity, on
// TestVerity's VM (one boot less): an image signed by a key whose
// certificate is in /etc/strata/trust boots under "signed": true, with no
// root hash in the definition; one signed by a key the store does not hold
// is refused before any layer is mounted, the reason in `systemctl
// status`, and nothing is left attached.
func (e *rbdEnv) veritySigned(t *testing.T, root string) {
	t.Run("Boots", func(t *testing.T) {
		e.t = t
		e.defineTrusting(map[string]string{"s": signedDefinition("/srv/images/signed.img")})
		d := e.startContainer("s")
		t.Logf("start (loop, signature, verity, mounts, nested boot): %s", d.Round(time.Millisecond))
		e.checkMachineRunning("s")
		j := e.journal()
		if !strings.Contains(j, "checked against root hash "+root) || !strings.Contains(j, `signed by "CN=strata images"`) {
			t.Errorf("the journal does not say the device was opened against %s, signed by CN=strata images:\n%s", root, lastLines(j, 40))
		}
		e.stop("s")
		e.verityReleased()
		e.onlyNeeded()
	})

	t.Run("UntrustedSigner", func(t *testing.T) {
		e.t = t
		e.defineTrusting(map[string]string{"u": signedDefinition("/srv/images/untrusted.img")})
		out, code, _ := e.try(6*time.Minute, "systemctl", "start", "systemd-nspawn@u.service")
		if code == 0 {
			t.Fatalf("an image signed by an untrusted key started: %s", out)
		}
		st, _, _ := e.try(time.Minute, "systemctl", "status", "--no-pager", "-l", "--lines=30", "systemd-nspawn@u.service")
		if !strings.Contains(st, `the signer "CN=stranger" is not trusted`) {
			t.Errorf("systemctl status systemd-nspawn@u does not say why:\n%s", st)
		}
		if m := e.must("sh", "-c", "grep -c /run/strata/layers /proc/self/mountinfo || true"); strings.TrimSpace(m) != "0" {
			t.Errorf("a layer was mounted: %s", m)
		}
		e.must("systemctl", "reset-failed")
		e.verityReleased()
		e.onlyNeeded()
	})
	// The trust store goes with the definitions: later subtests define
	// their own.
	e.must("rm", "-rf", "/etc/strata/trust")
}

// defineTrusting replaces the definitions (define) and puts the trusted
// certificate in the trust store, which define's clean-up of /etc/strata
// would trip over: the helper reads it at start, not at the reload.
func (e *rbdEnv) defineTrusting(defs map[string]string) {
	e.t.Helper()
	e.must("rm", "-rf", "/etc/strata/trust")
	e.define(defs)
	e.must("install", "-D", "-m", "0644", "/srv/images/trust.pem", "/etc/strata/trust/strata-images.pem")
}

// signedDefinition is an overlay over an image file whose signed root
// hash the trust store must vouch for.
func signedDefinition(file string) string {
	return overlayDefinition(map[string]any{
		"kind": "attach",
		"attach": map[string]any{
			"fs_type": "squashfs",
			"attach":  map[string]any{"kind": "loopback", "loopback": map[string]any{"base": "root", "path": file}},
			"verity":  map[string]any{"signed": true},
		},
	})
}
