package main

import (
	"reflect"
	"strings"
	"testing"

	"tags.cncf.io/container-device-interface/pkg/cdi"
)

// Specs as drivers write them, parsed by the CDI library, become nspawn
// options and DeviceAllow= values; what nspawn cannot do is refused.
func TestNspawnEdits(t *testing.T) {
	spec, err := cdi.ParseSpec([]byte(`cdiVersion: "0.6.0"
kind: "example.com/gpu"
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/gpu0
      hostPath: /dev/nvidia0
      permissions: rw
    - path: /dev/gpuctl
    env: ["GPU=0"]
    mounts:
    - {hostPath: /usr/lib/gpu, containerPath: /usr/lib/gpu, options: [ro, bind]}
    - {hostPath: /var/gpu, containerPath: /var/gpu, type: bind}
`))
	if err != nil {
		t.Fatal(err)
	}
	args, allow, err := nspawnEdits(spec.Devices[0].ContainerEdits)
	if err != nil {
		t.Fatal(err)
	}
	wantArgs := []string{"--setenv=GPU=0", "--bind=/dev/nvidia0:/dev/gpu0", "--bind=/dev/gpuctl:/dev/gpuctl", "--bind-ro=/usr/lib/gpu:/usr/lib/gpu", "--bind=/var/gpu:/var/gpu"}
	if !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("args = %q, want %q", args, wantArgs)
	}
	if want := []string{"/dev/nvidia0 rw", "/dev/gpuctl rwm"}; !reflect.DeepEqual(allow, want) {
		t.Errorf("allow = %q, want %q", allow, want)
	}

	for _, c := range []struct{ edits, want string }{
		{`hooks: [{hookName: createContainer, path: /bin/true}]`, "OCI hooks (createContainer)"},
		{`env: ["A=two words"]`, `holds ' '`},
		{`mounts: [{hostPath: /srv/a:b, containerPath: /a}]`, "holds ':'"},
		{`mounts: [{hostPath: tmpfs, containerPath: /t, type: tmpfs}]`, `of type "tmpfs"`},
		{`additionalGids: [44]`, "group IDs"},
	} {
		s, err := cdi.ParseSpec([]byte("cdiVersion: \"0.7.0\"\nkind: example.com/x\ndevices:\n- name: a\n  containerEdits: {env: [\"A=1\"]}\ncontainerEdits:\n  " + c.edits + "\n"))
		if err != nil {
			t.Fatalf("%s: %v", c.edits, err)
		}
		if _, _, err := nspawnEdits(s.ContainerEdits); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one saying %q", c.edits, err, c.want)
		}
	}
}
