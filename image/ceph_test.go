//go:build ceph && pacific && cgo

// Tests against a real throwaway Ceph cluster (test/ceph): run with
//
//	CGO_ENABLED=1 go test -tags 'ceph pacific' ./image
//
// as root. A cluster that cannot start fails the tests (never skips).
package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	cephtest "github.com/strata-project/strata/test/ceph"
)

// TestCeph runs every subtest against one cluster (it starts in ~2 s).
func TestCeph(t *testing.T) {
	needTools(t, "mksquashfs", "unsquashfs")
	c := cephtest.Start(t)
	env := &cephEnv{c: c}
	t.Run("BuildFromDirectory", env.testBuildFromDirectory)
	t.Run("BuildFromTarball", env.testBuildFromTarball)
	t.Run("BuildFromOCI", env.testBuildFromOCI)
	t.Run("BuildSquashfsFile", env.testBuildSquashfsFile)
	t.Run("BuildVerity", env.testBuildVerity)
	t.Run("SnapshotProtect", env.testSnapshotProtect)
	t.Run("RefuseExisting", env.testRefuseExisting)
	t.Run("Watchers", env.testWatchers)
	t.Run("ListInfoRemove", env.testListInfoRemove)
	t.Run("Namespace", env.testNamespace)
	t.Run("WrongKey", env.testWrongKey)
	t.Run("MissingPool", env.testMissingPool)
	t.Run("Unreachable", env.testUnreachable)
	t.Run("Permissions", env.testPermissions)
	t.Run("NotSquashfs", env.testNotSquashfs)
	t.Run("VerifyDetectsCorruption", env.testVerifyDetectsCorruption)
	t.Run("MountThroughRBDFuse", env.testMount)
}

type cephEnv struct {
	c *cephtest.Cluster
}

// connect as the build user with monitors and keyring (no conf).
func (e *cephEnv) connect(t *testing.T) *Conn {
	t.Helper()
	return e.connectAs(t, e.c.Build)
}

