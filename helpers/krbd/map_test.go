//go:build linux

package krbd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func testSpec() Spec {
	return Spec{
		Monitors:  []string{"10.0.0.1", "10.0.0.2:6789"},
		User:      "strata",
		Pool:      "images",
		Namespace: "hpc",
		Image:     "rootfs",
		Snapshot:  "v1",
		Options:   []string{"ro", "queue_depth=64"},
	}
}

func TestMapWritesLineAndReturnsDevice(t *testing.T) {
	k := newFakeKernel(t)
	m := k.mapper()
	d, err := m.Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
	if err != nil {
		t.Fatal(err)
	}
	want := "10.0.0.1:6789,10.0.0.2:6789 name=strata,key=client.strata,ro,queue_depth=64,_pool_ns=hpc images rootfs v1"
	adds := k.writesTo("add")
	if len(adds) != 1 || adds[0].file != "add_single_major" || adds[0].data != want {
		t.Fatalf("writes %+v, want one %q to add_single_major", adds, want)
	}
	// The regular file the fake sysfs uses holds exactly the line.
	got, _ := os.ReadFile(filepath.Join(k.sysfs, "bus/rbd/add_single_major"))
	if string(got) != want {
		t.Errorf("add_single_major holds %q", got)
	}
	wantDev := Device{ID: 0, Name: "rbd0", Path: filepath.Join(k.dev, "rbd0"), Major: 251, Minor: 0,
		Pool: "images", Namespace: "hpc", Image: "rootfs", Snapshot: "v1"}
	if d != wantDev {
		t.Errorf("device %+v, want %+v", d, wantDev)
	}
	// The key went in on the writing thread (checked by the fake kernel),
	// carried the decoded secret, and was removed after the write.
	if len(k.keyring.added) != 1 || k.keyring.added[0].desc != "client.strata" ||
		string(k.keyring.added[0].payload) != string(testSecretBytes()) {
		t.Errorf("keyring adds %+v", k.keyring.added)
	}
	if k.keyring.count() != 0 {
		t.Errorf("key left in the keyring")
	}
	if k.keyring.added[0].tid != adds[0].tid {
		t.Errorf("key added on thread %d, line written on thread %d", k.keyring.added[0].tid, adds[0].tid)
	}
}

func TestMapExactBytesVariants(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"head, no namespace", Spec{Monitors: []string{"192.0.2.1"}, Pool: "rbd", Image: "img"},
			"192.0.2.1:6789 name=admin,key=client.admin rbd img -"},
		{"msgr2 secure, ipv6", Spec{Monitors: []string{"[2001:db8::1]", "v2:192.0.2.2"}, Pool: "rbd", Image: "img", Options: []string{"ms_mode=secure", "exclusive"}},
			"[2001:db8::1]:3300,192.0.2.2:3300 name=admin,key=client.admin,ms_mode=secure,exclusive rbd img -"},
		{"namespace only", Spec{Monitors: []string{"192.0.2.1:6790"}, Pool: "rbd", Namespace: "ns1", Image: "img", Options: []string{"notrim", "alloc_size=4096"}},
			"192.0.2.1:6790 name=admin,key=client.admin,notrim,alloc_size=4096,_pool_ns=ns1 rbd img -"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := newFakeKernel(t)
			if _, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, c.spec, testSecret); err != nil {
				t.Fatal(err)
			}
			adds := k.writesTo("add")
			if len(adds) != 1 || adds[0].data != c.want {
				t.Errorf("wrote %+v, want %q", adds, c.want)
			}
		})
	}
}

func TestMapReusesExistingMapping(t *testing.T) {
	k := newFakeKernel(t)
	// Something else is mapped as rbd0; our image is rbd1 already.
	k.makeDevice(0, "images", "", "other", "-", "x")
	k.makeDevice(1, "images", "hpc", "rootfs", "v1", "y")
	d, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Reused || d.ID != 1 || d.Path != filepath.Join(k.dev, "rbd1") {
		t.Errorf("device %+v, want reused rbd1", d)
	}
	if w := k.writesTo("add"); len(w) != 0 {
		t.Errorf("wrote %+v although the mapping existed", w)
	}
	if len(k.keyring.added) != 0 {
		t.Errorf("touched the keyring although the mapping existed")
	}
	// Same image, other snapshot or namespace: not the same mapping.
	for _, s := range []Spec{
		func() Spec { s := testSpec(); s.Snapshot = ""; return s }(),
		func() Spec { s := testSpec(); s.Namespace = ""; return s }(),
	} {
		d, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, s, testSecret)
		if err != nil || d.Reused {
			t.Errorf("Map(%s) = %+v, %v; want a new mapping", s, d, err)
		}
	}
}

