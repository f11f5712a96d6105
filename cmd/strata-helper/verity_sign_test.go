package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/internal/verity"
	"github.com/strata-project/strata/internal/verity/veritytest"
)

// signedImage writes an image laid out as build --verity --sign-key lays
// it out, its root hash signed by s over signedHash ("" for its own root
// hash; nil s: unsigned), and returns its path and root hash.
func signedImage(t *testing.T, s *verity.Signer, signedHash string) (string, string) {
	t.Helper()
	file, root, img := verityImage(t)
	if s == nil {
		return file, root
	}
	v, err := verity.Read(bytes.NewReader(img), uint64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if signedHash == "" {
		signedHash = root
	}
	sig, err := s.Sign(signedHash)
	if err != nil {
		t.Fatal(err)
	}
	tree := len(img) - verity.TrailerSize
	v.HashArea = make([]byte, uint64(tree)-v.HashOffset) // where the tree ends: the signature follows it
	v.SetSignature(sig)
	signed := append(append(img[:tree:tree], sig...), make([]byte, int(v.End())-tree-len(sig))...)
	signed = append(signed, v.Trailer()...)
	if err := os.WriteFile(file, signed, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, root
}

// trustNode is a node whose trust store holds certs.
func trustNode(t *testing.T, certs ...*x509.Certificate) (*node, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	n := &node{root: t.TempDir(), log: newLogger(&buf, false)}
	dir := n.at(layout.TrustDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, c := range certs {
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i))+".pem"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return n, &buf
}

// A signed image whose signer the trust store holds opens with the root
// hash of its trailer, also when that hash is pinned too.
func TestVerityRootSigned(t *testing.T) {
	now := time.Now()
	s := veritytest.Signer(t, "image builder", now.Add(-time.Hour), now.Add(time.Hour))
	file, root := signedImage(t, s, "")
	n, _ := trustNode(t, s.Chain[0])
	for _, pinned := range []string{"", root} {
		got, who, err := n.verityRoot(contract.VerityOpen{Name: "v", Device: file, RootHash: pinned, Signed: true})
		if err != nil || got != root || who == nil || who.Subject != "CN=image builder" {
			t.Errorf("pinned %q: root %q, signer %+v, %v; want %s by CN=image builder", pinned, got, who, err, root)
		}
	}
	if _, err := checkVerity(file, root); err != nil {
		t.Errorf("the signed image's tree: %v", err)
	}
}

// verity-open refuses, before it attaches or opens anything, a signed
// definition's image that is unsigned, signed by a key the store does not
// hold, signed over another root hash, signed with an expired certificate,
// or not the pinned one; and refuses them all on a node without a store.
func TestVerityOpenRefusesSigned(t *testing.T) {
	now := time.Now()
	good := veritytest.Signer(t, "image builder", now.Add(-time.Hour), now.Add(time.Hour))
	stranger := veritytest.Signer(t, "stranger", now.Add(-time.Hour), now.Add(time.Hour))
	old := veritytest.Signer(t, "old builder", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	goodFile, root := signedImage(t, good, "")
	other := strings.Repeat("0", 64)
	unsigned, _ := signedImage(t, nil, "")
	byStranger, _ := signedImage(t, stranger, "")
	otherHash, _ := signedImage(t, good, other)
	expired, _ := signedImage(t, old, "")
	n, log := trustNode(t, good.Chain[0], old.Chain[0])
	for name, c := range map[string]struct{ file, pinned, want string }{
		"unsigned":          {unsigned, "", "the image has no root hash signature (built without --sign-key and --sign-cert?)"},
		"untrusted signer":  {byStranger, "", `the signer "CN=stranger" is not trusted: neither it nor its issuer "CN=stranger" is in the trust store`},
		"another root hash": {otherHash, "", `the root hash signature by "CN=image builder" is not over this image's root hash ` + root},
		"expired":           {expired, "", `the signer "CN=old builder" is not trusted at`},
		"not the pinned":    {goodFile, other, "the image's root hash " + root + " is not the pinned root hash " + other},
	} {
		err := n.verityOpen(t.Context(), contract.VerityOpen{Attachment: "v", Name: "verity_test_" + strings.ReplaceAll(name, " ", "_"), Device: c.file, RootHash: c.pinned, Signed: true})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s: %v, want an error naming %s with %q", name, err, c.file, c.want)
		}
	}
	if strings.Contains(log.String(), "opened") {
		t.Errorf("something was opened:\n%s", log.String())
	}
	bare := &node{root: t.TempDir(), log: newLogger(log, false)}
	if _, _, err := bare.verityRoot(contract.VerityOpen{Name: "v", Device: goodFile, Signed: true}); err == nil || !strings.Contains(err.Error(), "holds no certificate") {
		t.Errorf("no trust store: %v", err)
	}
}
