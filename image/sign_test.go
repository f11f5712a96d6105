package image

import (
	"context"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/strata-project/strata/internal/verity"
	"github.com/strata-project/strata/internal/verity/veritytest"
)

// A signed verity file: the signature sits between the tree and the
// trailer (the file still a whole number of blocks, as a loop device
// needs), the trailer locates it, a store trusting the signer accepts it
// for the trailer's root hash, and veritysetup still verifies the tree.
func TestBuildFileSigned(t *testing.T) {
	needTools(t, "mksquashfs", "veritysetup")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("signed"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := veritytest.NewSigner(t, "image builder")
	out := filepath.Join(t.TempDir(), "signed.img")
	res, err := BuildFile(context.Background(), src, out, BuildOptions{Verity: true, Sign: s})
	if err != nil {
		t.Fatal(err)
	}
	v, err := ReadVerity(out)
	if err != nil {
		t.Fatal(err)
	}
	tree := v.HashOffset + uint64(len(res.Verity.HashArea))
	st, _ := os.Stat(out)
	if v.SignatureOffset != tree || v.SignatureSize == 0 || st.Size()%verity.BlockSize != 0 || st.Size() != res.FileSize {
		t.Errorf("signature at %d (%d bytes), tree ends at %d; file %d bytes, build said %d", v.SignatureOffset, v.SignatureSize, tree, st.Size(), res.FileSize)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "builder.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Chain[0].Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	trust, err := verity.LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if who, err := trust.Verify(v.Signature, v.RootHashHex(), time.Now()); err != nil || who.Subject != "CN=image builder" {
		t.Errorf("the stored signature: %+v, %v", who, err)
	}
	cmd := exec.Command("veritysetup", "verify", "--hash-offset="+strconv.FormatUint(v.HashOffset, 10), out, out, v.RootHashHex())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("veritysetup verify: %v\n%s", err, b)
	}
}