// Without pool_ns (kernels before namespace support) a device has no
// namespace.
func TestMapReuseOldKernelWithoutPoolNS(t *testing.T) {
	k := newFakeKernel(t)
	k.makeDevice(0, "rbd", "", "img", "-", "x")
	os.Remove(filepath.Join(k.sysfs, "bus/rbd/devices/0/pool_ns"))
	d, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, Spec{Monitors: []string{"1.2.3.4"}, Pool: "rbd", Image: "img"}, "")
	if err != nil || !d.Reused {
		t.Fatalf("Map = %+v, %v", d, err)
	}
}

func TestMapConcurrentSameImageMapsOnce(t *testing.T) {
	k := newFakeKernel(t)
	var wg sync.WaitGroup
	devs := make([]Device, 4)
	errs := make([]error, 4)
	for i := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			devs[i], errs[i] = k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
		}()
	}
	wg.Wait()
	reused := 0
	for i := range devs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if devs[i].ID != devs[0].ID {
			t.Errorf("got devices %d and %d", devs[0].ID, devs[i].ID)
		}
		if devs[i].Reused {
			reused++
		}
	}
	if n := len(k.writesTo("add")); n != 1 || reused != 3 {
		t.Errorf("%d add writes, %d reused; want 1 and 3", n, reused)
	}
}

func TestMapFallsBackToAdd(t *testing.T) {
	k := newFakeKernel(t)
	// single_major=N: the _single_major files are hidden.
	os.Remove(filepath.Join(k.sysfs, "bus/rbd/add_single_major"))
	os.Remove(filepath.Join(k.sysfs, "bus/rbd/remove_single_major"))
	d, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
	if err != nil {
		t.Fatal(err)
	}
	adds := k.writesTo("add")
	if len(adds) != 1 || adds[0].file != "add" {
		t.Errorf("writes %+v, want one to add", adds)
	}
	if err := k.mapper().Unmap(k.sysfs, d.Name, false); err != nil {
		t.Fatal(err)
	}
	if rm := k.writesTo("remove"); len(rm) != 1 || rm[0].file != "remove" || rm[0].data != "0" {
		t.Errorf("writes %+v, want \"0\" to remove", rm)
	}
}

func TestMapLoadsDriver(t *testing.T) {
	k := newFakeKernel(t)
	must(t, os.RemoveAll(filepath.Join(k.sysfs, "bus/rbd")))
	if _, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret); err != nil {
		t.Fatal(err)
	}
	if k.modprobes != 1 || len(k.writesTo("add")) != 1 {
		t.Errorf("modprobes %d, adds %d", k.modprobes, len(k.writesTo("add")))
	}
}

func TestMapDriverMissing(t *testing.T) {
	k := newFakeKernel(t)
	must(t, os.RemoveAll(filepath.Join(k.sysfs, "bus/rbd")))
	m := k.mapper()
	m.Modprobe = func(context.Context) error { return errors.New("modprobe: FATAL: Module rbd not found") }
	_, err := m.Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
	if !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), "rbd driver is not loaded") ||
		!strings.Contains(err.Error(), "Module rbd not found") {
		t.Errorf("err = %v", err)
	}
	// No sysfs at all.
	_, err = m.Map(context.Background(), filepath.Join(k.sysfs, "nowhere"), k.dev, testSpec(), testSecret)
	if !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), "is /sys mounted") {
		t.Errorf("err = %v", err)
	}
}

