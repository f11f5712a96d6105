package contract

import (
	"reflect"
	"strings"
	"testing"
)

// verity-open --signed stands instead of --root-hash or besides it; one
// of the two is required.
func TestVerityOpenSigned(t *testing.T) {
	for _, c := range []VerityOpen{
		{Attachment: "verity_a_1", Name: "verity_a_1", Device: "/run/strata/dev/y", Signed: true},
		{Attachment: "verity_a_1", Name: "verity_a_1", Device: "/run/strata/dev/y", RootHash: "ab12", Signed: true},
	} {
		argv := Argv(c)
		got, err := Parse(argv[1:])
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("round trip of %q: %#v, %v", argv, got, err)
		}
	}
	for in, want := range map[string]string{
		"verity-open --name=v --device=/d":     "verity-open: missing --root-hash",
		"verity-open --device=/d --signed":     "verity-open: missing --name",
		"verity-open --name=v --root-hash=ab1": "verity-open: missing --device",
	} {
		if _, err := Parse(strings.Fields(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", in, err, want)
		}
	}
}
