//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/test/testbed"
)

// cdiSpec is a CDI spec such as a driver writes: one device node (a loop
// device standing in for a GPU), and for every device of the kind an
// environment variable and a read-only bind mount.
func cdiSpec(node, env string) string {
	return `cdiVersion: "0.6.0"
kind: "example.com/test"
devices:
- name: one
  containerEdits:
    deviceNodes:
    - path: /dev/cdi-disk
      hostPath: ` + node + `
      permissions: r
containerEdits:
  env: ["STRATA_CDI_TEST=` + env + `"]
  mounts:
  - hostPath: /srv/cdi-data
    containerPath: /cdi-data
    options: ["ro", "bind"]
`
}

const cdiHookSpec = `cdiVersion: "0.6.0"
kind: "example.com/hooked"
devices:
- name: one
  containerEdits:
    hooks:
    - hookName: createContainer
      path: /bin/true
`

// A CDI device is resolved at each start from the specs as they are then:
// its node usable inside, its mount and environment applied; a spec with
// hooks is refused with the reason.
func TestCDI(t *testing.T) {
	n := boot(t, testbed.Options{LoopDevices: 5})
	n.run("sh", "-c", "printf strata-cdi-ok > /root/cdi.img && truncate -s 1M /root/cdi.img && mkdir -p /srv/cdi-data /etc/cdi && echo from-the-spec > /srv/cdi-data/file")
	loop := n.run("losetup", "--find", "--show", "--read-only", "/root/cdi.img")
	t.Cleanup(func() { n.try("losetup", "--detach", loop) })
	writeSpec := func(name, body string) {
		n.run("sh", "-c", "cat > /etc/cdi/"+name+" <<'EOF'\n"+body+"EOF")
	}
	writeSpec("test.yaml", cdiSpec(loop, "one"))
	writeSpec("hooked.yaml", cdiHookSpec)

	n.define("gpu.json", withFields(`"cdi": ["example.com/test=one"]`))
	n.define("hk.json", withFields(`"cdi": ["example.com/hooked=one"]`))
	n.run("systemctl", "daemon-reload")
	if out, code := n.try("systemctl", "start", "systemd-nspawn@gpu.service"); code != 0 {
		journal, _ := n.try("journalctl", "--unit=systemd-nspawn@gpu.service", "--no-pager", "--output=cat")
		t.Fatalf("starting gpu: %s\n%s", out, journal)
	}
	t.Cleanup(func() { n.try("systemctl", "stop", "systemd-nspawn@gpu.service") })

	in := func(args ...string) (string, int) {
		return n.try(append([]string{"systemd-run", "--machine=gpu", "--wait", "--pipe", "--quiet"}, args...)...)
	}
	if out, code := in("/bin/dd", "if=/dev/cdi-disk", "bs=13", "count=1", "status=none"); code != 0 || out != "strata-cdi-ok" {
		t.Errorf("reading the CDI device node in the container: exit %d, %q", code, out)
	}
	if out, code := in("/bin/cat", "/cdi-data/file"); code != 0 || out != "from-the-spec" {
		t.Errorf("the CDI mount in the container: exit %d, %q", code, out)
	}
	if out, code := in("/bin/touch", "/cdi-data/x"); code == 0 {
		t.Errorf("the CDI mount asked for ro is writable: %s", out)
	}
	if out, _ := in("/bin/sh", "-c", "tr '\\0' '\\n' < /proc/1/environ"); !strings.Contains(out, "STRATA_CDI_TEST=one") {
		t.Errorf("the CDI environment is not in the container's init:\n%s", out)
	}
	if allow := n.run("systemctl", "show", "--property=DeviceAllow", "systemd-nspawn@gpu.service"); !strings.Contains(allow, loop+" r") {
		t.Errorf("DeviceAllow of the container unit does not hold %s r: %s", loop, allow)
	}

	// set-property's own drop-in would pin the whole list over the
	// generator's at the next reload: the helper's only adds.
	dropIn := n.run("cat", "/run/systemd/system.control/systemd-nspawn@gpu.service.d/50-DeviceAllow.conf")
	if lines := strings.Split(dropIn, "\n"); slices.Contains(lines, "DeviceAllow=") || !slices.Contains(lines, "DeviceAllow="+loop+" r") {
		t.Errorf("the runtime DeviceAllow drop-in:\n%s", dropIn)
	}
	n.run("systemctl", "daemon-reload")
	if allow := n.run("systemctl", "show", "--property=DeviceAllow", "systemd-nspawn@gpu.service"); !strings.Contains(allow, loop+" r") || !strings.Contains(allow, "char-pts rw") {
		t.Errorf("after a reload, DeviceAllow of the container unit lost the template's or the CDI entries: %s", allow)
	}

	// The driver rewrites its spec: the next start uses it, no daemon-reload.
	writeSpec("test.yaml", cdiSpec(loop, "two"))
	n.run("systemctl", "restart", "systemd-nspawn@gpu.service")
	if out, _ := in("/bin/sh", "-c", "tr '\\0' '\\n' < /proc/1/environ"); !strings.Contains(out, "STRATA_CDI_TEST=two") {
		t.Errorf("after the spec changed and a restart, the container's init has:\n%s", out)
	}

	if out, code := n.try("systemctl", "start", "systemd-nspawn@hk.service"); code == 0 {
		t.Errorf("a container whose CDI spec has hooks started: %s", out)
	}
	if out, _ := n.try("journalctl", "--unit=systemd-nspawn@hk.service", "--no-pager", "--output=cat"); !strings.Contains(out, "the spec asks for OCI hooks (createContainer), which systemd-nspawn has no place for") {
		t.Errorf("the refusal of hooks does not say why:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(n.defs, "gpu.json")); err != nil {
		t.Fatal(err)
	}

	// Its environment file outlives neither the container nor its
	// definition: removed while it runs, then stopped, the collection
	// removes it.
	env := layout.CDIEnvFile("gpu")
	if _, code := n.try("test", "-s", env); code != 0 {
		t.Fatalf("%s is not there while gpu runs", env)
	}
	if err := os.Remove(filepath.Join(n.defs, "gpu.json")); err != nil {
		t.Fatal(err)
	}
	n.run("systemctl", "daemon-reload")
	if _, code := n.try("test", "-e", env); code != 0 {
		t.Errorf("%s went while gpu still runs", env)
	}
	n.run("systemctl", "stop", "systemd-nspawn@gpu.service")
	n.run("strata", "gc")
	if out, code := n.try("ls", "-A", layout.CDIDir); code != 0 || out != "" {
		t.Errorf("left in %s after gpu stopped and strata gc: %q", layout.CDIDir, out)
	}
	if out, _ := n.try("journalctl", "--unit=systemd-nspawn@gpu.service", "--no-pager", "--output=cat"); !strings.Contains(out, "releasing record "+env+": container gpu is stopped and no unit file reads it any more") {
		t.Errorf("the collection does not say it removed %s:\n%s", env, out)
	}
}
