package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/image"
)

// testLayer is a layer holding files (name → content; a content starting
// with "->" is a symbolic link to the rest).
func testLayer(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		h := &tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeReg, Size: int64(len(body))}
		if target, ok := strings.CutPrefix(body, "->"); ok {
			h.Typeflag, h.Linkname, h.Size, body = tar.TypeSymlink, target, 0, ""
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testLayout writes an OCI layout holding one image tagged "1.0".
func testLayout(t *testing.T, cfg v1.Config, files map[string]string) (string, v1.Hash) {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, testLayer(t, files))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", image.HostPlatform().Architecture, cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1.0"})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return dir, d
}

// An image without systemd: --output makes the squashfs, the digest is
// printed, and --print-definition writes a definition that validates and
// runs the Entrypoint and Cmd with the Env and WorkingDir.
func TestBuildOCIPrintDefinition(t *testing.T) {
	cfg := v1.Config{Entrypoint: []string{"/app/run", "--serve"}, Cmd: []string{"it's", "x y"},
		Env: []string{"PATH=/usr/bin:/bin", "GREETING=hello world"}, WorkingDir: "/app"}
	lay, dig := testLayout(t, cfg, map[string]string{"app/run": "#!/bin/sh\n"})
	out := filepath.Join(t.TempDir(), "web.sqfs")
	code, stdout, stderr := runCmd("build", "oci:"+lay+":1.0", "--output", out, "--print-definition", "--progress", "none")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"built " + out, "digest " + dig.String(), "holds no systemd", "definition for /etc/strata/web.json"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if _, err := image.Source(out); err != nil {
		t.Errorf("no squashfs made: %v", err)
	}
	def, problems := definition.Parse("web.json", []byte(stdout))
	if def == nil {
		t.Fatalf("definition does not validate: %v\n%s", problems, stdout)
	}
	c := def.Container
	argv, err := definition.SplitCommand(c.Command)
	if err != nil || !reflect.DeepEqual(argv, []string{"/app/run", "--serve", "it's", "x y"}) {
		t.Errorf("command %q reads back as %q, %v", c.Command, argv, err)
	}
	if c.Systemd || c.Environment["GREETING"] != "hello world" || !reflect.DeepEqual(c.NspawnArgs, []string{"--chdir=/app"}) {
		t.Errorf("definition: %+v", c)
	}
	if got := c.Mount.Overlay.Lower[0].Attach.Attach.Loopback.Path; got != out {
		t.Errorf("loopback path %q, want %q", got, out)
	}
}

// An image holding systemd (through /sbin/init, merged /usr) boots.
func TestBuildOCISystemd(t *testing.T) {
	lay, dig := testLayout(t, v1.Config{Cmd: []string{"/bin/bash"}}, map[string]string{
		"usr/lib/systemd/systemd": "ELF", "usr/sbin/init": "->../lib/systemd/systemd", "sbin": "->usr/sbin"})
	out := filepath.Join(t.TempDir(), "node.sqfs")
	code, stdout, stderr := runCmd("build", "oci:"+lay, "--output", out, "--json", "--progress", "none")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res buildOut
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.OCIDigest != dig.String() || res.Systemd == nil || !*res.Systemd || res.Output != out || res.SquashfsSize == 0 {
		t.Errorf("result: %s", stdout)
	}
	code, stdout, stderr = runCmd("build", "oci:"+lay, "--output", out, "--force", "--print-definition", "--progress", "none")
	def, problems := definition.Parse("node.json", []byte(stdout))
	if code != 0 || def == nil || !def.Container.Systemd || def.Container.Command != "/usr/lib/systemd/systemd" {
		t.Errorf("exit %d, %v, %s %s", code, problems, stdout, stderr)
	}
}

func TestBuildOCIErrors(t *testing.T) {
	lay, _ := testLayout(t, v1.Config{}, map[string]string{"a": "a"})
	out := filepath.Join(t.TempDir(), "x.sqfs")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"oci:" + lay + ":2.0", "--output", out}, 1, `no tag "2.0" in the layout (tags: 1.0)`},
		{[]string{"oci:" + lay, "--output", out, "--platform", "linux/s390x"}, 1, "choose with --platform"},
		{[]string{"oci:" + lay, "--output", out, "--platform", "s390x"}, 2, "want OS/ARCH"},
		{[]string{"oci:" + lay, "--output", out, "--pool", "rbd"}, 2, "--output makes a file"},
		{[]string{lay, "--output", out, "--print-definition"}, 2, "--print-definition reads an OCI image"},
		{[]string{"docker://", "--output", out}, 2, "want docker://HOST/REPO:TAG"},
	} {
		code, _, stderr := runCmd(append([]string{"build", "--progress", "none"}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d (want %d): %s (want %q)", c.args, code, c.code, stderr, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed build left its output")
	}
	// The squashfs is made; the definition cannot be.
	code, stdout, stderr := runCmd("build", "--progress", "none", "oci:"+lay, "--output", out, "--print-definition")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "no Entrypoint or Cmd: there is nothing to run") {
		t.Errorf("exit %d: %s %s", code, stdout, stderr)
	}
}

// Monitors as Ceph writes them become addresses a definition takes.
func TestMonitors(t *testing.T) {
	for _, c := range []struct {
		flags []string
		host  string
		want  []string
	}{
		{nil, "[v2:10.0.0.1:3300,v1:10.0.0.1:6789] [v2:10.0.0.2:3300,v1:10.0.0.2:6789]", []string{"v1:10.0.0.1:6789", "v1:10.0.0.2:6789"}},
		{nil, "10.0.0.1,10.0.0.2:6789", []string{"10.0.0.1", "10.0.0.2:6789"}},
		{nil, "[v2:10.0.0.1:3300],[v2:10.0.0.2:3300]", []string{"v2:10.0.0.1:3300", "v2:10.0.0.2:3300"}},
		{[]string{"[v2:127.0.0.1:3300,v1:127.0.0.1:6789]"}, "ignored", []string{"v1:127.0.0.1:6789"}},
	} {
		if got := monitors(c.flags, c.host); !reflect.DeepEqual(got, c.want) {
			t.Errorf("monitors(%q, %q) = %q, want %q", c.flags, c.host, got, c.want)
		}
	}
}

// --verity with --print-definition: the definition pins the root hash the
// build printed, which is the one in the file's trailer, and validates.
func TestBuildOCIVerityDefinition(t *testing.T) {
	lay, _ := testLayout(t, v1.Config{Cmd: []string{"/bin/sleep", "infinity"}}, map[string]string{"bin/sleep": "x"})
	out := filepath.Join(t.TempDir(), "app.img")
	code, stdout, stderr := runCmd("build", "oci:"+lay+":1.0", "--output", out, "--verity", "--print-definition", "--progress", "none")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	m := regexp.MustCompile(`verity: root hash ([0-9a-f]{64})`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no root hash on stderr:\n%s", stderr)
	}
	def, problems := definition.Parse("app.json", []byte(stdout))
	if def == nil {
		t.Fatalf("definition does not validate: %v\n%s", problems, stdout)
	}
	l := def.Container.Mount.Overlay.Lower[0].Attach
	if l.Verity == nil || l.Verity.RootHash != m[1] {
		t.Errorf("definition's verity %+v, want root hash %s:\n%s", l.Verity, m[1], stdout)
	}
	v, err := image.ReadVerity(out)
	if err != nil || v.RootHashHex() != m[1] {
		t.Errorf("trailer: %v, %v; want root hash %s", v, err, m[1])
	}
}