func (e *cephEnv) connectAs(t *testing.T, u cephtest.User) *Conn {
	t.Helper()
	conn, err := Connect(context.Background(), ConnectOptions{
		Monitors: e.c.Monitors, User: u.ID, Keyring: u.Keyring, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("connect as %s: %v", u.Name(), err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// rawRados is a go-ceph connection as admin through the conf, for checks
// that go around the package under test.
func (e *cephEnv) rawIOContext(t *testing.T, pool string) *rados.IOContext {
	t.Helper()
	conn, err := rados.NewConnWithUser("admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.ReadConfigFile(e.c.Conf); err != nil {
		t.Fatal(err)
	}
	if err := conn.Connect(); err != nil {
		t.Fatal(err)
	}
	ioc, err := conn.OpenIOContext(pool)
	if err != nil {
		conn.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() { ioc.Destroy(); conn.Shutdown() })
	return ioc
}

// bigTree is testTree plus size bytes of random (incompressible) data, so
// that the squashfs spans several 4 MiB writes.
func bigTree(t *testing.T, size int) string {
	t.Helper()
	dir := testTree(t)
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "usr/bin/random"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readImage reads the first n bytes of pool/image[@snap] through librbd.
func (e *cephEnv) readImage(t *testing.T, ref Ref, n int64) []byte {
	t.Helper()
	ioc := e.rawIOContext(t, ref.Pool)
	ioc.SetNamespace(ref.Namespace)
	img, err := rbd.OpenImageReadOnly(ioc, ref.Image, ref.Snapshot)
	if err != nil {
		t.Fatalf("open %s: %v", ref, err)
	}
	defer img.Close()
	buf := make([]byte, n)
	if _, err := img.ReadAt(buf, 0); err != nil {
		t.Fatalf("read %s: %v", ref, err)
	}
	return buf
}

func (e *cephEnv) build(t *testing.T, conn *Conn, src string, ref Ref, o BuildOptions) (*BuildResult, []byte) {
	t.Helper()
	keep := filepath.Join(t.TempDir(), "kept.sqfs")
	o.KeepSquashfs = keep
	res, err := conn.Build(context.Background(), src, ref, o)
	if err != nil {
		t.Fatalf("build %s: %v", ref, err)
	}
	sq, err := os.ReadFile(keep)
	if err != nil {
		t.Fatal(err)
	}
	return res, sq
}

func (e *cephEnv) rm(t *testing.T, ref Ref) {
	t.Helper()
	out, err := e.c.Command("rbd", "rm", "--no-progress", ref.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("rbd rm %s: %v\n%s", ref, err, out)
	}
}

func (e *cephEnv) testBuildFromDirectory(t *testing.T) {
	conn := e.connect(t)
	src := bigTree(t, 20<<20)
	ref := Ref{Pool: "rbd", Image: "from-dir"}
	var progress bytes.Buffer
	start := time.Now()
	res, sq := e.build(t, conn, src, ref, BuildOptions{
		Squashfs: SquashfsOptions{NoCompressInodes: true, NoCompressXattrs: true},
		Progress: NewProgress(&progress, false),
	})
	if res.SquashfsSize != int64(len(sq)) || res.ImageSize != AutoSize(int64(len(sq))) || res.ImageSize%ObjectSize != 0 {
		t.Errorf("result %+v for a %d-byte squashfs", res, len(sq))
	}
	t.Logf("built in %s: squashfs %s, upload %s, verify %s", time.Since(start).Round(time.Millisecond), res.Squashfs, res.Upload, res.Verify)
	if len(sq) < 20<<20 {
		t.Errorf("squashfs only %d bytes", len(sq))
	}
	// Byte for byte through librbd, and zeros after the squashfs.
	back := e.readImage(t, ref, int64(res.ImageSize))
	if !bytes.Equal(back[:len(sq)], sq) {
		t.Fatal("the image differs from the squashfs")
	}
	if bytes.Count(back[len(sq):], []byte{0}) != len(back)-len(sq) {
		t.Error("the image has data after the squashfs")
	}
	// Shared read-only: layering only (no exclusive-lock, object-map,
	// fast-diff, deep-flatten).
	in, err := conn.Info(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in.Features, []string{"layering"}) {
		t.Errorf("features %v, want [layering]", in.Features)
	}
	if in.Squashfs == nil || in.Squashfs.BytesUsed > uint64(len(sq)) || in.Squashfs.Compression != "zstd" {
		t.Errorf("squashfs %+v (%s)", in.Squashfs, in.NotSquashfs)
	}
	if in.ObjectSize != ObjectSize || in.Size != res.ImageSize || len(in.Watchers) != 0 || len(in.Snapshots) != 0 {
		t.Errorf("info %+v", in)
	}
	for _, phase := range []string{"squashfs: started", "upload: done", "verify: done", "match"} {
		if !strings.Contains(progress.String(), phase) {
			t.Errorf("progress lacks %q:\n%s", phase, progress.String())
		}
	}
	// A given size.
	ref2 := Ref{Pool: "rbd", Image: "from-dir-sized"}
	small := testTree(t)
	res2, _ := e.build(t, conn, small, ref2, BuildOptions{Size: 100 << 20})
	if res2.ImageSize != 100<<20 {
		t.Errorf("size %d, want 100 MiB", res2.ImageSize)
	}
	// Too small a size is refused before anything is created.
	_, err = conn.Build(context.Background(), small, Ref{Pool: "rbd", Image: "too-small"}, BuildOptions{Size: 1})
	if err == nil || !strings.Contains(err.Error(), "smaller than the squashfs") {
		t.Errorf("size 1M: %v", err)
	}
	if _, err := conn.Info(Ref{Pool: "rbd", Image: "too-small"}); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("too-small exists after a refused build: %v", err)
	}
	// Several chunk sizes and in-flight counts give the same bytes.
	if !res.Verified || res.SHA256 != "" {
		t.Errorf("verified %v, sha256 %q (not asked for)", res.Verified, res.SHA256)
	}
	for _, w := range []WriteOptions{{InFlight: 1, SHA256: true}, {InFlight: 3, ChunkSize: 1 << 20, SHA256: true}, {InFlight: 16, ChunkSize: 64 << 10, SHA256: true}} {
		f := filepath.Join(t.TempDir(), "s.sqfs")
		os.WriteFile(f, sq, 0o644)
		r := Ref{Pool: "rbd", Image: fmt.Sprintf("w-%d-%d", w.InFlight, w.ChunkSize)}
		res, err := conn.Upload(context.Background(), f, r, UploadOptions{Write: w})
		if err != nil {
			t.Fatalf("upload %+v: %v", w, err)
		}
		if got := e.readImage(t, r, int64(len(sq))); !bytes.Equal(got, sq) || res.SHA256 != fmt.Sprintf("%x", sha(sq)) {
			t.Errorf("upload %+v: bytes or sha differ", w)
		}
		e.rm(t, r)
	}
	e.rm(t, ref)
	e.rm(t, ref2)
}

func (e *cephEnv) testBuildFromTarball(t *testing.T) {
	conn := e.connect(t)
	src := testTree(t)
	tarball := filepath.Join(t.TempDir(), "root.tar.zst")
	if err := os.WriteFile(tarball, compress(t, tarOf(t, src), "zstd"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := Ref{Pool: "rbd", Image: "from-tar"}
	res, sq := e.build(t, conn, tarball, ref, BuildOptions{Squashfs: SquashfsOptions{Compressor: "xz"}})
	if got := e.readImage(t, ref, res.SquashfsSize); !bytes.Equal(got, sq) {
		t.Error("image differs from the squashfs")
	}
	f := filepath.Join(t.TempDir(), "back.sqfs")
	os.WriteFile(f, sq, 0o644)
	sameTree(t, src, extract(t, f))
	e.rm(t, ref)
}

func (e *cephEnv) testBuildSquashfsFile(t *testing.T) {
	conn := e.connect(t)
	f := filepath.Join(t.TempDir(), "made-before.sqfs")
	if err := MakeSquashfs(context.Background(), testTree(t), f, SquashfsOptions{}); err != nil {
		t.Fatal(err)
	}
	sq, _ := os.ReadFile(f)
	ref := Ref{Pool: "rbd", Image: "from-file"}
	res, err := conn.Build(context.Background(), f, ref, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Squashfs != 0 || res.SquashfsSize != int64(len(sq)) {
		t.Errorf("result %+v", res)
	}
	if got := e.readImage(t, ref, int64(len(sq))); !bytes.Equal(got, sq) {
		t.Error("image differs")
	}
	e.rm(t, ref)
}

func (e *cephEnv) testSnapshotProtect(t *testing.T) {
	conn := e.connect(t)
	src := testTree(t)
	ref := Ref{Pool: "rbd", Image: "snapped"}
	res, sq := e.build(t, conn, src, ref, BuildOptions{Snapshot: "v1", Protect: true})
	if res.Ref.Snapshot != "v1" || !res.Protected {
		t.Errorf("result %+v", res)
	}
	if got := e.readImage(t, Ref{Pool: "rbd", Image: "snapped", Snapshot: "v1"}, int64(len(sq))); !bytes.Equal(got, sq) {
		t.Error("the snapshot differs from the squashfs")
	}
	in, err := conn.Info(ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Snapshots) != 1 || in.Snapshots[0].Name != "v1" || !in.Snapshots[0].Protected || in.Snapshots[0].Size != res.ImageSize {
		t.Errorf("snapshots %+v", in.Snapshots)
	}
	// Info of the snapshot itself, and of a missing one.
	if in, err := conn.Info(Ref{Pool: "rbd", Image: "snapped", Snapshot: "v1"}); err != nil || in.Squashfs == nil {
		t.Errorf("info @v1: %v %+v", err, in)
	}
	if _, err := conn.Info(Ref{Pool: "rbd", Image: "snapped", Snapshot: "v9"}); !errors.Is(err, ErrNoSuchSnapshot) {
		t.Errorf("info @v9: %v", err)
	}
	// rbd agrees that it is protected.
	out := e.c.Run(t, "rbd", "snap", "ls", "--format", "json", "rbd/snapped")
	if !strings.Contains(out, `"protected":"true"`) {
		t.Errorf("rbd snap ls: %s", out)
	}
	// The same snapshot name again: refused, then replaced with --force.
	_, err = conn.Build(context.Background(), src, ref, BuildOptions{Snapshot: "v1", Force: true, Protect: true})
	if err != nil {
		t.Fatalf("rebuild with --force: %v", err)
	}
	// Remove refuses while snapshots exist; --force unprotects and removes.
	if err := conn.Remove(ref, false); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "v1") {
		t.Errorf("remove without force: %v", err)
	}
	if err := conn.Remove(ref, true); err != nil {
		t.Fatalf("remove --force: %v", err)
	}
	if _, err := conn.Info(ref); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("after rm: %v", err)
	}
}

func (e *cephEnv) testRefuseExisting(t *testing.T) {
	conn := e.connect(t)
	ref := Ref{Pool: "rbd", Image: "exists"}
	e.build(t, conn, testTree(t), ref, BuildOptions{Snapshot: "s"})
	_, err := conn.Build(context.Background(), testTree(t), ref, BuildOptions{})
	var ie *Error
	if !errors.Is(err, ErrExists) || !errors.As(err, &ie) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second build: %v", err)
	}
	// --force: removed (with its snapshot) and made anew, new content.
	src2 := bigTree(t, 5<<20)
	res, sq := e.build(t, conn, src2, ref, BuildOptions{Force: true})
	if !res.Replaced || res.InPlace {
		t.Errorf("result %+v", res)
	}
	if got := e.readImage(t, ref, int64(len(sq))); !bytes.Equal(got, sq) {
		t.Error("the replaced image differs")
	}
	in, err := conn.Info(ref)
	if err != nil || len(in.Snapshots) != 0 {
		t.Errorf("after --force: %v %+v", err, in)
	}
	e.rm(t, ref)
}

func (e *cephEnv) testWatchers(t *testing.T) {
	conn := e.connect(t)
	ref := Ref{Pool: "rbd", Image: "watched"}
	e.build(t, conn, bigTree(t, 9<<20), ref, BuildOptions{})
	// Someone has it open read-write: a watcher, as a mapping would be.
	ioc := e.rawIOContext(t, "rbd")
	holder, err := rbd.OpenImage(ioc, "watched", rbd.NoSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	in, err := conn.Info(ref)
	if err != nil || len(in.Watchers) != 1 || !strings.HasPrefix(in.Watchers[0].Address, "127.0.0.1:") {
		t.Fatalf("info: %v %+v", err, in)
	}
	_, err = conn.Build(context.Background(), testTree(t), ref, BuildOptions{})
	if !errors.Is(err, ErrHasWatchers) || !strings.Contains(err.Error(), "127.0.0.1:") {
		t.Fatalf("build over a watched image: %v", err)
	}
	if err := conn.Remove(ref, false); !errors.Is(err, ErrHasWatchers) {
		t.Errorf("rm: %v", err)
	}
	if err := conn.Remove(ref, true); !errors.Is(err, ErrInUse) {
		t.Errorf("rm --force while watched: %v", err)
	}
	// --force writes over it in place; the image stays (same id).
	src := testTree(t)
	var notes bytes.Buffer
	res, sq := e.build(t, conn, src, ref, BuildOptions{Force: true, Progress: NewProgress(&notes, false)})
	if !res.InPlace || res.ImageSize != in.Size {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(notes.String(), "writing over it in place") {
		t.Errorf("progress: %s", notes.String())
	}
	after, err := conn.Info(ref)
	if err != nil || after.ID != in.ID {
		t.Errorf("the image was replaced: %v %+v", err, after)
	}
	back := make([]byte, in.Size)
	if _, err := holder.ReadAt(back, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back[:len(sq)], sq) {
		t.Error("the watcher does not see the new squashfs")
	}
	if bytes.Count(back[len(sq):], []byte{0}) != len(back)-len(sq) {
		t.Error("the old data after the new squashfs was not discarded")
	}
	holder.Close()
	if err := conn.Remove(ref, false); err != nil {
		t.Errorf("rm once unwatched: %v", err)
	}
}

func (e *cephEnv) testListInfoRemove(t *testing.T) {
	conn := e.connect(t)
	for _, n := range []string{"ls-b", "ls-a"} {
		e.build(t, conn, testTree(t), Ref{Pool: "rbd", Image: n}, BuildOptions{})
	}
	e.c.Run(t, "rbd", "create", "--size", "4M", "rbd/ls-raw")
	list, err := conn.List(Ref{Pool: "rbd"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		if strings.HasPrefix(l.Name, "ls-") {
			names = append(names, l.Name)
		}
	}
	if !reflect.DeepEqual(names, []string{"ls-a", "ls-b", "ls-raw"}) {
		t.Errorf("list: %v", names)
	}
	// An image made by rbd with default features and no squashfs.
	in, err := conn.Info(Ref{Pool: "rbd", Image: "ls-raw"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Squashfs != nil || !strings.Contains(in.NotSquashfs, "hsqs") || len(in.Features) < 2 {
		t.Errorf("raw image info %+v", in)
	}
	for _, n := range []string{"ls-a", "ls-b", "ls-raw"} {
		if err := conn.Remove(Ref{Pool: "rbd", Image: n}, false); err != nil {
			t.Error(err)
		}
	}
	if err := conn.Remove(Ref{Pool: "rbd", Image: "ls-a"}, false); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("rm twice: %v", err)
	}
}

func (e *cephEnv) testNamespace(t *testing.T) {
	admin := e.connectAs(t, e.c.Admin)
	ref := Ref{Pool: "rbd", Namespace: "team", Image: "in-ns"}
	_, err := admin.Build(context.Background(), testTree(t), ref, BuildOptions{})
	if !errors.Is(err, ErrNoSuchNamespace) || !strings.Contains(err.Error(), "rbd namespace create rbd/team") {
		t.Fatalf("missing namespace: %v", err)
	}
	e.c.Run(t, "rbd", "namespace", "create", "rbd/team")
	res, sq := e.build(t, admin, testTree(t), ref, BuildOptions{})
	if got := e.readImage(t, ref, res.SquashfsSize); !bytes.Equal(got, sq) {
		t.Error("differs")
	}
	list, err := admin.List(Ref{Pool: "rbd", Namespace: "team"})
	if err != nil || len(list) != 1 || list[0].Name != "in-ns" {
		t.Errorf("list rbd/team: %v %v", list, err)
	}
	if out := e.c.Run(t, "rbd", "ls", "rbd/team"); strings.TrimSpace(out) != "in-ns" {
		t.Errorf("rbd ls rbd/team: %q", out)
	}
	if err := admin.Remove(ref, false); err != nil {
		t.Error(err)
	}
}

func (e *cephEnv) testWrongKey(t *testing.T) {
	// A well-formed key that is not the user's.
	for _, u := range []string{e.c.Build.ID, "nobody"} {
		start := time.Now()
		_, err := Connect(context.Background(), ConnectOptions{
			Monitors: e.c.Monitors, User: u, Key: "AQBnQ09jAAAAABAAwZ0QpuR2mbT6OtcOY1mdtw==", Timeout: 10 * time.Second,
		})
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "authentication as client."+u) || !strings.Contains(err.Error(), "key is wrong") {
			t.Errorf("user %s, wrong key: %v", u, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the refusal took %s", d)
		}
	}
	// A key that is not even base64.
	_, err := Connect(context.Background(), ConnectOptions{Monitors: e.c.Monitors, User: "admin", Key: "not a key"})
	if err == nil {
		t.Error("a malformed key was accepted")
	}
	// A keyring that does not exist.
	_, err = Connect(context.Background(), ConnectOptions{Monitors: e.c.Monitors, Keyring: "/nonexistent"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("missing keyring: %v", err)
	}
}

func (e *cephEnv) testMissingPool(t *testing.T) {
	conn := e.connect(t)
	_, err := conn.Build(context.Background(), testTree(t), Ref{Pool: "nopool", Image: "x"}, BuildOptions{})
	if !errors.Is(err, ErrNoSuchPool) || !strings.Contains(err.Error(), `no such pool "nopool"`) || !strings.Contains(err.Error(), "pools: rbd") {
		t.Errorf("build: %v", err)
	}
	if _, err := conn.List(Ref{Pool: "nopool"}); !errors.Is(err, ErrNoSuchPool) {
		t.Errorf("list: %v", err)
	}
	if _, err := conn.Info(Ref{Pool: "nopool", Image: "x"}); !errors.Is(err, ErrNoSuchPool) {
		t.Errorf("info: %v", err)
	}
}

func unusedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func (e *cephEnv) testUnreachable(t *testing.T) {
	mon := fmt.Sprintf("127.0.0.1:%d", unusedPort(t))
	const timeout = 3 * time.Second
	start := time.Now()
	_, err := Connect(context.Background(), ConnectOptions{
		Monitors: []string{mon}, User: "admin", Keyring: e.c.Admin.Keyring, Timeout: timeout,
	})
	took := time.Since(start)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), mon) || !strings.Contains(err.Error(), "within 3s") {
		t.Errorf("unreachable: %v", err)
	}
	if took < timeout-500*time.Millisecond || took > timeout+5*time.Second {
		t.Errorf("gave up after %s, want about %s", took, timeout)
	}
	// A context ends the wait sooner.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = Connect(ctx, ConnectOptions{Monitors: []string{mon}, Keyring: e.c.Admin.Keyring, Timeout: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Errorf("context: %v after %s", err, time.Since(start))
	}
}

func (e *cephEnv) testPermissions(t *testing.T) {
	// The build user makes an image; the node user (rbd-read-only) can
	// look at it but not write, replace or remove it.
	build := e.connect(t)
	ref := Ref{Pool: "rbd", Image: "perm"}
	e.build(t, build, testTree(t), ref, BuildOptions{Snapshot: "s", Protect: true})
	node := e.connectAs(t, e.c.Node)
	if _, err := node.List(Ref{Pool: "rbd"}); err != nil {
		t.Errorf("node list: %v", err)
	}
	if in, err := node.Info(ref); err != nil || in.Squashfs == nil {
		t.Errorf("node info: %v", err)
	}
	_, err := node.Build(context.Background(), testTree(t), Ref{Pool: "rbd", Image: "perm-node"}, BuildOptions{})
	for _, want := range []string{"permission denied", "client.strata-node may not create image rbd/perm-node", "osd 'profile rbd pool=rbd'"} {
		if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), want) {
			t.Errorf("node build: %v (want %q)", err, want)
		}
	}
	if _, err := node.Info(Ref{Pool: "rbd", Image: "perm-node"}); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("a refused build left an image: %v", err)
	}
	if err := node.Remove(ref, true); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("node rm: %v", err)
	}
	// A user with no osd caps at all cannot even read.
	key := strings.TrimSpace(e.c.Run(t, "ceph", "auth", "get-or-create-key", "client.strata-nocaps", "mon", "profile rbd"))
	nocaps, err := Connect(context.Background(), ConnectOptions{Monitors: e.c.Monitors, User: "strata-nocaps", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer nocaps.Close()
	_, err = nocaps.Info(ref)
	if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), "profile rbd-read-only pool=rbd") {
		t.Errorf("no osd caps, info: %v", err)
	}
	if err := build.Remove(ref, true); err != nil {
		t.Error(err)
	}
}

func (e *cephEnv) testNotSquashfs(t *testing.T) {
	conn := e.connect(t)
	f := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(f, bytes.Repeat([]byte("junk"), 1000), 0o644)
	if _, err := conn.Upload(context.Background(), f, Ref{Pool: "rbd", Image: "junk"}, UploadOptions{}); err == nil || !strings.Contains(err.Error(), "hsqs") {
		t.Errorf("upload of junk: %v", err)
	}
	if _, err := conn.Build(context.Background(), f, Ref{Pool: "rbd", Image: "junk"}, BuildOptions{}); err == nil {
		t.Error("build of junk succeeded")
	}
	if _, err := conn.Info(Ref{Pool: "rbd", Image: "junk"}); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("junk image exists: %v", err)
	}
}

// The read-back catches a chunk that differs from what was written.
func (e *cephEnv) testVerifyDetectsCorruption(t *testing.T) {
	f := filepath.Join(t.TempDir(), "s.sqfs")
	if err := MakeSquashfs(context.Background(), bigTree(t, 10<<20), f, SquashfsOptions{}); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	e.c.Run(t, "rbd", "create", "--size", "16M", "--image-feature", "layering", "rbd/corrupt")
	ioc := e.rawIOContext(t, "rbd")
	img, err := rbd.OpenImage(ioc, "corrupt", rbd.NoSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	wo := WriteOptions{InFlight: 4}
	sums, _, err := writeImage(context.Background(), img, fh, st.Size(), wo, nil, NopProgress{})
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyImage(context.Background(), img, st.Size(), sums, 16<<20, wo, NopProgress{}); err != nil {
		t.Fatalf("verify of a good write: %v", err)
	}
	if _, err := img.WriteAt([]byte("garbage"), 5<<20+17); err != nil {
		t.Fatal(err)
	}
	err = verifyImage(context.Background(), img, st.Size(), sums, 16<<20, wo, NopProgress{})
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "bytes 4194304-8388608 read back differ") {
		t.Errorf("verify of a corrupted image: %v", err)
	}
	if err := verifyImage(context.Background(), img, st.Size(), sums, 32<<20, wo, NopProgress{}); !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "want 33554432") {
		t.Errorf("verify with the wrong size: %v", err)
	}
	if _, err := img.WriteAt([]byte("XXXX"), 0); err != nil {
		t.Fatal(err)
	}
	if err := verifyImage(context.Background(), img, st.Size(), sums, 16<<20, wo, NopProgress{}); !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "hsqs") {
		t.Errorf("verify without a superblock: %v", err)
	}
}

