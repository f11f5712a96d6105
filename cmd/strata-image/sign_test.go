package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/internal/verity/veritytest"
)

// signerFiles writes a key and its self-signed certificate as PEM files
// and returns their paths and the certificate's SHA-256 fingerprint.
func signerFiles(t *testing.T, name string) (key, cert, fingerprint string) {
	t.Helper()
	s := veritytest.NewSigner(t, name)
	key, cert = veritytest.WriteFiles(t, s, name)
	sum := sha256.Sum256(s.Chain[0].Raw)
	return key, cert, hex.EncodeToString(sum[:])
}

// build --output --verity --sign-key --sign-cert signs the root hash and
// says by whom; info --file (text and JSON) shows the same signer; the
// flags are refused alone, without --verity, and with another's key.
func TestBuildFileSignedCLI(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, cert, fp := signerFiles(t, "builder")
	out := filepath.Join(t.TempDir(), "layer.img")
	code, stdout, stderr := runCmd("build", src, "--output", out, "--verity", "--sign-key", key, "--sign-cert", cert, "--progress", "none")
	want := "signed by: CN=builder (sha256 fingerprint " + fp
	if code != 0 || !strings.Contains(stdout, want) {
		t.Fatalf("build: exit %d, %q %q, want %q", code, stdout, stderr, want)
	}
	code, stdout, stderr = runCmd("info", "--file", out)
	if code != 0 || !strings.Contains(stdout, "signed by:  CN=builder (sha256 fingerprint "+fp) {
		t.Errorf("info --file: exit %d, %q %q, want the signer %s", code, stdout, stderr, fp)
	}
	code, stdout, _ = runCmd("info", "--file", out, "--json")
	var got struct {
		Verity struct {
			Signer struct{ Subject, SHA256 string }
		}
	}
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil || got.Verity.Signer.SHA256 != fp || got.Verity.Signer.Subject != "CN=builder" {
		t.Errorf("info --json: exit %d, %v, %q", code, err, stdout)
	}

	otherKey, _, _ := signerFiles(t, "other")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--verity", "--sign-key", key}, 2, "--sign-key and --sign-cert go together"},
		// (A build without the tree, signed: refused, "none to sign"; how
		// to ask for such a build is the default's business: --verity=false
		// here, --no-verity once the tree is the default.)
		{[]string{"--verity=false", "--sign-key", key, "--sign-cert", cert}, 2, "none to sign"},
		{[]string{"--verity", "--sign-key", otherKey, "--sign-cert", cert}, 1, "other.key is not the key of the certificate in"},
		{[]string{"--verity", "--sign-key", cert, "--sign-cert", cert}, 1, "no PEM private key"},
	} {
		args := append([]string{"build", src, "--output", filepath.Join(t.TempDir(), "x.img"), "--progress", "none"}, c.args...)
		code, stdout, stderr := runCmd(args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.want) {
			t.Errorf("%q: exit %d (want %d), %q %q, want %q", c.args, code, c.code, stdout, stderr, c.want)
		}
	}
}

// A signed build's printed definition pins the root hash and asks for the
// signature too ("signed": true), and validates.
func TestBuildOCISignedDefinition(t *testing.T) {
	lay, _ := testLayout(t, v1.Config{Cmd: []string{"/bin/sleep", "infinity"}}, map[string]string{"bin/sleep": "x"})
	key, cert, _ := signerFiles(t, "builder")
	out := filepath.Join(t.TempDir(), "app.img")
	code, stdout, stderr := runCmd("build", "oci:"+lay+":1.0", "--output", out, "--verity", "--sign-key", key, "--sign-cert", cert,
		"--print-definition", "--progress", "none")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	def, problems := definition.Parse("app.json", []byte(stdout))
	if def == nil {
		t.Fatalf("definition does not validate: %v\n%s", problems, stdout)
	}
	if v := def.Container.Mount.Overlay.Lower[0].Attach.Verity; v == nil || !v.Signed || len(v.RootHash) != 64 {
		t.Errorf("verity %+v, want a pinned root hash and signed", v)
	}
}
