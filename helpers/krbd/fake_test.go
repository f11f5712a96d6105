//go:build linux

package krbd

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testSecretBytes is a well-formed cephx CryptoKey: AES, a creation time,
// 16 key bytes. Its base64 form is what `ceph auth get-key` would print.
func testSecretBytes() []byte {
	b := make([]byte, 12+16)
	binary.LittleEndian.PutUint16(b[0:], 1)          // CEPH_CRYPTO_AES
	binary.LittleEndian.PutUint32(b[2:], 1700000000) // created.sec
	binary.LittleEndian.PutUint32(b[6:], 123456)     // created.nsec
	binary.LittleEndian.PutUint16(b[10:], 16)
	copy(b[12:], "StrataSecretKey!")
	return b
}

var testSecret = base64.StdEncoding.EncodeToString(testSecretBytes())

// fakeWrite is one write to a sysfs control file.
type fakeWrite struct {
	file string // base name: add_single_major, remove, ...
	data string
	tid  int // OS thread that wrote
}

// fakeKernel plays the rbd driver on a temp sysfs tree: a write to add
// creates devices/N/{pool,pool_ns,name,current_snap,major,minor,config_info}
// and DEV/rbdN (a regular file the fake stat reports as a block device); a
// write to remove deletes them. Errnos can be scripted.
type fakeKernel struct {
	t       *testing.T
	sysfs   string
	dev     string
	proc    string
	major   uint32
	keyring *fakeKeyring

	mu        sync.Mutex
	writes    []fakeWrite
	addErr    syscall.Errno   // returned by every add write when set
	addErrs   []syscall.Errno // returned by successive add writes, before addErr
	clock     *fakeClock      // the mapper's retry clock
	addCost   time.Duration   // how long each add write takes on clock
	release   string          // the kernel's release, as uname -r says
	removeErr []syscall.Errno // returned by successive remove writes
	kmsg      []string        // kernel log lines for a failed write
	noNode    bool            // do not create DEV/rbdN
	nodes     map[string]DevNode
	modprobes int
	logs      []string
}

func newFakeKernel(t *testing.T) *fakeKernel {
	t.Helper()
	root := t.TempDir()
	k := &fakeKernel{
		t:       t,
		sysfs:   filepath.Join(root, "sys"),
		dev:     filepath.Join(root, "dev"),
		proc:    filepath.Join(root, "proc"),
		major:   251,
		keyring: &fakeKeyring{keys: map[int]fakeKey{}},
		nodes:   map[string]DevNode{},
		clock:   newFakeClock(),
		release: "5.4.0-150-generic",
	}
	k.installDriver()
	must(t, os.MkdirAll(k.dev, 0o755))
	must(t, os.MkdirAll(filepath.Join(k.proc, "self"), 0o755))
	must(t, os.WriteFile(filepath.Join(k.proc, "self", "mountinfo"), nil, 0o644))
	return k
}

func (k *fakeKernel) installDriver() {
	bus := filepath.Join(k.sysfs, "bus", "rbd")
	must(k.t, os.MkdirAll(filepath.Join(bus, "devices"), 0o755))
	for _, f := range []string{"add", "remove", "add_single_major", "remove_single_major"} {
		must(k.t, os.WriteFile(filepath.Join(bus, f), nil, 0o600))
	}
	must(k.t, os.WriteFile(filepath.Join(bus, "supported_features"), []byte("0xbf\n"), 0o444))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (k *fakeKernel) mapper() *Mapper {
	return &Mapper{
		Keyring:       k.keyring,
		Write:         k.write,
		Modprobe:      k.modprobe,
		StatDevice:    k.stat,
		KernelLog:     k.kernelLog,
		ProcRoot:      k.proc,
		DeviceTimeout: 300 * time.Millisecond,
		BusyRetries:   []time.Duration{time.Millisecond, time.Millisecond},
		Retry:         k.clock.retry(DefaultRetry),
		// Older than replica reads, so that snapshot lines are as given;
		// replica_test.go sets newer ones.
		KernelRelease: func() string { return k.release },
		Logf: func(format string, args ...any) {
			k.mu.Lock()
			k.logs = append(k.logs, fmt.Sprintf(format, args...))
			k.mu.Unlock()
		},
	}
}

func (k *fakeKernel) modprobe(context.Context) error {
	k.mu.Lock()
	k.modprobes++
	k.mu.Unlock()
	k.installDriver()
	return nil
}

func (k *fakeKernel) kernelLog() func() []string {
	return func() []string {
		k.mu.Lock()
		defer k.mu.Unlock()
		return append([]string(nil), k.kmsg...)
	}
}

func (k *fakeKernel) stat(path string) (DevNode, error) {
	k.mu.Lock()
	n, ok := k.nodes[path]
	k.mu.Unlock()
	if ok {
		return n, nil
	}
	// /proc/PID/fd/N links resolve to our fake nodes.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		k.mu.Lock()
		n, ok = k.nodes[real]
		k.mu.Unlock()
		if ok {
			return n, nil
		}
	}
	if _, err := os.Stat(path); err != nil {
		return DevNode{}, err
	}
	return DevNode{}, nil // exists, not a block device
}

