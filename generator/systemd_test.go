package generator_test

import (
	"strings"
	"testing"

	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/internal/layout"
)

// A definition that needs a setting newer than the node's systemd is
// refused (placeholder, problem naming the field, the feature and the
// version); on a systemd that has it, or when the version is unknown,
// nothing changes.
func TestNewerSettingsRefusedOnOlderSystemd(t *testing.T) {
	cases := []struct {
		dir, field string
		version    int
		want       string // "" = accepted
	}{
		{"rbd-credential-encrypted", "mount.overlay.lower[0].attach.attach.rbd.options.credential", 249,
			"encrypted credentials (LoadCredentialEncrypted=) need systemd 250 or newer; this node runs systemd 249: decrypt it (systemd-creds decrypt) to a root-only file and name that, or give the key in a keyring file (options.keyring) instead"},
		{"rbd-credential-encrypted", "", 250, ""},
		{"rbd-credential-encrypted", "", 0, ""},
		{"rbd-credential-encrypted", "mount.overlay.lower[0].attach.attach.rbd.options.credential", 239,
			"encrypted credentials (LoadCredentialEncrypted=) need systemd 250 or newer; this node runs systemd 239: give the key in a keyring file (options.keyring) instead"},
		{"rbd-credential", "mount.overlay.lower[0].attach.attach.rbd.options.credential", 239,
			"systemd credentials (LoadCredential=) need systemd 247 or newer; this node runs systemd 239: give the key in a keyring file (options.keyring) instead"},
		{"rbd-credential", "", 247, ""},
		{"iscsi-chap-credential", ".chap.credential", 246,
			"systemd credentials (LoadCredential=) need systemd 247 or newer; this node runs systemd 246: give it as chap.password in a root-only definition file instead"},
		{"rbd-keyring", "", 239, ""},
	}
	defer func(v *generator.Version) { generator.Systemd = v }(generator.Systemd)
	for _, c := range cases {
		generator.Systemd = generator.KnownVersion(c.version)
		r := generator.Run([]string{"testdata/cases/" + c.dir + "/input"})
		if c.want == "" {
			if len(r.Failed) != 0 || len(r.Loaded) != 1 {
				t.Errorf("%s on %d: refused: %v", c.dir, c.version, r.Problems)
			}
			continue
		}
		if len(r.Failed) != 1 || len(r.Problems) != 1 {
			t.Errorf("%s on %d: want one refusal, got %v", c.dir, c.version, r.Problems)
			continue
		}
		p := r.Problems[0]
		if p.Message != c.want || !strings.HasSuffix(p.Path, c.field) || !strings.HasSuffix(p.File, ".json") {
			t.Errorf("%s on %d:\n got %s: %s: %s\nwant ...%s: %s", c.dir, c.version, p.File, p.Path, p.Message, c.field, c.want)
		}
		drop := r.Output.Files["systemd-nspawn@"+r.Failed[0].Name+".service.d/"+layout.DropInName]
		if !strings.Contains(string(drop), "strata-helper fail") || !strings.Contains(string(drop), "need systemd") ||
			strings.Contains(string(drop), "LoadCredential") && !strings.Contains(string(drop), "(LoadCredential") {
			t.Errorf("%s on %d: placeholder does not say why:\n%s", c.dir, c.version, drop)
		}
		for name := range r.Output.Files {
			if strings.HasPrefix(name, "strata-attach@") {
				t.Errorf("%s on %d: a refused definition still wrote %s", c.dir, c.version, name)
			}
		}
	}
}

// The version is read from the manager's binary: excerpts of the real
// binaries of Debian 11, 12 and 13 (the bytes around the banner, as
// shipped) and of EL8's banner format.
func TestNodeSystemdReadsTheBanner(t *testing.T) {
	for root, want := range map[string]int{
		"testdata/systemd/bullseye": 247,
		"testdata/systemd/bookworm": 252,
		"testdata/systemd/trixie":   257,
		"testdata/systemd/el8":      239,
	} {
		got, err := generator.NodeSystemd(root)
		if err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", root, got, err, want)
		}
	}
	if v, err := generator.NodeSystemd(t.TempDir()); err == nil || v != 0 {
		t.Errorf("an empty root: %d, %v; want an error", v, err)
	}
}
