package definition

import (
	"strings"
	"testing"
)

const goodRootHash = "4e1f36dd7a0a1e0f1c1e5e5d2f7c4bd41ad0a5d62c5ef3a3b4c2e6c0d9a8f7e1"

func verityLayer(verity string) string {
	return `{"command": "/bin/true", "mount": {"kind": "overlay", "overlay": {"lower": [{"kind": "attach", "attach": {"fs_type": "squashfs", ` +
		`"attach": {"kind": "loopback", "loopback": {"path": "/i.img", "base": "root"}}, "verity": ` + verity + `}}]}}}`
}

// A pinned root hash binds (upper case is read as lower case, as
// veritysetup does); each wrong one is refused at its field path.
func TestVerityRootHash(t *testing.T) {
	def, problems := Parse("c.json", []byte(verityLayer(`{"root_hash": "`+strings.ToUpper(goodRootHash)+`"}`)))
	if def == nil || problems.HasErrors() {
		t.Fatalf("a good root hash: %v", problems)
	}
	if got := def.Container.Mount.Overlay.Lower[0].Attach.Verity.RootHash; got != goodRootHash {
		t.Errorf("root hash %q, want %q", got, goodRootHash)
	}
	const at = `c.json:1: mount.overlay.lower[0].attach.verity`
	for body, want := range map[string]string{
		`{}`: at + `.root_hash: is required: the root hash strata image build printed (64 hex digits)`,
		`{"root_hash": "` + goodRootHash[:63] + `"}`: at + `.root_hash: "` + goodRootHash[:63] +
			`" is not a sha256 root hash: want 64 hex digits (0-9, a-f), as strata image build prints it`,
		`{"root_hash": "` + goodRootHash[:63] + `g"}`: at + `.root_hash: "` + goodRootHash[:63] + `g" is not a sha256 root hash`,
		`{"roothash": "` + goodRootHash + `"}`:        at + `.roothash: unknown field "roothash"; did you mean "root_hash"?`,
		`{"root_hash": 12}`:                           at + `.root_hash: expected a string, got an integer`,
	} {
		def, problems := Parse("c.json", []byte(verityLayer(body)))
		if def != nil || !strings.Contains(problems.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", body, problems, want)
		}
	}
}