func TestMapKeyringFallback(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSYS, syscall.EPERM, syscall.ENODEV, syscall.EACCES} {
		t.Run(errno.Error(), func(t *testing.T) {
			k := newFakeKernel(t)
			k.keyring.addErr = errno
			m := k.mapper()
			if _, err := m.Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret); err != nil {
				t.Fatal(err)
			}
			adds := k.writesTo("add")
			want := "10.0.0.1:6789,10.0.0.2:6789 name=strata,secret=" + testSecret + ",ro,queue_depth=64,_pool_ns=hpc images rootfs v1"
			if len(adds) != 1 || adds[0].data != want {
				t.Errorf("wrote %+v, want %q", adds, want)
			}
			if !strings.Contains(strings.Join(k.logs, "\n"), "keyring unusable") {
				t.Errorf("fallback not logged: %q", k.logs)
			}
		})
	}
	// Other add_key errors are real errors: nothing is written.
	k := newFakeKernel(t)
	k.keyring.addErr = syscall.EDQUOT
	_, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
	if !errors.Is(err, syscall.EDQUOT) || !strings.Contains(err.Error(), "kernel keyring") {
		t.Errorf("err = %v", err)
	}
	if len(k.writesTo("add")) != 0 {
		t.Errorf("wrote despite the keyring error")
	}
}

func TestMapNoSecretMeansNoAuth(t *testing.T) {
	k := newFakeKernel(t)
	if _, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, Spec{Monitors: []string{"1.2.3.4"}, Pool: "rbd", Image: "img"}, ""); err != nil {
		t.Fatal(err)
	}
	if adds := k.writesTo("add"); adds[0].data != "1.2.3.4:6789 name=admin rbd img -" || len(k.keyring.added) != 0 {
		t.Errorf("wrote %+v", adds)
	}
}

func TestMapWaitsForDeviceNode(t *testing.T) {
	k := newFakeKernel(t)
	k.noNode = true
	start := time.Now()
	d, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "devtmpfs") {
		t.Fatalf("err = %v", err)
	}
	if d.Name != "rbd0" {
		t.Errorf("device %+v should still name the mapping", d)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("waited %s", el)
	}
	// The node appears later: a second Map reuses the mapping and succeeds.
	node := filepath.Join(k.dev, "rbd0")
	must(t, os.WriteFile(node, nil, 0o600))
	k.mu.Lock()
	k.nodes[node] = DevNode{Block: true, Major: 251, Minor: 0}
	k.mu.Unlock()
	d, err = k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
	if err != nil || !d.Reused {
		t.Errorf("second Map = %+v, %v", d, err)
	}
}

func TestMapDeviceNodeMismatch(t *testing.T) {
	k := newFakeKernel(t)
	k.noNode = true
	node := filepath.Join(k.dev, "rbd0")
	must(t, os.WriteFile(node, nil, 0o600))
	k.nodes[node] = DevNode{Block: true, Major: 8, Minor: 0} // a stale static node
	_, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
	if err == nil || !strings.Contains(err.Error(), "is 8:0, not the mapped 251:0") {
		t.Errorf("err = %v", err)
	}
	delete(k.nodes, node) // a regular file, not a block device
	_, err = k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
	if err == nil || !strings.Contains(err.Error(), "is not a block device") {
		t.Errorf("err = %v", err)
	}
}

func TestMapContextCancelled(t *testing.T) {
	k := newFakeKernel(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := k.mapper().Map(ctx, k.sysfs, k.dev, testSpec(), testSecret)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	if len(k.writesTo("add")) != 0 {
		t.Errorf("wrote after cancellation")
	}
}

func TestMapInvalidSpecWritesNothing(t *testing.T) {
	k := newFakeKernel(t)
	s := testSpec()
	s.Options = append(s.Options, "force")
	_, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, s, testSecret)
	var e *Error
	if !errors.As(err, &e) || e.Op != "map" || !strings.Contains(err.Error(), "unmap option") {
		t.Errorf("err = %v", err)
	}
	_, err = k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), "garbage")
	if err == nil || !strings.Contains(err.Error(), "not a valid key") {
		t.Errorf("err = %v", err)
	}
	if len(k.writes) != 0 {
		t.Errorf("wrote %+v", k.writes)
	}
}

func TestMapLogsDroppedMonitors(t *testing.T) {
	k := newFakeKernel(t)
	s := testSpec()
	s.Monitors = []string{"v2:10.0.0.1", "10.0.0.2"}
	if _, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, s, testSecret); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(k.logs, "\n"), "monitor not used: v2:10.0.0.1") {
		t.Errorf("logs %q", k.logs)
	}
}

