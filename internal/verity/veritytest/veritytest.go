// Package veritytest makes the keys and certificates that tests of signed
// root hashes sign with: self-signed code-signing certificates, as the
// administrator's `openssl req` in docs/schemes/verity.md makes them.
package veritytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-project/strata/internal/verity"
)

// Signer makes a P-256 key and a self-signed code-signing certificate
// for it named CN=name, valid from notBefore to notAfter.
func Signer(t testing.TB, name string, notBefore, notAfter time.Time) *verity.Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A random serial: a PKCS#7 signature names its signer by issuer and
	// serial, so two test signers must never share both.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &verity.Signer{Key: key, Chain: []*x509.Certificate{c}}
}

// NewSigner is Signer valid from an hour ago for a day.
func NewSigner(t testing.TB, name string) *verity.Signer {
	return Signer(t, name, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

// WriteFiles writes s's key and certificate as PEM files into a new
// temporary directory, as --sign-key and --sign-cert read them.
func WriteFiles(t testing.TB, s *verity.Signer, name string) (key, cert string) {
	t.Helper()
	kder, err := x509.MarshalECPrivateKey(s.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, cert = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pem")
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Chain[0].Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return key, cert
}
