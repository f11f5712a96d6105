package contract

import (
	"reflect"
	"strings"
	"testing"

	"github.com/strata-project/strata/internal/layout"
)

// Every command survives Argv → Parse unchanged: the generator and the
// helper agree on the contract.
func TestRoundTrip(t *testing.T) {
	rbd := RBD{Pool: "rbd", Namespace: "ns", Image: "image1", Snapshot: "v1"}
	target := ISCSI{Host: "10.0.0.5", Port: 3261, Target: "iqn.2003-01.org.example:t", LUN: 3}
	cmds := []Command{
		RBDMap{RBD: rbd, Monitors: []string{"10.0.0.1", "[fd00::1]:3300"}, User: "node", Options: []string{"ro", "queue_depth=128"},
			Secret: Secret{DefinitionFile: "/etc/strata/a.json", DefinitionField: "mount.attach.attach.rbd.options.secret"}},
		RBDMap{RBD: RBD{Pool: "p", Image: "i"}, Monitors: []string{"m"}, User: "admin", Secret: Secret{Keyring: "/etc/ceph/k"}},
		RBDMap{RBD: rbd, Attachment: "rbd_image1_0a", ForceUnmap: true, Monitors: []string{"m"}, User: "admin"},
		RBDUnmap{RBD: rbd, Force: true},
		RBDUnmap{RBD: rbd},
		ISCSILogin{ISCSI: target, Link: "/run/strata/dev/i", Initiator: "iqn.2024-01.org.example:n", MaxCommands: 64, QueueDepth: 32, Scheduler: "none", CHAPUser: "u", CHAPSecret: Secret{Credential: "c"}},
		ISCSILogout{ISCSI: target, Link: "/run/strata/dev/i"},
		LoopAttach{File: "/srv/a b.sqfs", ReadOnly: true, Partscan: true, Link: "/run/strata/dev/x"},
		LoopAttach{File: "/srv/a.img", Link: "/run/strata/dev/y"},
		LoopAttach{Attachment: "loop_a_1", File: "/srv/a.img", Link: "/run/strata/dev/y"},
		VerityOpen{Attachment: "verity_a_1", Name: "verity_a_1", Device: "/run/strata/dev/y", RootHash: "ab12"},
		VerityClose{Name: "verity_a_1"},
		ISCSILogin{ISCSI: target, Attachment: "iscsi_lun3_1", Link: "/run/strata/dev/i", Initiator: "iqn.2024-01.org.example:n", MaxCommands: 1, QueueDepth: 1, Scheduler: "none"},
		Release{Attachment: "loop_a_1"},
		GC{},
		GC{Container: "web", DryRun: true},
		GC{DryRun: true, JSON: true},
		Started{Container: "web", Generation: "0123abcd"},
		Health{Container: "web", Retries: 3, OnFailure: "restart", Timeout: "30s", Command: []string{"/bin/sh", "-c", "test -e /ok", "--x"}},
		Health{Container: "web", Retries: 1, OnFailure: "none", Timeout: "5s", Gate: "1min", Command: []string{"true"}},
		Health{Container: "web", Retries: 3, OnFailure: "none", Timeout: "30s", Reset: true},
		CDI{Container: "gpu", Devices: []string{"nvidia.com/gpu=all", "example.com/x=a:b"}, EnvFile: "/run/strata/cdi/gpu.env"},
		LoopDetach{Link: "/run/strata/dev/x"},
		LocalWait{Device: "/dev/sdb"},
		OverlayPrepare{Dir: "/run/strata/upper/test"},
		Fail{Messages: []string{"a.json: x: wrong", "--not-a-flag"}},
	}
	for _, c := range cmds {
		argv := Argv(c)
		if argv[0] != layout.HelperPath {
			t.Fatalf("argv[0] = %q", argv[0])
		}
		got, err := Parse(argv[1:])
		if err != nil {
			t.Errorf("Parse(%q): %v", argv, err)
			continue
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip of %T:\n got %#v\nwant %#v", c, got, c)
		}
	}
}

// Every attach command records how to undo it: the release command is
// built from the attach command alone, never from a definition.
func TestReleaseOf(t *testing.T) {
	rbd := RBD{Pool: "rbd", Image: "i", Snapshot: "v2"}
	target := ISCSI{Host: "10.0.0.5", Port: 3260, Target: "iqn.2003-01.org.example:t", LUN: 1}
	for _, c := range []struct{ in, want Command }{
		{RBDMap{RBD: rbd, ForceUnmap: true, Monitors: []string{"m"}}, RBDUnmap{RBD: rbd, Force: true}},
		{ISCSILogin{ISCSI: target, Link: "/run/strata/dev/i"}, ISCSILogout{ISCSI: target, Link: "/run/strata/dev/i"}},
		{LoopAttach{File: "/f", Link: "/run/strata/dev/l"}, LoopDetach{Link: "/run/strata/dev/l"}},
		{VerityOpen{Name: "v", Device: "/dev/x", RootHash: "ab"}, VerityClose{Name: "v"}},
		{LocalWait{Device: "/dev/sdb"}, nil},
		{OverlayPrepare{Dir: "/x"}, nil},
	} {
		if got := ReleaseOf(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ReleaseOf(%#v) = %#v, want %#v", c.in, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"":                                    "missing verb",
		"map":                                 `unknown verb "map"`,
		"rbd-map --pool=p":                    "rbd-map: missing --image, --monitors",
		"loop-attach --file=/f --link=/l --x": "loop-attach: flag provided but not defined: -x",
		"overlay-prepare --dir=/d extra":      `overlay-prepare: unexpected argument "extra"`,
	}
	for in, want := range cases {
		_, err := Parse(strings.Fields(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", in, err, want)
		}
	}
}