// TestMapDecodedErrors checks the message for every errno the kernel's add
// path returns, with and without the kernel log to say which thing failed.
func TestMapDecodedErrors(t *testing.T) {
	cases := []struct {
		name  string
		errno syscall.Errno
		kmsg  []string
		spec  func(*Spec)
		want  []string
	}{
		{"ENOENT unknown which", syscall.ENOENT, nil, nil,
			[]string{`pool "images"`, `namespace "hpc"`, `image "rootfs"`, `snapshot "v1"`, "ceph osd pool ls", "rbd snap ls images/hpc/rootfs"}},
		{"ENOENT pool", syscall.ENOENT, []string{"rbd: pool images does not exist"}, nil,
			[]string{`pool "images" does not exist`, "ceph osd pool ls"}},
		{"ENOENT image", syscall.ENOENT, []string{"rbd: image images/hpc/rootfs does not exist"}, nil,
			[]string{"image images/hpc/rootfs does not exist", `namespace "hpc"`, "rbd ls images/hpc"}},
		{"ENOENT snapshot", syscall.ENOENT, []string{"rbd: snap images/hpc/rootfs@v1 does not exist"}, nil,
			[]string{"snapshot images/hpc/rootfs@v1 does not exist", "rbd snap ls images/hpc/rootfs"}},
		{"EACCES", syscall.EACCES, []string{"libceph: auth protocol 'cephx' auth failed: -13"}, nil,
			[]string{"cephx permission denied for client.strata", "ceph auth get client.strata", "profile rbd-read-only pool=images"}},
		{"EPERM read-write", syscall.EPERM, nil, func(s *Spec) { s.Options = nil; s.Snapshot = "" },
			[]string{"permission denied", "must map with the ro option", "CAP_SYS_ADMIN"}},
		{"EPERM key lookup", syscall.EPERM, []string{"libceph: Failed due to key not found: client.strata"}, nil,
			[]string{"did not find key client.strata"}},
		{"ETIMEDOUT", syscall.ETIMEDOUT, nil, func(s *Spec) { s.Options = append(s.Options, "mount_timeout=15") },
			[]string{"10.0.0.1:6789,10.0.0.2:6789", "mount_timeout=15 seconds", "reachable", "ms_mode"}},
		{"ETIMEDOUT exclusive", syscall.ETIMEDOUT, nil, func(s *Spec) { s.Options = []string{"exclusive"}; s.Snapshot = "" },
			[]string{"60 (the default)", "lock_timeout", "rbd status images/hpc/rootfs"}},
		{"EAGAIN", syscall.EAGAIN, nil, nil, []string{"no answer from the monitors"}},
		{"ENXIO from log", syscall.ENXIO, []string{"rbd: image rootfs: image uses unsupported features: 0x40"}, nil,
			[]string{"journaling", "rbd feature disable images/hpc/rootfs journaling"}},
		{"ENXIO migrating", syscall.ENXIO, []string{"rbd: image rootfs: image uses unsupported features: 0x240"}, nil,
			[]string{"journaling, migrating", "rbd feature disable images/hpc/rootfs journaling", "migrating cannot be disabled", "rbd migration"}},
		{"ENXIO without log", syscall.ENXIO, nil, nil,
			[]string{"it supports layering, striping, exclusive-lock, object-map, fast-diff, deep-flatten, data-pool", "rbd info images/hpc/rootfs", "object-map fast-diff deep-flatten"}},
		{"EINVAL", syscall.EINVAL, nil, nil,
			[]string{"rejected the request as invalid", "dmesg"}},
		{"EINVAL unknown option", syscall.EINVAL, []string{"rbd: Unknown parameter 'foo'"}, nil,
			[]string{"this node's kernel (", "does not know the map option foo; drop it", "Unknown parameter 'foo'"}},
		// Options newer than the kernel: the kernel's answer names the
		// option (libceph's or rbd's parser), the message the Linux that added it.
		{"EINVAL ms_mode on 5.10", syscall.EINVAL, []string{"libceph: Unknown parameter 'ms_mode'"}, func(s *Spec) { s.Options = append(s.Options, "ms_mode=secure") },
			[]string{"does not know the map option ms_mode: Linux 5.11 added it"}},
		{"EINVAL rxbounce on 5.15", syscall.EINVAL, []string{"libceph: Unknown parameter 'rxbounce'"}, func(s *Spec) { s.Options = append(s.Options, "rxbounce") },
			[]string{"does not know the map option rxbounce: Linux 5.17 added it"}},
		{"EINVAL read_from_replica on 5.4", syscall.EINVAL, []string{"libceph: Unknown parameter 'read_from_replica'"}, func(s *Spec) { s.Options = append(s.Options, "read_from_replica=balance") },
			[]string{"does not know the map option read_from_replica: Linux 5.8 added it"}},
		{"EINVAL exclusive", syscall.EINVAL, []string{"rbd: image rootfs: exclusive-lock feature is not enabled"}, func(s *Spec) { s.Options = []string{"exclusive"} },
			[]string{"rbd feature enable images/hpc/rootfs exclusive-lock"}},
		{"ENODEV", syscall.ENODEV, nil, nil, []string{"rbd driver is missing", "CONFIG_BLK_DEV_RBD"}},
		{"ENAMETOOLONG", syscall.ENAMETOOLONG, nil, nil, []string{"250 bytes"}},
		{"EBLOCKLISTED", syscall.ESHUTDOWN, nil, nil, []string{"blocklisted", "ceph osd blocklist ls"}},
		{"ENOSPC", syscall.ENOSPC, nil, nil, []string{"no free rbd device id"}},
		{"EIO", syscall.EIO, nil, nil, []string{"I/O error"}},
		{"other", syscall.EXDEV, nil, nil, []string{"refused the map request", "EXDEV"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := newFakeKernel(t)
			k.addErr = c.errno
			k.kmsg = c.kmsg
			s := testSpec()
			if c.spec != nil {
				c.spec(&s)
			}
			_, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, s, testSecret)
			if !errors.Is(err, c.errno) {
				t.Fatalf("err = %v, want errno %v", err, c.errno)
			}
			var e *Error
			if !errors.As(err, &e) || e.Errno != c.errno || e.Op != "map" || e.Target != s.String() {
				t.Fatalf("err = %#v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not mention %q", err, w)
				}
			}
			// The written line is part of the error (keyring path: no secret).
			if !strings.Contains(err.Error(), "key=client.strata") {
				t.Errorf("error lacks the line: %v", err)
			}
			if k.keyring.count() != 0 {
				t.Errorf("key left behind after a failed map")
			}
		})
	}
}

