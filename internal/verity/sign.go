package verity

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
)

// MaxSignatureSize bounds the signature area (the PKCS#7 signature with
// its certificates): an RBD build sizes the image before it signs, so it
// keeps this much room after the hash tree.
const MaxSignatureSize = 64 << 10

// Signer signs root hashes with a key and its certificate chain (the
// signer's certificate first, then any intermediates).
type Signer struct {
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// LoadSigner reads a PEM private key (PKCS#8, PKCS#1 or SEC 1) and a PEM
// file of certificates, the signer's first, and checks that they belong
// together. Errors name the file, never the key's bytes.
func LoadSigner(keyFile, certFile string) (*Signer, error) {
	chain, err := readCertificates(certFile)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE in it", certFile)
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(chain[0].PublicKey) {
		return nil, fmt.Errorf("%s is not the key of the certificate in %s (%s)", keyFile, certFile, chain[0].Subject)
	}
	return &Signer{Key: key, Chain: chain}, nil
}

func readKey(file string) (crypto.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return nil, fmt.Errorf("%s: no PEM private key in it (want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", file)
		}
		var key any
		switch blk.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", file, blk.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: a %T cannot sign", file, key)
		}
		return s, nil
	}
}

// readCertificates reads every PEM CERTIFICATE of file, in order.
func readCertificates(file string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return certs, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %v", file, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
}

// Sign signs the root hash as systemd's RootHashSignature= and
// veritysetup's --root-hash-signature want it: a detached PKCS#7
// SignedData (DER) over the lowercase hex root hash, SHA-256, no signed
// attributes. Unlike `openssl smime -sign -nocerts` it carries the
// signer's certificate chain, so that the image names its signer (`strata
// image info`) and a node can check the chain to a CA in its trust store;
// the kernel and openssl read such a signature as well.
func (s *Signer) Sign(rootHash string) ([]byte, error) {
	sd, err := pkcs7.NewSignedData([]byte(rootHash))
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.SignWithoutAttr(s.Chain[0], s.Key, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("signing the root hash: %v", err)
	}
	for _, c := range s.Chain[1:] {
		sd.AddCertificate(c)
	}
	sd.Detach()
	sig, err := sd.Finish()
	if err != nil {
		return nil, err
	}
	if len(sig) > MaxSignatureSize {
		return nil, fmt.Errorf("the signature with its %d certificates has %d bytes, more than the %d the image keeps for it", len(s.Chain), len(sig), MaxSignatureSize)
	}
	return sig, nil
}

// SetSignature places sig after the hash tree (HashArea must be set): the
// trailer then records where it is.
func (v *Params) SetSignature(sig []byte) {
	v.Signature = sig
	v.SignatureOffset = v.HashOffset + uint64(len(v.HashArea))
	v.SignatureSize = uint64(len(sig))
}

// ErrUnsigned says that an image's trailer records no signature.
var ErrUnsigned = errors.New("the image has no root hash signature (built without --sign-key and --sign-cert?)")

// ReadSignature reads the signature the trailer locates.
func ReadSignature(r io.ReaderAt, v *Params) ([]byte, error) {
	if v.SignatureSize == 0 {
		return nil, ErrUnsigned
	}
	sig := make([]byte, v.SignatureSize)
	if _, err := r.ReadAt(sig, int64(v.SignatureOffset)); err != nil {
		return nil, fmt.Errorf("reading the root hash signature: %w", err)
	}
	return sig, nil
}

// SignerInfo describes who signed: what `strata image info` shows and the
// helper logs.
type SignerInfo struct {
	Subject     string            `json:"subject"`
	Issuer      string            `json:"issuer"`
	SHA256      string            `json:"sha256"` // fingerprint of the signer's certificate (DER), as openssl x509 -fingerprint -sha256 without colons
	NotAfter    string            `json:"not_after"`
	Certificate *x509.Certificate `json:"-"`
}

func signerInfo(c *x509.Certificate) *SignerInfo {
	sum := sha256.Sum256(c.Raw)
	return &SignerInfo{Subject: c.Subject.String(), Issuer: c.Issuer.String(), SHA256: hex.EncodeToString(sum[:]),
		NotAfter: c.NotAfter.UTC().Format(time.RFC3339), Certificate: c}
}

// Signed reads a signature and returns its signer, as the signature names
// it (nothing is checked: see Verify). A signature without certificates
// (openssl smime -nocerts) names no signer.
func Signed(sig []byte) (*SignerInfo, error) {
	p7, err := parseSignature(sig)
	if err != nil {
		return nil, err
	}
	c := p7.GetOnlySigner()
	if c == nil {
		return nil, errors.New("the root hash signature carries no signer certificate")
	}
	return signerInfo(c), nil
}

