//go:build vm

package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/test/harness"
)

var (
	binDir   string // strata, strata-generator, strata-helper (static) for the VM
	rootSqfs string // the testbed root's squashfs: the VM's root and the image in RBD
	repoRoot string
	// imageTool writes the image into the cluster: "strata-image" or "rbd-import".
	imageTool string
)

func TestMain(m *testing.M) {
	os.Exit(setup(m))
}

func setup(m *testing.M) int {
	t0 := time.Now()
	tmp, err := os.MkdirTemp("", "strata-vm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	repoRoot = filepath.Join(ScriptsDir(), "..", "..")
	binDir = filepath.Join(tmp, "bin")
	for _, c := range []string{"strata", "strata-generator", "strata-helper"} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(binDir, c), "./cmd/"+c)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", c, err, out)
			return 1
		}
	}
	// The image tool: `strata-image build` (cgo, go-ceph, -tags pacific) when the
	// repository has it, else `rbd import` ($STRATA_VM_IMAGE_TOOL=rbd-import forces it).
	imageTool = os.Getenv("STRATA_VM_IMAGE_TOOL")
	if imageTool == "" {
		imageTool = "rbd-import"
		if harness.FileExists(filepath.Join(repoRoot, "cmd", "strata-image", "main.go")) {
			imageTool = "strata-image"
		}
	}
	if imageTool == "strata-image" {
		cmd := exec.Command("go", "build", "-trimpath", "-tags", "pacific", "-o", filepath.Join(binDir, "strata-image"), "./cmd/strata-image")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building strata-image (set STRATA_VM_IMAGE_TOOL=rbd-import to use rbd import instead): %v\n%s", err, out)
			return 1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if err := EnsureKernel(ctx, DefaultKernel()); err != nil {
		fmt.Fprintf(os.Stderr, "the VM kernel cannot be built: %v\n", err)
		return 1
	}
	if rootSqfs, err = EnsureRootImage(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "the VM root cannot be built: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "vm tests: prepared in %s\n", time.Since(t0).Round(time.Millisecond))
	rc := m.Run()
	fmt.Fprintf(os.Stderr, "vm tests: whole run %s\n", time.Since(t0).Round(time.Second))
	return rc
}

// strataBinds installs Strata in the VM the way the package does, through 9p:
// the binaries, the udev rule and the static units (units/static: the attach
// and clean-up templates the generated drop-ins extend).
func strataBinds() []Bind {
	binds := []Bind{
		{Host: filepath.Join(binDir, "strata-helper"), Guest: "/usr/libexec/strata/strata-helper"},
		{Host: filepath.Join(binDir, "strata-generator"), Guest: "/usr/lib/systemd/system-generators/strata-generator"},
		{Host: filepath.Join(binDir, "strata"), Guest: "/usr/bin/strata"},
		{Host: filepath.Join(repoRoot, "helpers", "krbd", "50-strata-rbd.rules"), Guest: "/etc/udev/rules.d/50-strata-rbd.rules"},
	}
	static, _ := filepath.Glob(filepath.Join(repoRoot, "units", "static", "*"))
	for _, u := range static {
		binds = append(binds, Bind{Host: u, Guest: "/usr/lib/systemd/system/" + filepath.Base(u)})
	}
	return binds
}

func readHost(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func trimLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
