package image

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// startRegistry runs Debian's docker-registry on 127.0.0.1 through
// test/registry/registry.sh, with one user; it returns HOST:PORT.
func startRegistry(t *testing.T, user, password string) string {
	t.Helper()
	needTool(t, "docker-registry")
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "test", "registry", "registry.sh")
	addr := freeAddr(t)
	cmd := exec.Command(script, t.TempDir(), addr, user, password)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry did not answer on %s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// authFile writes a containers auth file for host and points
// $REGISTRY_AUTH_FILE at it; HOME moves away from any real docker config.
func authFile(t *testing.T, host, user, password string) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CONFIG_HOME", dir)
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	f := filepath.Join(dir, "auth.json")
	if err := os.WriteFile(f, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REGISTRY_AUTH_FILE", f)
}

// Pulls from a real registry (Debian's distribution) on 127.0.0.1 with
// credentials from $REGISTRY_AUTH_FILE: a single image flattened file by
// file, a two-platform index by --platform, a missing tag and missing
// credentials as clear errors.
func TestRegistry(t *testing.T) {
	const user, password = "strata", "test-only-password"
	host := startRegistry(t, user, password)
	push := remote.WithAuth(&authn.Basic{Username: user, Password: password})
	img := layeredImage(t)
	tag, err := name.NewTag(host + "/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, push); err != nil {
		t.Fatal(err)
	}
	arm := imageOf(t, v1.Platform{OS: "linux", Architecture: "arm64"}, v1.Config{}, layerOf(t, ent{name: "arch", body: "arm64"}))
	amd := imageOf(t, v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Config{}, layerOf(t, ent{name: "arch", body: "amd64"}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	multi, _ := name.NewTag(host + "/multi:1")
	if err := remote.WriteIndex(multi, idx, push); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	linuxAMD := v1.Platform{OS: "linux", Architecture: "amd64"}
	open := func(src string, p v1.Platform) (*OCIImage, error) {
		r, ok, err := ParseOCIRef(src)
		if !ok || err != nil {
			t.Fatalf("ParseOCIRef(%q): %v %v", src, ok, err)
		}
		return OpenOCI(ctx, r, p, t.TempDir())
	}

	// Without credentials the registry refuses, and the error says so.
	authFile(t, "other.example:5000", user, password)
	if _, err := open("docker://"+host+"/app:1.0", linuxAMD); err == nil || !strings.Contains(err.Error(), "refused access to app (UNAUTHORIZED): log in") {
		t.Errorf("without credentials: %v", err)
	}
	authFile(t, host, user, password)

	o, err := open("docker://"+host+"/app:1.0", linuxAMD)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if want, _ := img.Digest(); o.Digest != want {
		t.Errorf("digest %s, want %s", o.Digest, want)
	}
	dir := filepath.Join(t.TempDir(), "root")
	var p recordedProgress
	if _, err := Flatten(ctx, o, dir, &p); err != nil {
		t.Fatal(err)
	}
	want, mtimes := flatWant()
	compareTree(t, "pulled", describeTree(t, dir, mtimes), want)
	// The pull's total is the manifest's, and all of it was read.
	m, _ := img.Manifest()
	if total := m.Layers[0].Size + m.Layers[1].Size; o.PulledSize() != total || p.last != total {
		t.Errorf("pulled %d bytes, total %d; the manifest says %d", p.last, o.PulledSize(), total)
	}

	for arch, img := range map[string]v1.Image{"amd64": amd, "arm64": arm} {
		o, err := open("docker://"+host+"/multi:1", v1.Platform{OS: "linux", Architecture: arch})
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		if d, _ := img.Digest(); o.Digest != d {
			t.Errorf("%s: digest %s, want %s", arch, o.Digest, d)
		}
	}
	for src, msg := range map[string]string{
		"docker://" + host + "/app:2.0": host + " has no 2.0 in app (MANIFEST_UNKNOWN: check the tag)",
		"docker://" + host + "/nope:1":  host + " has no 1 in nope",
	} {
		if _, err := open(src, linuxAMD); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: got %v, want %q", src, err, msg)
		}
	}
	if _, err := open("docker://"+host+"/multi:1", v1.Platform{OS: "linux", Architecture: "s390x"}); err == nil ||
		!strings.Contains(err.Error(), "s390x") {
		t.Errorf("s390x: %v", err)
	}
}
