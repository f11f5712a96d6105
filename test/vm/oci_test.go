//go:build vm

package vm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/test/ocilayout"
	"github.com/strata-project/strata/test/testbed"
)

// ociBootsFromRBD (TestRBD/OCIBootsFromRBD, on TestRBD's VM and cluster) is
// issue 13's last path: the testbed root as an OCI layout (ocilayout: the
// root, then a layer adding a file and whiting one out), built into the
// cluster by `strata-image build oci:...` as rbd/oci@v1, `strata image info`
// naming its digest, and the definition --print-definition printed (its user
// and keyring swapped for the test's read-only user, as an admin would)
// booting in the VM through krbd, then stopped with nothing left.
func (e *rbdEnv) ociBootsFromRBD(t *testing.T) {
	e.t = t
	if imageTool != "strata-image" {
		t.Fatalf("an OCI build needs strata-image (STRATA_VM_IMAGE_TOOL=%s)", imageTool)
	}
	lay := filepath.Join(t.TempDir(), "layout")
	dig := ocilayout.OfRoot(t, testbed.DefaultRootDir(), lay)
	src := "oci:" + lay + ":" + ocilayout.Tag

	def := e.buildOCI(src)
	info := e.imageTool("info", "rbd/oci@v1")
	for _, want := range []string{"built from:  " + src, "oci digest:  " + dig.String() + " (linux/"} {
		if !strings.Contains(info, want) {
			t.Errorf("strata image info rbd/oci@v1 lacks %q:\n%s", want, info)
		}
	}

	kr := "/etc/ceph/ceph.client." + nodeUser + ".keyring"
	if err := e.vm.WriteFile(kr, []byte(readHost(t, e.cl.Keyring(nodeUser))), 0o600); err != nil {
		t.Fatal(err)
	}
	e.define(map[string]string{"oci": e.forTestUser(def, kr)})
	d := e.startContainer("oci")
	t.Logf("start (map, mounts, nested boot): %s", d.Round(time.Millisecond))
	devs := e.rbdDevices()
	if len(devs) != 1 || !strings.Contains(devs[0], "rbd/oci") || !strings.Contains(devs[0], "ro=1") {
		t.Fatalf("rbd devices: %v, want one read-only rbd/oci", devs)
	}
	if snap := e.must("cat", "/sys/bus/rbd/devices/"+strings.Fields(devs[0])[0]+"/current_snap"); snap != "v1" {
		t.Errorf("current_snap = %q, want v1", snap)
	}
	e.checkMachineRunning("oci")
	in := func(args ...string) string {
		return e.must(append([]string{"systemd-run", "--machine=oci", "--wait", "--pipe", "--quiet"}, args...)...)
	}
	if out := in("/bin/cat", ocilayout.AddedFile); out != ocilayout.AddedContent {
		t.Errorf("the upper layer's %s reads %q in the container", ocilayout.AddedFile, out)
	}
	if out := in("/bin/sh", "-c", "test -e "+ocilayout.WhitedOutFile+" && echo present || echo gone"); out != "gone" {
		t.Errorf("%s, whited out by the upper layer, is %s in the container", ocilayout.WhitedOutFile, out)
	}
	units := e.must("sh", "-c", "find /run/systemd/generator -type f -exec cat {} +")
	for what, text := range map[string]string{"units": units, "journal": e.journal(), "kernel log": e.must("dmesg")} {
		if strings.Contains(text, e.key) {
			t.Errorf("the node's key appears in the %s", what)
		}
	}

	_, code, d := e.try(3*time.Minute, "systemctl", "stop", "systemd-nspawn@oci.service")
	if code != 0 {
		t.Fatalf("stop failed:\n%s", e.journal())
	}
	e.waitReleased(2 * time.Minute)
	t.Logf("stop: %s (+ lower units)", d.Round(time.Millisecond))
}

// buildOCI builds src into rbd/oci@v1 (protected) as the build user and
// returns the definition --print-definition wrote on stdout.
func (e *rbdEnv) buildOCI(src string) []byte {
	e.t.Helper()
	t0 := time.Now()
	var stdout, stderr bytes.Buffer
	cmd := e.ns.Command(ctxFor(e.t, 10*time.Minute), append([]string{filepath.Join(binDir, "strata-image"), "build", src,
		"--pool", "rbd", "--image", "oci", "--snapshot", "v1", "--protect", "--progress", "none", "--print-definition"},
		e.connFlags()...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("strata-image build %s: %v\n%s", src, err, stderr.String())
	}
	e.t.Logf("strata-image build %s into rbd/oci@v1: %s\n%s", src, time.Since(t0).Round(time.Millisecond), stderr.String())
	for _, want := range []string{"built rbd/oci@v1", "the image holds systemd: it boots", "definition for /etc/strata/oci.json"} {
		if !strings.Contains(stderr.String(), want) {
			e.t.Errorf("strata-image build's summary lacks %q", want)
		}
	}
	return stdout.Bytes()
}

// imageTool runs `strata image ARGS` (strata finds strata-image beside it)
// in the namespace as the build user.
func (e *rbdEnv) imageTool(args ...string) string {
	e.t.Helper()
	out, err := e.ns.Run(ctxFor(e.t, 2*time.Minute), append(append([]string{filepath.Join(binDir, "strata"), "image"}, args...), e.connFlags()...)...)
	if err != nil {
		e.t.Fatalf("strata image %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (e *rbdEnv) connFlags() []string {
	return []string{"--mon", e.cl.MonV1(), "--id", "strata-build", "--keyring", e.cl.Keyring("strata-build")}
}

// forTestUser checks the printed definition boots rbd/oci@v1 from the test's
// monitor with the nodes' read-only user, and gives it the cluster's
// read-only user (client.strata-node, not the printed client.node) and the
// keyring written at kr; nothing else is changed.
func (e *rbdEnv) forTestUser(def []byte, kr string) string {
	e.t.Helper()
	var d map[string]any
	if err := json.Unmarshal(def, &d); err != nil {
		e.t.Fatalf("the printed definition: %v\n%s", err, def)
	}
	rbd, ok := lookup(d, "mount", "overlay", "lower", 0, "attach", "attach", "rbd").(map[string]any)
	if !ok {
		e.t.Fatalf("the printed definition has no mount.overlay.lower[0].attach.attach.rbd:\n%s", def)
	}
	want := map[string]any{
		"monitors": []any{e.cl.MonV1()}, "pool": "rbd", "image": "oci", "snapshot": "v1",
		"options": map[string]any{"name": "node", "keyring": "/etc/ceph/ceph.client.node.keyring"},
	}
	if !reflect.DeepEqual(rbd, want) || d["systemd"] != true || d["command"] != "/usr/lib/systemd/systemd" {
		e.t.Fatalf("the printed definition:\n%s\nwant rbd %v, systemd booting", def, want)
	}
	rbd["options"] = map[string]any{"name": nodeUser, "keyring": kr}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b) + "\n"
}

// lookup walks a decoded JSON tree by keys and indexes; nil when a step is missing.
func lookup(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		default:
			panic(fmt.Sprintf("lookup: %T in a path", p))
		}
	}
	return v
}