func TestList(t *testing.T) {
	k := newFakeKernel(t)
	k.makeDevice(2, "p", "", "b", "-", "")
	k.makeDevice(0, "p", "ns", "a", "s", "")
	must(t, os.MkdirAll(filepath.Join(k.sysfs, "bus/rbd/devices/junk"), 0o755))
	devs, err := List(k.sysfs, "/dev")
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].Name != "rbd0" || devs[0].Namespace != "ns" || devs[0].Snapshot != "s" ||
		devs[1].Path != "/dev/rbd2" || devs[1].Snapshot != "" {
		t.Errorf("List = %+v", devs)
	}
	d, ok, err := Find(k.sysfs, "/dev", Spec{Pool: "p", Image: "b"})
	if err != nil || !ok || d.ID != 2 {
		t.Errorf("Find = %+v %v %v", d, ok, err)
	}
}

// With the real writer, failing to open the control file is not taken for
// the kernel's answer.
func TestMapOpenErrorIsNotKernelAnswer(t *testing.T) {
	k := newFakeKernel(t)
	add := filepath.Join(k.sysfs, "bus/rbd/add_single_major")
	must(t, os.Remove(add))
	must(t, os.Mkdir(add, 0o755)) // open(O_WRONLY) fails with EISDIR
	m := k.mapper()
	m.Write = nil
	_, err := m.Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret)
	var e *Error
	if !errors.As(err, &e) || e.Errno != 0 || !strings.Contains(err.Error(), "cannot open "+add) {
		t.Errorf("err = %v", err)
	}
}

func TestErrorIsOneLine(t *testing.T) {
	k := newFakeKernel(t)
	s := testSpec()
	s.Pool, s.Image, s.Options = "", "a b", []string{"bogus", "ro=1"}
	_, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, s, testSecret)
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %q", err)
	}
	for _, w := range []string{"pool is empty", "whitespace", `"bogus"`, `"ro=1"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("err %q lacks %q", err, w)
		}
	}
}
