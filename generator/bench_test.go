package generator_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-project/strata/generator"
)

// benchDefinitions writes n definitions into a directory: every tenth
// shares one RBD image, the others use an image of their own, all with
// an inline secret, so that sharing and secrets are part of the cost.
func benchDefinitions(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	for i := 0; i < n; i++ {
		image := fmt.Sprintf("image%d", i)
		if i%10 == 0 {
			image = "shared"
		}
		def := fmt.Sprintf(`{"command": "/usr/lib/systemd/systemd", "systemd": true, "state": "running",
 "mount": {"kind": "overlay", "overlay": {"lower": [{"kind": "attach", "attach": {"fs_type": "squashfs", "mount_options": ["ro"],
  "attach": {"kind": "rbd", "rbd": {"pool": "rbd", "image": %q, "monitors": ["10.0.0.1", "10.0.0.2"],
   "options": {"name": "node", "ro": true, "secret": "QVFCZ1pHaGsxMjM0NTY3ODkwYWJjZGVmZ2hpamtsbW4="}}}}}]}}}`, image)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("c%05d.json", i)), []byte(def), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkGenerate runs discovery, loading, graph building and writing
// the tree, as one generator invocation does.
func BenchmarkGenerate(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("defs=%d", n), func(b *testing.B) {
			dir := benchDefinitions(b, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out := runDir(b)
				r := generator.Run([]string{dir})
				if len(r.Failed) > 0 {
					b.Fatalf("%d failed: %v", len(r.Failed), r.Problems)
				}
				if err := r.Output.Write(out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// runDir is an empty directory on tmpfs when there is one: the generator
// writes into /run/systemd/generator, a tmpfs, not onto a disk.
func runDir(b *testing.B) string {
	b.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "strata-bench-")
	if err != nil {
		return b.TempDir()
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// BenchmarkRun is Run alone (discover, load, build), without writing.
func BenchmarkRun(b *testing.B) {
	dir := benchDefinitions(b, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		generator.Run([]string{dir})
	}
}
