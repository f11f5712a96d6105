//go:build vm

package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The VM boots Debian's stock kernel to a running systemd, and the rbd module loads.
func TestBoot(t *testing.T) {
	v, err := Boot(t, Options{})
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	kver := strings.TrimSpace(readHost(t, v.kernel+"/version"))
	if got := v.MustRun(t, "uname", "-r"); got != kver {
		t.Errorf("uname -r = %q, want %q (the linux-image package's kernel)", got, kver)
	}
	v.MustRun(t, "modprobe", "rbd")
	if out := v.MustRun(t, "ls", "/sys/bus/rbd"); !strings.Contains(out, "add_single_major") {
		t.Errorf("/sys/bus/rbd after modprobe rbd: %s", out)
	}
	if out := v.MustRun(t, "cat", "/sys/fs/cgroup/cgroup.controllers"); !strings.Contains(out, "memory") {
		t.Errorf("cgroup2 controllers: %s", out)
	}
	// udev runs (unlike under nspawn), so block devices have .device units.
	v.MustRun(t, "systemctl", "is-active", "systemd-udevd.service")
	if out := v.MustRun(t, "systemctl", "show", "-p", "ActiveState", "dev-vda.device"); out != "ActiveState=active" {
		t.Errorf("dev-vda.device: %s", out)
	}
	// The root is the squashfs under a tmpfs overlay; the VM has no network device.
	if out := v.MustRun(t, "findmnt", "-n", "-o", "FSTYPE", "/"); out != "overlay" {
		t.Errorf("/ is %s", out)
	}
	if out := v.MustRun(t, "ls", "/sys/class/net"); out != "lo" {
		t.Errorf("network interfaces without Options.Netns: %s", out)
	}
	// A non-zero exit status and stdin reach the host.
	r, err := v.Exec(ctxFor(t, time.Minute), Command{Args: []string{"sh", "-c", "cat; exit 7"}, Stdin: []byte("in")})
	if err != nil || r.ExitCode != 7 || r.Stdout != "in" {
		t.Errorf("exec: %v %+v", err, r)
	}
}

// A VM that cannot boot is an error with the reason, quickly, and leaves nothing behind.
func TestBootFailureIsReported(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "not-a-squashfs.img")
	if err := os.WriteFile(bad, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err := Boot(t, Options{RootImage: bad, BootTimeout: 3 * time.Minute})
	if err == nil {
		t.Fatal("Boot of a root that is not a squashfs succeeded")
	}
	if !strings.Contains(err.Error(), "STRATA-VM-INIT-FAILED: mount squashfs /dev/vda") {
		t.Errorf("the error does not say why:\n%v", err)
	}
	t.Logf("failed after %s: %.200s", time.Since(t0).Round(time.Millisecond), err)
	if time.Since(t0) > 2*time.Minute {
		t.Errorf("the failure took %s", time.Since(t0))
	}
}