// testMount reads the image the way a person would check it on this
// machine (no krbd here): rbd-fuse shows the pool's images as files, and a
// read-only loop mount of one shows the squashfs.
func (e *cephEnv) testMount(t *testing.T) {
	needTools(t, "rbd-fuse", "fusermount", "mount", "umount", "losetup")
	conn := e.connect(t)
	src := bigTree(t, 6<<20)
	ref := Ref{Pool: "rbd", Image: "mounted"}
	e.build(t, conn, src, ref, BuildOptions{Snapshot: "v1", Protect: true, Squashfs: SquashfsOptions{NoCompressInodes: true, NoCompressXattrs: true}})

	fuseDir := filepath.Join(t.TempDir(), "fuse")
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.MkdirAll(fuseDir, 0o755)
	os.MkdirAll(mnt, 0o755)
	var fuseOut bytes.Buffer
	fuse := e.c.Command("rbd-fuse", "-c", e.c.Conf, "-p", "rbd", fuseDir, "-f")
	fuse.Stdout, fuse.Stderr = &fuseOut, &fuseOut
	if err := fuse.Start(); err != nil {
		t.Fatal(err)
	}
	fuseDone := make(chan error, 1)
	go func() { fuseDone <- fuse.Wait() }()
	file := filepath.Join(fuseDir, "mounted")
	t.Cleanup(func() {
		if out, err := exec.Command("fusermount", "-u", fuseDir).CombinedOutput(); err != nil {
			t.Logf("fusermount -u: %v %s", err, out)
		}
		select {
		case <-fuseDone:
		case <-time.After(10 * time.Second):
			t.Errorf("rbd-fuse did not exit after fusermount -u: killed")
			fuse.Process.Kill()
			<-fuseDone
		}
		if out, _ := exec.Command("losetup", "-j", file).CombinedOutput(); len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("loop devices left on %s: %s", file, out)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if st, err := os.Stat(file); err == nil && st.Size() > 0 {
			break
		}
		select {
		case err := <-fuseDone:
			fuseDone <- err
			t.Fatalf("rbd-fuse exited: %v\n%s", err, fuseOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rbd-fuse did not show %s in 15s:\n%s", file, fuseOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := exec.Command("mount", "-o", "loop,ro", "-t", "squashfs", file, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount -o loop,ro -t squashfs %s: %v\n%s", file, err, out)
	}
	mounted := true
	unmount := func() {
		if !mounted {
			return
		}
		mounted = false
		for i := 0; ; i++ {
			out, err := exec.Command("umount", mnt).CombinedOutput()
			if err == nil {
				return
			}
			if i == 20 {
				t.Errorf("umount %s: %v %s", mnt, err, out)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Cleanup(unmount) // runs before the fuse cleanup above
	sameTree(t, src, mnt)
	// While mounted, rbd-fuse holds the image open: a watcher.
	if in, err := conn.Info(ref); err != nil || len(in.Watchers) == 0 {
		t.Errorf("no watcher while rbd-fuse has the image open: %v %+v", err, in)
	}
	unmount()
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }
