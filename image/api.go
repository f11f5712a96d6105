package image

import (
	"fmt"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/internal/verity"
)

// DefaultTimeout bounds connecting and each operation on the cluster.
const DefaultTimeout = 15 * time.Second

// ConnectOptions say how to reach the cluster and as whom.
type ConnectOptions struct {
	// Conf is a ceph.conf to read. Without Conf and Monitors, the default
	// one is read ($CEPH_CONF, /etc/ceph/ceph.conf), as the rbd tool does.
	Conf string
	// Monitors (ip:port, [v2:ip:port,v1:ip:port] or host names) override
	// the conf's mon_host.
	Monitors []string
	// User is the cephx id without "client.": "admin" when empty.
	User string
	// Keyring is a keyring file holding the user's key. Key, the key
	// itself (base64), wins over it. Without either, the conf's keyring
	// setting and Ceph's default keyring paths are used.
	Keyring string
	Key     string
	// Timeout bounds connecting (client_mount_timeout) and every monitor
	// and OSD operation (rados_mon_op_timeout, rados_osd_op_timeout).
	// DefaultTimeout when 0.
	Timeout time.Duration
}

func (o ConnectOptions) user() string {
	if o.User == "" {
		return layout.DefaultCephUser
	}
	return strings.TrimPrefix(o.User, "client.")
}

func (o ConnectOptions) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// where describes the monitors for messages.
func (o ConnectOptions) where() string {
	if len(o.Monitors) > 0 {
		return strings.Join(o.Monitors, ",")
	}
	if o.Conf != "" {
		return "the monitors of " + o.Conf
	}
	if c := os.Getenv("CEPH_CONF"); c != "" {
		return "the monitors of " + c
	}
	return "the monitors of /etc/ceph/ceph.conf"
}

func (o ConnectOptions) scope() scope {
	return scope{User: "client." + o.user(), Monitors: o.where(), Timeout: o.timeout()}
}

// Check reports problems that need no cluster: a keyring or conf that
// cannot be read.
func (o ConnectOptions) Check() error {
	for _, f := range []struct{ what, path string }{{"keyring", o.Keyring}, {"conf", o.Conf}} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.what, err)
		}
		fh.Close()
	}
	return nil
}

// BuildOptions control Build.
type BuildOptions struct {
	// FS is the file system to make: FSSquashfs (when empty) or FSErofs,
	// with the options of its kind.
	FS       string
	Squashfs SquashfsOptions
	Erofs    ErofsOptions
	// Size of the image in bytes; 0 is automatic: the file system rounded
	// up to whole 4 MiB objects.
	Size uint64
	// Layout of a new image's objects (object size, striping).
	Layout ObjectLayout
	// Snapshot, when set, is created after the image is written and
	// verified; Protect protects it (so that it can be cloned, and cannot
	// be removed by mistake while nodes map it).
	Snapshot string
	Protect  bool
	// Force replaces an existing image. Without it Build refuses when the
	// image exists. With it, an image that has no watchers is removed
	// (with its snapshots) and made anew; one that has watchers (mapped or
	// open somewhere) is written over in place, which the readers see.
	Force bool
	// TempDir holds the squashfs file while it is made and written
	// ($TMPDIR or /tmp when empty). It needs room for the whole squashfs.
	TempDir string
	// KeepSquashfs, when set, is where the file system image (squashfs or
	// erofs) is moved to after the build instead of being removed.
	KeepSquashfs string
	// Platform picks the image of an OCI source (HostPlatform when empty).
	Platform v1.Platform
	// Verity stores the dm-verity hash tree after the squashfs and a
	// trailer in the image's last block (internal/verity), and records
	// the parameters in the image's metadata too.
	Verity bool
	// Sign, with Verity, signs the root hash (systemd's PKCS#7 form) and
	// stores the signature in the image, where the trailer locates it.
	Sign *verity.Signer
	// Salt of the hash tree (BuildFile only); a random one when nil.
	Salt     []byte
	Write    WriteOptions
	Progress Progress
}

// ReadBack is what the build's read-back compares, as the build prints it
// and docs/schemes/rbd.md says it (docs/doctest checks the page).
const ReadBack = "size and CRC-32C of every chunk"

