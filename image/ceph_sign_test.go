//go:build ceph && pacific && cgo

package image

import (
	"bytes"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cephtest "github.com/strata-project/strata/test/ceph"

	"github.com/strata-project/strata/internal/verity"
	"github.com/strata-project/strata/internal/verity/veritytest"
)

// A signed --verity build into RBD: the signature follows the hash tree
// inside the image's room for it, the trailer in the last block locates
// it (so a node reading the mapped device finds it), it reads back with
// the build's verification, Info names the signer, and a trust store
// holding the signer's certificate accepts it for the image's root hash.
func TestCephSigned(t *testing.T) {
	needTools(t, "mksquashfs", "unsquashfs")
	e := &cephEnv{c: cephtest.Start(t)}
	conn := e.connect(t)
	s := veritytest.NewSigner(t, "image builder")
	ref := Ref{Pool: "rbd", Image: "signed"}
	var progress bytes.Buffer
	res, sq := e.build(t, conn, bigTree(t, 6<<20), ref, BuildOptions{Verity: true, Sign: s, Progress: NewProgress(&progress, false)})
	v := res.Verity
	if v == nil || len(v.Signature) == 0 || !res.Verified || !strings.Contains(progress.String(), "the hash tree and trailer read back") {
		t.Fatalf("result %+v, progress:\n%s", res, progress.String())
	}
	if tree := v.HashOffset + uint64(len(v.HashArea)); v.SignatureOffset != tree || res.ImageSize < verityEnd(int64(len(sq)))+verity.MaxSignatureSize+verity.TrailerSize {
		t.Errorf("signature at %d (tree ends at %d), image of %d bytes", v.SignatureOffset, tree, res.ImageSize)
	}
	back := e.readImage(t, ref, int64(res.ImageSize))
	got, err := verity.Read(bytes.NewReader(back), uint64(len(back)))
	if err != nil || !bytes.Equal(got.Signature, v.Signature) {
		t.Fatalf("the image's trailer and signature: %+v, %v", got, err)
	}
	in, err := conn.Info(ref)
	if err != nil || in.Verity == nil || !bytes.Equal(in.Verity.Signature, v.Signature) {
		t.Fatalf("info: %+v (%s), %v", in.Verity, in.NoVerity, err)
	}
	if who, err := verity.Signed(in.Verity.Signature); err != nil || who.Subject != "CN=image builder" {
		t.Errorf("info's signer: %+v, %v", who, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "builder.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Chain[0].Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	trust, err := verity.LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Verify(got.Signature, got.RootHashHex(), time.Now()); err != nil {
		t.Errorf("the trust store refuses the image's signature: %v", err)
	}
}
