package verity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki makes certificates for the tests: a CA and certificates it (or
// another) issues.
type pki struct {
	t      *testing.T
	serial int64
}

type certKey struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func (p *pki) issue(name string, parent *certKey, ca bool, tweak func(*x509.Certificate)) *certKey {
	p.t.Helper()
	p.serial++
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true, IsCA: ca}
	if ca {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	}
	if tweak != nil {
		tweak(tmpl)
	}
	signCert, signKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signCert, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signCert, key.Public(), signKey)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	return &certKey{cert: c, key: key}
}

func writePEM(t *testing.T, file string, blocks ...*pem.Block) string {
	t.Helper()
	var b bytes.Buffer
	for _, blk := range blocks {
		pem.Encode(&b, blk)
	}
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func certPEM(c *x509.Certificate) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw} }

func keyPEM(t *testing.T, k crypto.Signer) *pem.Block {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
}

// trustOf writes certs into a trust store directory and loads it.
func trustOf(t *testing.T, certs ...*x509.Certificate) *Trust {
	t.Helper()
	dir := t.TempDir()
	for i, c := range certs {
		writePEM(t, filepath.Join(dir, string(rune('a'+i))+".pem"), certPEM(c))
	}
	tr, err := LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

const testRoot = "4e1f36dd0c5c3a1f0d8e5b7a9c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e"

// A signature by a certificate a CA of the store issued is accepted,
// from the files build --sign-key/--sign-cert read; every other case is
// refused with its reason.
func TestSignVerify(t *testing.T) {
	p := &pki{t: t}
	ca := p.issue("Strata test CA", nil, true, nil)
	leaf := p.issue("image builder", ca, false, nil)
	dir := t.TempDir()
	s, err := LoadSigner(writePEM(t, filepath.Join(dir, "key.pem"), keyPEM(t, leaf.key)),
		writePEM(t, filepath.Join(dir, "cert.pem"), certPEM(leaf.cert)))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(testRoot)
	if err != nil {
		t.Fatal(err)
	}
	trust := trustOf(t, ca.cert)
	who, err := trust.Verify(sig, testRoot, time.Now())
	if err != nil {
		t.Fatalf("the good signature: %v", err)
	}
	if who.Subject != "CN=image builder" || len(who.SHA256) != 64 {
		t.Errorf("signer %+v, want CN=image builder and a fingerprint", who)
	}
	if named, err := Signed(sig); err != nil || named.SHA256 != who.SHA256 {
		t.Errorf("Signed: %+v, %v; want the signer %s", named, err, who.SHA256)
	}

	other := p.issue("Other CA", nil, true, nil)
	stranger := p.issue("stranger", other, false, nil)
	expired := p.issue("old builder", ca, false, func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	})
	serverOnly := p.issue("web server", ca, false, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	noSign := p.issue("encrypt only", ca, false, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment })
	signBy := func(ck *certKey) []byte {
		sig, err := (&Signer{Key: ck.key, Chain: []*x509.Certificate{ck.cert}}).Sign(testRoot)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	for name, c := range map[string]struct {
		sig  []byte
		root string
		want string
	}{
		"another root hash":   {sig, strings.Repeat("0", 64), "is not over this image's root hash"},
		"untrusted signer":    {signBy(stranger), testRoot, `the signer "CN=stranger" is not trusted: neither it nor its issuer "CN=Other CA" is in the trust store`},
		"expired":             {signBy(expired), testRoot, `the signer "CN=old builder" is not trusted at`},
		"not code signing":    {signBy(serverOnly), testRoot, `the signer "CN=web server" is not trusted: certificate specifies an incompatible key usage`},
		"no digitalSignature": {signBy(noSign), testRoot, "its key usage lacks digitalSignature"},
		"not PKCS#7":          {[]byte("garbage"), testRoot, "is not PKCS#7"},
		"damaged":             {append(sig[:len(sig)-1:len(sig)-1], sig[len(sig)-1]^1), testRoot, "is not over this image's root hash"},
	} {
		if _, err := trust.Verify(c.sig, c.root, time.Now()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
	if _, err := trust.Verify(signBy(expired), testRoot, time.Now()); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired: %v, want it to say expired", err)
	}
}

// LoadSigner and LoadTrust refuse what they cannot use, naming the file.
func TestLoadRefuses(t *testing.T) {
	p := &pki{t: t}
	a, b := p.issue("a", nil, false, nil), p.issue("b", nil, false, nil)
	dir := t.TempDir()
	keyA := writePEM(t, filepath.Join(dir, "a.key"), keyPEM(t, a.key))
	certB := writePEM(t, filepath.Join(dir, "b.pem"), certPEM(b.cert))
	if _, err := LoadSigner(keyA, certB); err == nil || !strings.Contains(err.Error(), "a.key is not the key of the certificate in") {
		t.Errorf("a key and another's certificate: %v", err)
	}
	if _, err := LoadSigner(certB, certB); err == nil || !strings.Contains(err.Error(), "no PEM private key") {
		t.Errorf("no key: %v", err)
	}
	if _, err := LoadSigner(keyA, keyA); err == nil || !strings.Contains(err.Error(), "no PEM CERTIFICATE") {
		t.Errorf("no certificate: %v", err)
	}
	if _, err := LoadTrust(t.TempDir()); err == nil || !strings.Contains(err.Error(), "holds no certificate") {
		t.Errorf("an empty store: %v", err)
	}
	bad := t.TempDir()
	writePEM(t, filepath.Join(bad, "broken.pem"), &pem.Block{Type: "CERTIFICATE", Bytes: []byte("nope")})
	if _, err := LoadTrust(bad); err == nil || !strings.Contains(err.Error(), "broken.pem: certificate 1") {
		t.Errorf("a broken file: %v", err)
	}
	// Writable by others: the file, then the directory.
	store := t.TempDir()
	f := writePEM(t, filepath.Join(store, "a.pem"), certPEM(a.cert))
	if _, err := LoadTrust(store); err != nil {
		t.Fatalf("a good store: %v", err)
	}
	for _, p := range []string{f, store} {
		st, _ := os.Stat(p)
		if err := os.Chmod(p, st.Mode().Perm()|0o002); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadTrust(store); err == nil || !strings.Contains(err.Error(), p+" may be written by others than its owner") {
			t.Errorf("%s writable by others: %v", p, err)
		}
		os.Chmod(p, st.Mode().Perm())
	}
}

// The signature is what openssl (and so systemd and the kernel, which
// read PKCS#7 the same way) accepts: `openssl smime -verify` checks ours,
// and Verify accepts openssl's own `smime -sign -nocerts -noattr -binary`
// by a certificate of the trust store (an RSA key, as systemd's tools make).
func TestSignatureOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is needed to check the signature's bytes: apt-get install openssl")
	}
	p := &pki{t: t}
	ca := p.issue("Strata test CA", nil, true, nil)
	leaf := p.issue("image builder", ca, false, nil)
	dir := t.TempDir()
	sig, err := (&Signer{Key: leaf.key, Chain: []*x509.Certificate{leaf.cert}}).Sign(testRoot)
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string, b []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	roothash := file("roothash.txt", []byte(testRoot))
	caFile := writePEM(t, filepath.Join(dir, "ca.pem"), certPEM(ca.cert))
	run := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	run("smime", "-verify", "-binary", "-inform", "der", "-in", file("sig.p7s", sig), "-content", roothash,
		"-CAfile", caFile, "-purpose", "any", "-out", filepath.Join(dir, "out"))
	if out, err := exec.Command(openssl, "smime", "-verify", "-binary", "-inform", "der", "-in", filepath.Join(dir, "sig.p7s"),
		"-content", file("other.txt", []byte(strings.Repeat("0", 64))), "-CAfile", caFile, "-purpose", "any").CombinedOutput(); err == nil {
		t.Errorf("openssl accepted the signature over another root hash:\n%s", out)
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "mkosi"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rsaKey.Public(), rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := x509.ParseCertificate(der)
	keyFile := writePEM(t, filepath.Join(dir, "rsa.key"), keyPEM(t, rsaKey))
	certFile := writePEM(t, filepath.Join(dir, "rsa.pem"), certPEM(self))
	run("smime", "-sign", "-nocerts", "-noattr", "-binary", "-md", "sha256", "-in", roothash, "-inkey", keyFile,
		"-signer", certFile, "-outform", "der", "-out", filepath.Join(dir, "openssl.p7s"))
	theirs, err := os.ReadFile(filepath.Join(dir, "openssl.p7s"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trustOf(t, self).Verify(theirs, testRoot, time.Now()); err != nil {
		t.Errorf("openssl's -nocerts signature by a trusted certificate: %v", err)
	}
	if _, err := trustOf(t, ca.cert).Verify(theirs, testRoot, time.Now()); err == nil || !strings.Contains(err.Error(), "neither it nor the trust store") {
		t.Errorf("openssl's -nocerts signature by a certificate not in the store: %v", err)
	}
}

// The key and certificate docs/schemes/verity.md tells admins to make
// with openssl sign, and a trust store holding that certificate accepts
// the signature.
func TestOpenSSLMadeSigner(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is needed: apt-get install openssl")
	}
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	cmd := exec.Command(openssl, "req", "-x509", "-newkey", "rsa:4096", "-nodes", "-days", "730", "-subj", "/CN=strata images",
		"-addext", "keyUsage=digitalSignature", "-addext", "extendedKeyUsage=codeSigning", "-keyout", key, "-out", cert)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	s, err := LoadSigner(key, cert)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(testRoot)
	if err != nil {
		t.Fatal(err)
	}
	trust := t.TempDir()
	b, _ := os.ReadFile(cert)
	if err := os.WriteFile(filepath.Join(trust, "strata-images.pem"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := LoadTrust(trust)
	if err != nil {
		t.Fatal(err)
	}
	if who, err := tr.Verify(sig, testRoot, time.Now()); err != nil || who.Subject != "CN=strata images" {
		t.Errorf("%+v, %v", who, err)
	}
}