// WriteOptions control how a squashfs file goes into an image.
type WriteOptions struct {
	// ChunkSize of each write (4 MiB, one RBD object, when 0).
	ChunkSize int
	// InFlight writes at once (8 when 0). Memory use is about
	// (InFlight+1) * ChunkSize.
	InFlight int
	// NoVerify skips reading the image back. The read-back compares the
	// size and each chunk's CRC-32C with what was written.
	NoVerify bool
	// SHA256 computes the SHA-256 of the squashfs while writing it (for
	// BuildResult.SHA256). It costs CPU time: ~0.1 s per 200 MiB here.
	SHA256 bool
}

func (o WriteOptions) chunk() int {
	if o.ChunkSize <= 0 {
		return ObjectSize
	}
	return o.ChunkSize
}

func (o WriteOptions) inFlight() int {
	if o.InFlight <= 0 {
		return 8
	}
	return o.InFlight
}

// UploadOptions control Upload (writing an existing squashfs file).
type UploadOptions struct {
	// Metadata is set on the image (keys of MetadataKeys that it lacks
	// are removed: an image rebuilt from a directory has no OCI digest).
	Metadata map[string]string
	Verity   bool
	Sign     *verity.Signer // with Verity: sign the root hash (BuildOptions.Sign)
	Size     uint64
	Layout   ObjectLayout
	Snapshot string
	Protect  bool
	Force    bool
	Write    WriteOptions
	Progress Progress
}

// BuildResult says what a build made.
type BuildResult struct {
	Ref          Ref    // the image (with Snapshot when one was made)
	FS           string // the file system written: squashfs or erofs
	Layout       ObjectLayout
	ImageSize    uint64 // bytes
	SquashfsSize int64  // bytes written (of the squashfs or erofs)
	SHA256       string // of the squashfs, hex, when WriteOptions.SHA256
	Verified     bool   // read back: size and every chunk's CRC-32C match
	Replaced     bool   // an existing image was replaced (--force)
	InPlace      bool   // ... by writing over it in place (it had watchers)
	Protected    bool
	OCI          *OCIInfo       // when built from an OCI source
	Verity       *verity.Params // when built with Verity
	FileSize     int64          // BuildFile: squashfs, hash tree and trailer
	Flatten      time.Duration
	Squashfs     time.Duration
	Upload       time.Duration
	Verify       time.Duration
	Hash         time.Duration // BuildFile: the verity hash tree
}

// Throughput of the upload in bytes per second.
func (r *BuildResult) Throughput() float64 {
	if r.Upload <= 0 {
		return 0
	}
	return float64(r.SquashfsSize) / r.Upload.Seconds()
}

// ImageInfo is what Info says about an image.
type ImageInfo struct {
	Ref        Ref
	ID         string
	Size       uint64
	ObjectSize uint64
	Features   []string
	Snapshots  []SnapshotInfo
	Watchers   []Watcher
	// Squashfs is the superblock at the start of the image (or of the
	// snapshot named in Ref); nil when the image does not hold a squashfs.
	Squashfs *Superblock
	// NotSquashfs says why Squashfs is nil ("erofs" when Erofs is set).
	NotSquashfs string
	// Metadata is the image's metadata under MetadataKeys (the OCI source
	// it was built from).
	Metadata map[string]string
	// Erofs is the erofs superblock when the image holds an erofs.
	Erofs *ErofsSuperblock
	// Verity is read from the trailer in the image's last block; nil (and
	// NoVerity says why) for an image built with --no-verity.
	Verity   *verity.Params
	NoVerity string
}

// SnapshotInfo is one snapshot of an image.
type SnapshotInfo struct {
	ID        uint64
	Name      string
	Size      uint64
	Protected bool
}

// Watcher is a client that has the image open or mapped.
type Watcher struct {
	Address string
	ID      int64
	Cookie  uint64
}

// ListEntry is one image in a pool.
type ListEntry struct {
	Name string
	ID   string
}

// watchFile reports the size of a growing file to p until stop is called.
func watchFile(file string, p Progress) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if st, err := os.Stat(file); err == nil {
					p.Update(st.Size())
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func moveFile(from, to string) error {
	if err := os.Rename(from, to); err == nil {
		return nil
	}
	return copyFile(from, to)
}
