package definition

import (
	"strings"
	"testing"
)

// "signed": true stands instead of a pinned root hash, or besides it;
// anything but a boolean is refused at its field path, and so is a
// verity object with neither.
func TestVeritySigned(t *testing.T) {
	for _, body := range []string{`{"signed": true}`, `{"signed": true, "root_hash": "` + goodRootHash + `"}`} {
		def, problems := Parse("c.json", []byte(verityLayer(body)))
		if def == nil || problems.HasErrors() {
			t.Fatalf("%s: %v", body, problems)
		}
		if v := def.Container.Mount.Overlay.Lower[0].Attach.Verity; !v.Signed {
			t.Errorf("%s: bound %+v, want Signed", body, v)
		}
	}
	const at = `c.json:1: mount.overlay.lower[0].attach.verity`
	for body, want := range map[string]string{
		`{"signed": "yes"}`: at + `.signed: expected a boolean`,
		`{"signed": false}`: `, unless "signed": true trusts the image's signed root hash instead`,
		`{"signd": true}`:   at + `.signd: unknown field "signd"; did you mean "signed"?`,
	} {
		def, problems := Parse("c.json", []byte(verityLayer(body)))
		if def != nil || !strings.Contains(problems.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", body, problems, want)
		}
		if body == `{"signed": false}` && !strings.Contains(problems.Error(), at+".root_hash: is required: ") {
			t.Errorf("%s: %v, want root_hash required at its path", body, problems)
		}
	}
}