func parseSignature(sig []byte) (*pkcs7.PKCS7, error) {
	p7, err := pkcs7.Parse(sig)
	if err != nil {
		return nil, fmt.Errorf("the root hash signature is not PKCS#7: %v", err)
	}
	if len(p7.Signers) != 1 {
		return nil, fmt.Errorf("the root hash signature has %d signers, want one", len(p7.Signers))
	}
	return p7, nil
}

// Trust is a node's trust store: the certificates a root hash signature
// must lead to.
type Trust struct {
	Dir   string
	Certs []*x509.Certificate
}

// LoadTrust reads every *.pem and *.crt file of dir (PEM certificates).
// Strict: a file that does not parse is an error naming it, and so is a
// store with no certificate, so that a mistake is seen at the first start
// rather than trusted around; and so is a directory or file that others
// than its owner may write (as sshd's StrictModes): whoever can add a
// certificate decides what every container runs.
func LoadTrust(dir string) (*Trust, error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("the trust store: %v", err)
	}
	if err == nil {
		if err := ownerOnly(dir); err != nil {
			return nil, err
		}
	}
	t := &Trust{Dir: dir}
	for _, e := range entries {
		if e.IsDir() || !slices.Contains([]string{".pem", ".crt"}, filepath.Ext(e.Name())) {
			continue
		}
		file := filepath.Join(dir, e.Name())
		if err := ownerOnly(file); err != nil {
			return nil, err
		}
		certs, err := readCertificates(file)
		if err != nil {
			return nil, fmt.Errorf("the trust store: %v", err)
		}
		t.Certs = append(t.Certs, certs...)
	}
	if len(t.Certs) == 0 {
		return nil, fmt.Errorf("the trust store %s holds no certificate (PEM files named *.pem or *.crt): a signed image cannot be checked", dir)
	}
	return t, nil
}

// ownerOnly refuses a trust store path that group or others may write.
func ownerOnly(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("the trust store: %v", err)
	}
	if m := st.Mode().Perm(); m&0o022 != 0 {
		return fmt.Errorf("the trust store: %s may be written by others than its owner (mode %04o): chmod go-w it", path, m)
	}
	return nil
}

// Verify checks sig, a root hash signature, against rootHash (hex) and the
// trust store at now: one signer, whose signature is over exactly that
// hex string, whose certificate is in the store or chains to one in it
// (intermediates may come with the signature), valid at now, and usable
// for signing (key usage digitalSignature and extended key usage code
// signing, where the certificates restrict them). It returns the signer.
func (t *Trust) Verify(sig []byte, rootHash string, now time.Time) (*SignerInfo, error) {
	p7, err := parseSignature(sig)
	if err != nil {
		return nil, err
	}
	// A signature without certificates (openssl -nocerts) is signed by a
	// certificate of the store itself.
	// The store's certificates come first: a signer is found by issuer
	// and serial, and a trusted one must win over a look-alike.
	p7.Certificates = append(slices.Clone(t.Certs), p7.Certificates...)
	p7.Content = []byte(rootHash)
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, fmt.Errorf("the root hash signature is by a certificate neither it nor the trust store %s holds (issuer and serial %s)", t.Dir, signerID(p7))
	}
	if err := t.chain(signer, p7.Certificates, now); err != nil {
		return nil, err
	}
	if err := p7.Verify(); err != nil {
		return nil, fmt.Errorf("the root hash signature by %q is not over this image's root hash %s (a signature of another image, or a modified trailer): %v", signer.Subject, rootHash, err)
	}
	return signerInfo(signer), nil
}

func signerID(p7 *pkcs7.PKCS7) string {
	si := p7.Signers[0].IssuerAndSerialNumber
	return fmt.Sprintf("%x/%s", sha256.Sum256(si.IssuerName.FullBytes), si.SerialNumber)
}

// chain checks that signer leads to the trust store.
func (t *Trust) chain(signer *x509.Certificate, certs []*x509.Certificate, now time.Time) error {
	if signer.KeyUsage != 0 && signer.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("the signer %q may not sign: its key usage lacks digitalSignature", signer.Subject)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range t.Certs {
		roots.AddCert(c)
	}
	for _, c := range certs {
		inter.AddCert(c)
	}
	_, err := signer.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}})
	var inv x509.CertificateInvalidError
	var unk x509.UnknownAuthorityError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unk):
		return fmt.Errorf("the signer %q is not trusted: neither it nor its issuer %q is in the trust store %s", signer.Subject, signer.Issuer, t.Dir)
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return fmt.Errorf("the signer %q is not trusted at %s: %s (sign with a valid certificate)", signer.Subject, now.UTC().Format(time.RFC3339), strings.TrimPrefix(inv.Error(), "x509: "))
	default:
		return fmt.Errorf("the signer %q is not trusted: %s", signer.Subject, strings.TrimPrefix(err.Error(), "x509: "))
	}
}
