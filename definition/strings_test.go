package definition

import (
	"strings"
	"testing"
)

// The string rule holds in every format, for fields, list items, map keys
// and values, and secrets (never quoted).
func TestStringRuleAllFormats(t *testing.T) {
	const loop = `"mount": {"kind": "attach", "attach": {"fs_type": "squashfs", "attach": {"kind": "loopback", "loopback": {"path": "/i.sqfs", "base": "root"}}}}`
	cases := []struct {
		json, toml, yaml string
		want             string
	}{
		{`{"command": "/bin/true\rx", ` + loop + `}`, "command = \"/bin/true\\rx\"\n", "command: \"/bin/true\\rx\"\n",
			`command: "/bin/true\rx" contains the control character \r (carriage return) at byte 9`},
		{`{"command": "/bin/true", "namespaces": ["net\u0000"], ` + loop + `}`, "command = \"/bin/true\"\nnamespaces = [\"net\\u0000\"]\n", "command: /bin/true\nnamespaces: [\"net\\0\"]\n",
			`namespaces[0]: "net\x00" contains the control character NUL at byte 3`},
		{`{"command": "/bin/true", "environment": {"A\tB": "x"}, ` + loop + `}`, "command = \"/bin/true\"\n[environment]\n\"A\\tB\" = \"x\"\n", "command: /bin/true\nenvironment: {\"A\\tB\": x}\n",
			`environment: key "A\tB" contains the control character \t (tab) at byte 1`},
		{`{"command": "/bin/true", "service": {"MemoryMax": ["1G", "2G\f"]}, ` + loop + `}`, "command = \"/bin/true\"\n[service]\nMemoryMax = [\"1G\", \"2G\\f\"]\n", "command: /bin/true\nservice: {MemoryMax: [1G, \"2G\\f\"]}\n",
			`service.MemoryMax[1]: "2G\f" contains the control character 0x0c at byte 2`},
		{`{"command": "/bin/true", "unit": {"After": "x\u007f"}, ` + loop + `}`, "command = \"/bin/true\"\n[unit]\nAfter = \"x\\u007f\"\n", "command: /bin/true\nunit: {After: \"x\\x7f\"}\n",
			`unit.After: "x\x7f" contains the control character 0x7f at byte 1`},
	}
	for _, c := range cases {
		for name, body := range map[string]string{"c.json": c.json, "c.toml": c.toml, "c.yaml": c.yaml} {
			def, problems := Parse(name, []byte(body))
			if def != nil || !strings.Contains(problems.Error(), c.want) {
				t.Errorf("%s %q:\n got %v\nwant %s", name, body, problems, c.want)
			}
		}
	}
}

func TestStringRuleSecretNotQuoted(t *testing.T) {
	body := `{"command": "/bin/true", "mount": {"kind": "attach", "attach": {"fs_type": "squashfs", "attach": {"kind": "iscsi", "iscsi": {
		"initiator": "iqn.2024-01.org.example:n", "target": "iqn.2024-01.org.example:t", "host": "h",
		"chap": {"username": "u", "password": "hunter2\nsecret"}}}}}}`
	_, problems := Parse("s.json", []byte(body))
	want := "mount.attach.attach.iscsi.chap.password: contains the control character \\n (line feed) at byte 7"
	if !strings.Contains(problems.Error(), want) {
		t.Errorf("got %v, want %s", problems, want)
	}
	if strings.Contains(problems.Error(), "hunter2") {
		t.Errorf("the secret is quoted: %v", problems)
	}
}

func TestControlProblem(t *testing.T) {
	for _, s := range []string{"", "plain", "ä ö", `back\slash`, "100% $x \"q\" ';'"} {
		if p := ControlProblem(s); p != "" {
			t.Errorf("ControlProblem(%q) = %s", s, p)
		}
	}
	for _, s := range []string{"\n", "a\rb", "\x00", "\x1f", "\x7f", "\xff"} {
		if ControlProblem(s) == "" {
			t.Errorf("ControlProblem(%q) accepted", s)
		}
	}
}

// A problem at a key holding control characters prints the path quoted:
// the key is the file's, and the path must not break a log line or drive
// a terminal.
func TestProblemPathPrintable(t *testing.T) {
	_, problems := Parse("c.json", []byte("{\"command\": \"/bin/true\", \"a\\u001b[31m\\nb\": 1}"))
	if len(problems) == 0 {
		t.Fatal("no problem")
	}
	for _, p := range problems {
		if strings.ContainsAny(p.String(), "\x1b\n") {
			t.Errorf("unprintable: %q", p.String())
		}
	}
	if s := problems.Error(); !strings.Contains(s, `c.json:1: "a\x1b[31m\nb": unknown field`) {
		t.Errorf("got %q", s)
	}
}
