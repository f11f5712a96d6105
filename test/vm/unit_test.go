package vm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/a b":  `'/a b'`,
		"it's":  `'it'\''s'`,
		"plain": `'plain'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// The initramfs hook that prepare writes is valid sh, names every bind and file, and
// qemu's command line has a share per bound directory.
func TestPrepareHook(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool to build the agent")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"strata-helper", "it's"} {
		if err := os.WriteFile(filepath.Join(bin, f), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	v := &VM{t: t, name: "unit", workDir: dir, kernel: "/k", opts: Options{
		CPUs: 2, Memory: 1024,
		Binds: []Bind{
			{Host: filepath.Join(bin, "strata-helper"), Guest: "/usr/libexec/strata/strata-helper"},
			{Host: filepath.Join(bin, "it's"), Guest: "/opt/it's"},
			{Host: dir, Guest: "/srv/dir"},
		},
		Files: []File{{Path: "/etc/x.conf", Data: []byte("x"), Mode: 0o600}, {Path: "/etc/y", Symlink: "/dev/null"}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args, err := v.prepare(ctx, "/root.sqfs")
	if err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(dir, "conf", "init.sh")
	if out, err := exec.Command("sh", "-n", hook).CombinedOutput(); err != nil {
		t.Fatalf("sh -n init.sh: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(hook)
	for _, want := range []string{
		"bind $NEWROOT/run/strata-vm/9p/s0/'strata-helper' '/usr/libexec/strata/strata-helper'",
		`bind $NEWROOT/run/strata-vm/9p/s0/'it'\''s' '/opt/it'\''s'`,
		"bind $NEWROOT/run/strata-vm/9p/s1 '/srv/dir'",
		"put f0 '/etc/x.conf' 600",
		"link '/dev/null' '/etc/y'",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("init.sh lacks %q:\n%s", want, b)
		}
	}
	cl := strings.Join(args, " ")
	for _, want := range []string{"strata.9p=conf,s0,s1", "mount_tag=s1,security_model=none,readonly=on", "-accel tcg,thread=multi", "-no-reboot"} {
		if !strings.Contains(cl, want) {
			t.Errorf("qemu arguments lack %q: %s", want, cl)
		}
	}
	if strings.Contains(cl, "-netdev") {
		t.Errorf("a network device without Options.Netns: %s", cl)
	}
}
