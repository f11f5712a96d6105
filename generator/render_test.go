package generator_test

import (
	"strings"
	"testing"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/generator/generatortest"
	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/units/readback"
)

// A value that validation let through but no unit can hold (here put into
// a checked definition by hand) fails its own container with a placeholder
// that says why; the other container gets its units, and no file holds
// the value.
func TestRenderErrorFailsOneContainer(t *testing.T) {
	good := parse(t, "/etc/strata/good.json", `{"command": "/bin/true", "mount": {"nfs": {"host": "h", "path": "/export/good"}}}`)
	bad := parse(t, "/etc/strata/bad.json", `{"command": "/bin/true", "mount": {"nfs": {"host": "h", "path": "/export/bad"}}}`)
	bad.Container.Mount.NFS.Path = "/export/bad\n[Service]\nExecStartPre=/bin/evil"

	out, failed := generator.Generate([]*definition.Definition{good, bad}, nil)
	if len(failed) != 1 || failed[0].Name != "bad" {
		t.Fatalf("failed = %+v, want the bad container only", failed)
	}
	msg := failed[0].Problems.Error()
	if !strings.Contains(msg, "cannot be written as a unit that systemd reads as meant") || !strings.Contains(msg, "control character 0x0a") {
		t.Errorf("problem: %s", msg)
	}
	if out.Files[layout.ContainerUnit("good")+".d/"+layout.DropInName] == nil {
		t.Error("the good container lost its units")
	}
	for name, data := range out.Files {
		opts, err := readback.Options(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			if o.Name == "ExecStartPre" && strings.Contains(o.Value, "/bin/evil") {
				t.Errorf("%s holds the injected setting:\n%s", name, data)
			}
		}
	}
	values, err := readBack(out)
	if err != nil {
		t.Fatal(err)
	}
	if !values[failed[0].Problems[0].String()] {
		t.Errorf("the placeholder does not carry the problem as one argument: %v", values)
	}
}

// A placeholder shows any problem text as one argument of the helper,
// whatever it holds: specifiers, variables, quotes, backslashes, and
// control characters (as \xNN).
func TestPlaceholderEscapes(t *testing.T) {
	texts := []string{`100% of $HOME "quoted" 'single' back\slash ; -x`, "ends with \\", "line\nfeed\rCR\x00NUL\ttab", "%n%i$$"}
	var problems definition.Problems
	for _, s := range texts {
		problems = append(problems, definition.Problem{File: "/etc/strata/p.json", Severity: definition.Error, Message: s})
	}
	out, _ := generator.Generate(nil, []generator.Failed{{Name: "p", Source: "/etc/strata/p.json", Problems: problems}})
	file := layout.ContainerUnit("p") + ".d/" + layout.DropInName
	values, err := readBack(out)
	if err != nil || out.Files[file] == nil {
		t.Fatalf("%s: %v\n%s", file, err, out.Files[file])
	}
	want := []string{
		`/etc/strata/p.json: 100% of $HOME "quoted" 'single' back\slash ; -x`,
		`/etc/strata/p.json: ends with \`,
		`/etc/strata/p.json: line\x0afeed\x0dCR\x00NUL\x09tab`,
		`/etc/strata/p.json: %n%i$$`,
	}
	for _, w := range want {
		if !values[w] {
			t.Errorf("%q is not read back from\n%s", w, out.Files[file])
		}
	}
	if !values[contract.VerbFail] {
		t.Error("the placeholder does not run the helper's fail verb")
	}
}

func parse(t *testing.T, name, body string) *definition.Definition {
	t.Helper()
	d, problems := definition.Parse(name, []byte(body))
	if d == nil {
		t.Fatalf("%s: %v", name, problems)
	}
	return d
}

// The longest machine name definition accepts leads to unit names systemd
// takes (255 bytes once escaped: var-lib-machines-NAME.mount and
// run-strata-upper-NAME.mount are the longest); one more '-' is refused.
func TestLongestMachineName(t *testing.T) {
	name := "a" + strings.Repeat("-", 57) + "b"
	body := `{"command": "/bin/true", "mount": {"overlay": {"lower": [{"nfs": {"host": "h", "path": "/export/x"}}]}}}`
	d := parse(t, "/etc/strata/"+name+".json", body)
	out, failed := generator.Generate([]*definition.Definition{d}, nil)
	if len(failed) > 0 {
		t.Fatalf("%v", failed[0].Problems)
	}
	longest := ""
	for p := range out.Files {
		if u, _, _ := strings.Cut(p, ".d/"); len(u) > len(longest) {
			longest = u
		}
	}
	if len(longest) != 253 {
		t.Errorf("longest unit name %s is %d bytes, want 253 (the limit's arithmetic changed?)", longest, len(longest))
	}
	v, err := generatortest.NewVerifier(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(out, t.TempDir()); err != nil {
		t.Error(err)
	}
	if _, problems := definition.Parse("/etc/strata/a"+strings.Repeat("-", 58)+"b.json", []byte(body)); !strings.Contains(problems.Error(), "longer than systemd's 255 bytes") {
		t.Errorf("one '-' more: %v", problems)
	}
}

// The helper checks an RBD map with krbd's own rules before it writes to
// the kernel; the generator applies the same check, so a map the helper
// would refuse (here a snapshot name the kernel takes for the head, put
// into a checked definition by hand) fails at validation, with its field.
func TestHelperRefusalFailsAtGeneration(t *testing.T) {
	body := `{"command": "/bin/true", "mount": {"attach": {"fs_type": "squashfs", "attach": {"rbd": {"monitors": ["10.0.0.1"], "pool": "rbd", "image": "i"}}}}}`
	good := parse(t, "/etc/strata/good.json", body)
	bad := parse(t, "/etc/strata/bad.json", body)
	bad.Container.Mount.Attach.Attach.RBD.Snapshot = "-"

	_, failed := generator.Generate([]*definition.Definition{good, bad}, nil)
	if len(failed) != 1 || failed[0].Name != "bad" {
		t.Fatalf("failed = %+v, want the bad container only", failed)
	}
	p := failed[0].Problems[0]
	if p.Path != "mount.attach.attach.rbd" || !strings.Contains(p.Message, "the node's helper would refuse this map") || !strings.Contains(p.Message, "image head") {
		t.Errorf("problem: %+v", p)
	}
}

// Likewise for an iSCSI login: the helper's own check of what reaches
// iscsiadm (here an initiator name with a space, put in by hand).
func TestHelperLoginRefusalFailsAtGeneration(t *testing.T) {
	body := `{"command": "/bin/true", "mount": {"attach": {"fs_type": "ext4", "attach": {"iscsi": {"initiator": "iqn.2024-01.org.example:node1", "target": "iqn.2003-01.org.example:t", "host": "10.0.0.5"}}}}}`
	good := parse(t, "/etc/strata/good.json", body)
	bad := parse(t, "/etc/strata/bad.json", body)
	bad.Container.Mount.Attach.Attach.ISCSI.Initiator = "iqn.2024-01.org.example:node 1"

	_, failed := generator.Generate([]*definition.Definition{good, bad}, nil)
	if len(failed) != 1 || failed[0].Name != "bad" {
		t.Fatalf("failed = %+v, want the bad container only", failed)
	}
	if p := failed[0].Problems[0]; p.Path != "mount.attach.attach.iscsi" || !strings.Contains(p.Message, "the node's helper would refuse this login") {
		t.Errorf("problem: %+v", p)
	}
}