// write is the fake kernel's sysfs store: it really writes the bytes to the
// regular file (and reads them back), then acts on them.
func (k *fakeKernel) write(path string, data []byte) error {
	if err := writeSysfs(path, data); err != nil {
		return err
	}
	back, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if string(back[:len(data)]) != string(data) {
		k.t.Errorf("read back %q, wrote %q", back, data)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.writes = append(k.writes, fakeWrite{file: filepath.Base(path), data: string(data), tid: unix.Gettid()})
	switch filepath.Base(path) {
	case "add", "add_single_major":
		k.clock.advance(k.addCost)
		if len(k.addErrs) > 0 {
			e := k.addErrs[0]
			k.addErrs = k.addErrs[1:]
			if e != 0 {
				return &fs.PathError{Op: "write", Path: path, Err: e}
			}
			return k.add(string(data))
		}
		if k.addErr != 0 {
			return &fs.PathError{Op: "write", Path: path, Err: k.addErr}
		}
		return k.add(string(data))
	case "remove", "remove_single_major":
		if len(k.removeErr) > 0 {
			e := k.removeErr[0]
			k.removeErr = k.removeErr[1:]
			if e != 0 {
				return &fs.PathError{Op: "write", Path: path, Err: e}
			}
		}
		return k.remove(string(data))
	}
	return syscall.EINVAL
}

// add parses the line like rbd_add_parse_args and creates the device.
func (k *fakeKernel) add(line string) error {
	tok := strings.Fields(line)
	if len(tok) != 5 {
		k.t.Errorf("add line has %d tokens: %q", len(tok), line)
		return syscall.EINVAL
	}
	ns := ""
	for _, o := range strings.Split(tok[1], ",") {
		if v, ok := strings.CutPrefix(o, "_pool_ns="); ok {
			ns = v
		}
		if v, ok := strings.CutPrefix(o, "key="); ok {
			// libceph's request_key runs in the writer's context: the key
			// must be in a keyring of this very thread.
			if !k.keyring.has(v, unix.Gettid()) {
				k.t.Errorf("key=%s written, but no such key on writer thread %d", v, unix.Gettid())
				return syscall.EPERM
			}
		}
	}
	id := 0
	for {
		if _, err := os.Stat(filepath.Join(k.sysfs, "bus", "rbd", "devices", strconv.Itoa(id))); errors.Is(err, fs.ErrNotExist) {
			break
		}
		id++
	}
	k.makeDevice(id, tok[2], ns, tok[3], tok[4], line)
	return nil
}

func (k *fakeKernel) makeDevice(id int, pool, ns, image, snap, config string) {
	dir := filepath.Join(k.sysfs, "bus", "rbd", "devices", strconv.Itoa(id))
	must(k.t, os.MkdirAll(dir, 0o755))
	minor := uint32(id << 4)
	for name, v := range map[string]string{
		"pool": pool, "pool_ns": ns, "name": image, "current_snap": snap,
		"major": strconv.Itoa(int(k.major)), "minor": strconv.Itoa(int(minor)),
		"config_info": config,
	} {
		must(k.t, os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o444))
	}
	if !k.noNode {
		node := filepath.Join(k.dev, "rbd"+strconv.Itoa(id))
		must(k.t, os.WriteFile(node, nil, 0o600))
		k.nodes[node] = DevNode{Block: true, Major: k.major, Minor: minor}
	}
}

func (k *fakeKernel) remove(data string) error {
	var id int
	var opt string
	if n, _ := fmt.Sscanf(data, "%d %s", &id, &opt); n < 1 {
		return syscall.EINVAL
	}
	if opt != "" && opt != "force" {
		return syscall.EINVAL
	}
	dir := filepath.Join(k.sysfs, "bus", "rbd", "devices", strconv.Itoa(id))
	if _, err := os.Stat(dir); err != nil {
		return &fs.PathError{Op: "write", Path: "remove", Err: syscall.ENOENT}
	}
	must(k.t, os.RemoveAll(dir))
	node := filepath.Join(k.dev, "rbd"+strconv.Itoa(id))
	os.Remove(node)
	delete(k.nodes, node)
	return nil
}

func (k *fakeKernel) writesTo(prefix string) []fakeWrite {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []fakeWrite
	for _, w := range k.writes {
		if strings.HasPrefix(w.file, prefix) {
			out = append(out, w)
		}
	}
	return out
}

// fakeKeyring records keys with the OS thread that added them, standing in
// for the thread keyring.
type fakeKey struct {
	desc    string
	payload []byte
	tid     int
}

type fakeKeyring struct {
	mu      sync.Mutex
	keys    map[int]fakeKey
	next    int
	addErr  error
	added   []fakeKey
	removed []int
}

func (r *fakeKeyring) Add(desc string, payload []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.addErr != nil {
		return 0, r.addErr
	}
	r.next++
	k := fakeKey{desc: desc, payload: append([]byte(nil), payload...), tid: unix.Gettid()}
	r.keys[r.next] = k
	r.added = append(r.added, k)
	return r.next, nil
}

func (r *fakeKeyring) Remove(id int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.keys[id]; !ok {
		return syscall.ENOKEY
	}
	delete(r.keys, id)
	r.removed = append(r.removed, id)
	return nil
}

func (r *fakeKeyring) has(desc string, tid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.keys {
		if k.desc == desc && k.tid == tid {
			return true
		}
	}
	return false
}

func (r *fakeKeyring) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
