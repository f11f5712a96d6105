package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func defsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "good.json"), []byte(`{"command": "/bin/true", "mount": {"kind": "bind", "bind": {"path": "/srv/root", "base": "root"}}}`), 0o600)
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("command: /bin/true\nmount:\n  kind: bind\n  bind: {path: /srv/root, base: host}\n"), 0o600)
	return dir
}

func TestValidate(t *testing.T) {
	dir := defsDir(t)
	var out, errOut bytes.Buffer
	if code := run([]string{"validate", dir}, &out, &errOut); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	want := filepath.Join(dir, "bad.yaml") + `:4: mount.bind.base: "host" is not a base: use "root" or "mount"` + "\n1 valid, 1 invalid\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	if code := run([]string{"validate", filepath.Join(dir, "good.json")}, &out, &errOut); code != 0 || out.String() != "1 valid, 0 invalid\n" {
		t.Errorf("one good file: exit %d, %q", code, out.String())
	}
}

func TestValidateJSON(t *testing.T) {
	var out bytes.Buffer
	run([]string{"validate", "--json", defsDir(t)}, &out, &bytes.Buffer{})
	var report struct {
		Valid, Invalid []string
		Problems       []struct {
			File, Field, Message, Severity string
			Line                           int
		}
	}
	if err := json.Unmarshal(out.Bytes(), &report); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(report.Valid) != 1 || report.Valid[0] != "good" || len(report.Invalid) != 1 || report.Invalid[0] != "bad" ||
		len(report.Problems) != 1 || report.Problems[0].Field != "mount.bind.base" || report.Problems[0].Line != 4 || report.Problems[0].Severity != "error" {
		t.Errorf("report: %+v", report)
	}
}

// The same name given twice on the command line is a conflict.
func TestValidateDuplicateNames(t *testing.T) {
	dir := defsDir(t)
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "good.toml"), []byte("command = \"/x\"\n"), 0o600)
	var out bytes.Buffer
	run([]string{"validate", filepath.Join(dir, "good.json"), filepath.Join(other, "good.toml")}, &out, &bytes.Buffer{})
	if !strings.Contains(out.String(), `container "good" is also defined by `+filepath.Join(dir, "good.json")) {
		t.Errorf("got %s", out.String())
	}
}

func TestRender(t *testing.T) {
	dir := defsDir(t)
	var out, errOut bytes.Buffer
	if code := run([]string{"render", filepath.Join(dir, "good.json")}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "# systemd-nspawn@good.service.d/50-strata.conf\n") || !strings.Contains(out.String(), "\n# var-lib-machines-good.mount\n") {
		t.Errorf("render:\n%s", out.String())
	}

	tree := filepath.Join(t.TempDir(), "tree")
	if code := run([]string{"render", "--output", tree, dir}, &out, &errOut); code != 1 {
		t.Errorf("render with a broken definition: exit %d, want 1", code)
	}
	for _, f := range []string{"var-lib-machines-good.mount", "systemd-nspawn@bad.service.d/50-strata.conf"} {
		if _, err := os.Stat(filepath.Join(tree, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// --output into a directory that does not exist yet writes the whole tree:
// a container that is not started at boot has no .wants links, so its
// first paths are top-level files, which were lost (only the drop-in's
// subdirectory created the output directory).
func TestRenderIntoNewDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "c.json"), []byte(`{"command": "/bin/true", "state": "stopped", "mount": {"kind": "overlay", "overlay": {"lower": [{"kind": "bind", "bind": {"path": "/srv/base", "base": "root"}}]}}}`), 0o600)
	tree := filepath.Join(t.TempDir(), "new", "tree")
	var out, errOut bytes.Buffer
	if code := run([]string{"render", "--output", tree, dir}, &out, &errOut); code != 0 {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
	run([]string{"render", dir}, &out, &errOut)
	var want []string
	for _, line := range strings.Split(out.String(), "\n") {
		if f, ok := strings.CutPrefix(line, "# "); ok && !strings.HasPrefix(f, "Automatically") && !strings.HasPrefix(f, "Edit the") {
			want = append(want, f)
		}
	}
	if len(want) < 4 {
		t.Fatalf("render printed too few files: %v", want)
	}
	for _, f := range want {
		if _, err := os.Lstat(filepath.Join(tree, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// render --explain shows each merged value with the file and line it came
// from, a drop-in's over the definition's, and never a secret's value.
func TestRenderExplain(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "web.json"), []byte("{\n  \"command\": \"/bin/true\",\n  \"state\": \"running\"\n}\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, "web.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "web.d", "10-stop.yaml"), []byte("state: stopped\nmount:\n  nfs: {host: h, path: /x}\n  kind: nfs\nsecret_test:\n  secret: AQBSdFhcS0o=\n"), 0o600)
	var out, errOut bytes.Buffer
	run([]string{"render", "--explain", "web", dir}, &out, &errOut)
	dropIn := filepath.Join(dir, "web.d", "10-stop.yaml")
	for _, want := range []string{
		"command = \"/bin/true\"  # " + filepath.Join(dir, "web.json") + ":2\n",
		"state = \"stopped\"  # " + dropIn + ":1\n",
		"mount.nfs.host = \"h\"  # " + dropIn + ":3\n",
		"secret_test.secret = (secret, not shown)  # " + dropIn + ":6\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String()+errOut.String(), "AQBSdFhcS0o=") {
		t.Errorf("a secret is shown:\n%s%s", out.String(), errOut.String())
	}
	if code := run([]string{"render", "--explain", "nosuch", dir}, &out, &errOut); code != 1 {
		t.Errorf("unknown container: exit %d, want 1", code)
	}
}

// validate says which files it skipped and which names are masked, and a
// path that does not exist is an error, not an invalid container.
func TestValidateSkippedAndMissing(t *testing.T) {
	dir := defsDir(t)
	os.WriteFile(filepath.Join(dir, "Demo.JSON"), []byte("{}"), 0o600)
	os.Symlink("/dev/null", filepath.Join(dir, "gone.json"))
	var out, errOut bytes.Buffer
	run([]string{"validate", dir}, &out, &errOut)
	for _, want := range []string{
		filepath.Join(dir, "Demo.JSON") + ": skipped: the extension must be lower case",
		"gone: masked: " + filepath.Join(dir, "gone.json") + " links to /dev/null",
		"1 valid, 1 invalid\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	missing := filepath.Join(dir, "nosuch")
	if code := run([]string{"validate", missing}, &out, &errOut); code != 1 || out.String() != missing+": no such file or directory\n0 valid, 0 invalid\n" {
		t.Errorf("validate of a missing path: exit %d\n%s", code, out.String())
	}
}
