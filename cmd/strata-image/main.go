// Command strata-image builds squashfs images into Ceph RBD images and
// manages them: the admin side of Strata's RBD scheme. It links librados and
// librbd (go-ceph, cgo, built with -tags pacific for Ceph 16.2), so it is a
// binary of its own: nodes, the generator and strata-helper need no Ceph
// libraries. `strata image ...` runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-project/strata/image"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `usage: strata-image COMMAND [ARGS]

Commands:
  build DIR|TARBALL|SQUASHFS --pool P --image I [--namespace N] [--snapshot S] [--protect]
        [--size auto|N] [--compressor zstd|xz|gzip] [--force] [--json]
      make a squashfs of DIR (or of a tar archive: plain, gzip, bzip2, xz,
      zstd), write it into a new RBD image that many nodes can map
      read-only (feature layering only), read it back to verify it, and
      optionally snapshot (and protect) it; a squashfs file made before is
      written as it is
  ls [--pool P] [--namespace N] [--json] [POOL[/NAMESPACE]]
      the images of a pool (default pool: rbd)
  info [--json] POOL/[NAMESPACE/]IMAGE[@SNAPSHOT]
      size, features, snapshots, watchers, and whether it holds a squashfs
  rm [--force] POOL/[NAMESPACE/]IMAGE
      remove an image; --force also removes its snapshots
  version

Connection options (every command):
  --conf FILE       a ceph.conf (default: $CEPH_CONF or /etc/ceph/ceph.conf
                    when no --mon is given)
  --mon ADDR        monitor address, e.g. 10.0.0.1:6789 or
                    [v2:10.0.0.1:3300,v1:10.0.0.1:6789] (repeatable)
  --id USER         cephx user without "client." (default admin)
  --keyring FILE    keyring holding the user's key
  --timeout D       bound on connecting and on each operation (default 15s)

Build options:
  --no-compress-inodes  mksquashfs -noI   } the seed procedure's flags
  --no-compress-xattrs  mksquashfs -noX   }
  --no-xattrs           mksquashfs -no-xattrs
  --all-root            mksquashfs -all-root
  --mksquashfs-arg ARG  one more mksquashfs argument (repeatable)
  --tmpdir DIR          where the squashfs file is made (default $TMPDIR or /tmp)
  --keep-squashfs FILE  keep the squashfs file there
  --in-flight N         writes in flight (default 8)
  --chunk-size N        bytes per write (default 4M)
  --no-verify           do not read the image back (it compares the size and
                        each chunk's CRC-32C with what was written)
  --sha256              also compute and print the squashfs's SHA-256
  --progress auto|bar|lines|none

--force: build replaces an existing image (written over in place when it
is mapped somewhere: the readers see it change); rm removes snapshots.
Exit status: 0 ok, 1 failure, 2 usage.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "build":
		err = build(ctx, args[1:], stdout, stderr)
	case "ls", "list":
		err = list(ctx, args[1:], stdout, stderr)
	case "info":
		err = info(ctx, args[1:], stdout, stderr)
	case "rm", "remove":
		err = remove(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "strata-image %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "strata-image: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return 0
	}
	if errors.Is(err, context.Canceled) {
		err = errors.New("interrupted (nothing half-made is left: temporary files and a partly written new image are removed)")
	}
	fmt.Fprintf(stderr, "strata-image %s: %v\n", args[0], err)
	return 1
}

// usageError is a mistake on the command line (exit status 2).
func usageError(stderr io.Writer, cmd, format string, a ...any) error {
	fmt.Fprintf(stderr, "strata-image %s: %s\n(strata-image help for usage)\n", cmd, fmt.Sprintf(format, a...))
	return exitError{2}
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// connFlags are the connection options every command takes.
type connFlags struct {
	conf, id, keyring string
	mons              listFlag
	timeout           time.Duration
}

func (c *connFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&c.conf, "conf", "", "ceph.conf")
	fs.Var(&c.mons, "mon", "monitor address (repeatable)")
	fs.StringVar(&c.id, "id", "admin", "cephx user")
	fs.StringVar(&c.keyring, "keyring", "", "keyring file")
	fs.DurationVar(&c.timeout, "timeout", image.DefaultTimeout, "time-out")
}

func (c *connFlags) connect(ctx context.Context) (*image.Conn, error) {
	return image.Connect(ctx, image.ConnectOptions{
		Conf: c.conf, Monitors: c.mons, User: c.id, Keyring: c.keyring, Timeout: c.timeout,
	})
}

// parse parses flags and positional arguments in any order.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func flagError(stderr io.Writer, cmd string, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError(stderr, cmd, "%v", err)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func progressFor(mode string, w io.Writer) (image.Progress, error) {
	switch mode {
	case "auto":
		return image.NewProgress(w, isTerminal(w)), nil
	case "bar":
		return image.NewProgress(w, true), nil
	case "lines":
		return image.NewProgress(w, false), nil
	case "none":
		return image.NopProgress{}, nil
	}
	return nil, fmt.Errorf("--progress %q: want auto, bar, lines or none", mode)
}

// ref reads an image from flags and/or one positional POOL/[NS/]IMAGE[@SNAP].
func ref(pos []string, pool, ns, img, snap string) (image.Ref, error) {
	var r image.Ref
	switch len(pos) {
	case 0:
		r = image.Ref{Pool: pool, Namespace: ns, Image: img, Snapshot: snap}
		if r.Pool == "" {
			r.Pool = "rbd"
		}
	case 1:
		if img != "" {
			return r, fmt.Errorf("image given twice (%q and --image %q)", pos[0], img)
		}
		defPool := pool
		if defPool == "" {
			defPool = "rbd"
		}
		var err error
		if r, err = image.ParseRef(pos[0], defPool); err != nil {
			return r, err
		}
		if ns != "" && r.Namespace == "" {
			r.Namespace = ns
		}
		if snap != "" && r.Snapshot == "" {
			r.Snapshot = snap
		}
	default:
		return r, fmt.Errorf("one image, please (got %s)", strings.Join(pos, " "))
	}
	return r, r.Validate()
}

func build(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("build", stderr)
	var c connFlags
	c.add(fs)
	var (
		pool, ns, img, snap, size, comp, tmp, keep, progress                  string
		protect, force, noI, noX, noXattrs, allRoot, noVerify, asJSON, digest bool
		inFlight                                                              int
		chunk                                                                 string
		extra                                                                 listFlag
	)
	fs.StringVar(&pool, "pool", "", "pool")
	fs.StringVar(&ns, "namespace", "", "namespace")
	fs.StringVar(&img, "image", "", "image")
	fs.StringVar(&snap, "snapshot", "", "snapshot to make")
	fs.BoolVar(&protect, "protect", false, "protect the snapshot")
	fs.StringVar(&size, "size", "auto", "image size")
	fs.StringVar(&comp, "compressor", image.DefaultCompressor, "squashfs compressor")
	fs.BoolVar(&force, "force", false, "replace an existing image")
	fs.BoolVar(&noI, "no-compress-inodes", false, "mksquashfs -noI")
	fs.BoolVar(&noX, "no-compress-xattrs", false, "mksquashfs -noX")
	fs.BoolVar(&noXattrs, "no-xattrs", false, "mksquashfs -no-xattrs")
	fs.BoolVar(&allRoot, "all-root", false, "mksquashfs -all-root")
	fs.Var(&extra, "mksquashfs-arg", "extra mksquashfs argument")
	fs.StringVar(&tmp, "tmpdir", "", "temporary directory")
	fs.StringVar(&keep, "keep-squashfs", "", "keep the squashfs file here")
	fs.IntVar(&inFlight, "in-flight", 8, "writes in flight")
	fs.StringVar(&chunk, "chunk-size", "4M", "bytes per write")
	fs.BoolVar(&noVerify, "no-verify", false, "skip the read-back")
	fs.BoolVar(&digest, "sha256", false, "print the squashfs's SHA-256")
	fs.StringVar(&progress, "progress", "auto", "auto|bar|lines|none")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(stderr, "build", err)
	}
	if len(pos) != 1 {
		return usageError(stderr, "build", "want one DIR, TARBALL or SQUASHFS file, got %d arguments", len(pos))
	}
	if pool == "" || img == "" {
		return usageError(stderr, "build", "--pool and --image are required")
	}
	if protect && snap == "" {
		return usageError(stderr, "build", "--protect needs --snapshot")
	}
	r := image.Ref{Pool: pool, Namespace: ns, Image: img}
	if err := r.Validate(); err != nil {
		return usageError(stderr, "build", "%v", err)
	}
	sz, err := image.ParseSize(size)
	if err != nil {
		return usageError(stderr, "build", "--size: %v", err)
	}
	ch, err := image.ParseSize(chunk)
	if err != nil || ch == 0 || ch > 64<<20 {
		return usageError(stderr, "build", "--chunk-size %q: want 4K to 64M", chunk)
	}
	if inFlight < 1 || inFlight > 64 {
		return usageError(stderr, "build", "--in-flight %d: want 1 to 64", inFlight)
	}
	sq := image.SquashfsOptions{Compressor: comp, NoCompressInodes: noI, NoCompressXattrs: noX,
		NoXattrs: noXattrs, AllRoot: allRoot, ExtraArgs: extra}
	if err := sq.Validate(); err != nil {
		return usageError(stderr, "build", "--compressor: %v", err)
	}
	// Progress goes to stderr: stdout carries the result.
	p, err := progressFor(progress, stderr)
	if err != nil {
		return usageError(stderr, "build", "%v", err)
	}
	if _, err := image.Source(pos[0]); err != nil {
		return err
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := conn.Build(ctx, pos[0], r, image.BuildOptions{
		Squashfs: sq, Size: sz, Snapshot: snap, Protect: protect, Force: force,
		TempDir: tmp, KeepSquashfs: keep, Progress: p,
		Write: image.WriteOptions{ChunkSize: int(ch), InFlight: inFlight, NoVerify: noVerify, SHA256: digest},
	})
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, buildJSON(res))
	}
	what := "built"
	if res.Replaced {
		what = "replaced"
		if res.InPlace {
			what = "wrote over (in place)"
		}
	}
	fmt.Fprintf(stdout, "%s %s: %s squashfs in a %s image (features: layering)\n", what, res.Ref,
		image.FormatBytes(res.SquashfsSize), image.FormatBytes(int64(res.ImageSize)))
	if res.SHA256 != "" {
		fmt.Fprintf(stdout, "sha256 %s\n", res.SHA256)
	}
	if res.Verified {
		fmt.Fprintf(stdout, "verified: read back, size and CRC-32C of every chunk match\n")
	} else {
		fmt.Fprintf(stdout, "not verified (--no-verify)\n")
	}
	fmt.Fprintf(stdout, "squashfs %s, upload %s (%s), verify %s\n", res.Squashfs.Round(time.Millisecond),
		res.Upload.Round(time.Millisecond), image.FormatRate(res.SquashfsSize, res.Upload), res.Verify.Round(time.Millisecond))
	if res.Ref.Snapshot != "" {
		prot := ""
		if res.Protected {
			prot = ", protected"
		}
		fmt.Fprintf(stdout, "nodes map it read-only as %s (snapshot%s)\n", res.Ref, prot)
	}
	return nil
}

type buildOut struct {
	Pool         string  `json:"pool"`
	Namespace    string  `json:"namespace,omitempty"`
	Image        string  `json:"image"`
	Snapshot     string  `json:"snapshot,omitempty"`
	Protected    bool    `json:"protected,omitempty"`
	ImageSize    uint64  `json:"image_size"`
	SquashfsSize int64   `json:"squashfs_size"`
	SHA256       string  `json:"sha256,omitempty"`
	Verified     bool    `json:"verified"`
	Replaced     bool    `json:"replaced,omitempty"`
	InPlace      bool    `json:"in_place,omitempty"`
	SquashfsSec  float64 `json:"squashfs_seconds"`
	UploadSec    float64 `json:"upload_seconds"`
	VerifySec    float64 `json:"verify_seconds"`
	UploadBps    float64 `json:"upload_bytes_per_second"`
}

func buildJSON(r *image.BuildResult) buildOut {
	return buildOut{
		Pool: r.Ref.Pool, Namespace: r.Ref.Namespace, Image: r.Ref.Image, Snapshot: r.Ref.Snapshot,
		Protected: r.Protected, ImageSize: r.ImageSize, SquashfsSize: r.SquashfsSize, SHA256: r.SHA256, Verified: r.Verified,
		Replaced: r.Replaced, InPlace: r.InPlace, SquashfsSec: r.Squashfs.Seconds(),
		UploadSec: r.Upload.Seconds(), VerifySec: r.Verify.Seconds(), UploadBps: r.Throughput(),
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func list(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ls", stderr)
	var c connFlags
	c.add(fs)
	var pool, ns string
	var asJSON bool
	fs.StringVar(&pool, "pool", "", "pool")
	fs.StringVar(&ns, "namespace", "", "namespace")
	fs.BoolVar(&asJSON, "json", false, "JSON output")
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(stderr, "ls", err)
	}
	r := image.Ref{Pool: pool, Namespace: ns}
	switch len(pos) {
	case 0:
	case 1:
		if pool != "" {
			return usageError(stderr, "ls", "pool given twice")
		}
		parts := strings.Split(pos[0], "/")
		if len(parts) > 2 || parts[0] == "" {
			return usageError(stderr, "ls", "want POOL or POOL/NAMESPACE, got %q", pos[0])
		}
		r.Pool = parts[0]
		if len(parts) == 2 {
			r.Namespace = parts[1]
		}
	default:
		return usageError(stderr, "ls", "one pool, please")
	}
	if r.Pool == "" {
		r.Pool = "rbd"
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	imgs, err := conn.List(r)
	if err != nil {
		return err
	}
	if asJSON {
		names := make([]string, 0, len(imgs))
		for _, i := range imgs {
			names = append(names, i.Name)
		}
		return printJSON(stdout, names)
	}
	for _, i := range imgs {
		fmt.Fprintln(stdout, i.Name)
	}
	return nil
}

func info(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("info", stderr)
	var c connFlags
	c.add(fs)
	var pool, ns, img, snap string
	var asJSON bool
	fs.StringVar(&pool, "pool", "", "pool")
	fs.StringVar(&ns, "namespace", "", "namespace")
	fs.StringVar(&img, "image", "", "image")
	fs.StringVar(&snap, "snapshot", "", "snapshot")
	fs.BoolVar(&asJSON, "json", false, "JSON output")
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(stderr, "info", err)
	}
	r, err := ref(pos, pool, ns, img, snap)
	if err != nil {
		return usageError(stderr, "info", "%v", err)
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	in, err := conn.Info(r)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, infoJSON(in))
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "image:\t%s\n", in.Ref)
	fmt.Fprintf(tw, "id:\t%s\n", in.ID)
	fmt.Fprintf(tw, "size:\t%s (%d bytes, %s objects)\n", image.FormatBytes(int64(in.Size)), in.Size, image.FormatBytes(int64(in.ObjectSize)))
	fmt.Fprintf(tw, "features:\t%s\n", strings.Join(in.Features, ", "))
	if in.Squashfs != nil {
		sb := in.Squashfs
		fmt.Fprintf(tw, "squashfs:\tyes, %d.%d, %s, %s used, %d inodes, block %s, made %s\n",
			sb.Major, sb.Minor, sb.Compression, image.FormatBytes(int64(sb.BytesUsed)), sb.Inodes,
			image.FormatBytes(int64(sb.BlockSize)), sb.ModTime.Format(time.RFC3339))
	} else {
		fmt.Fprintf(tw, "squashfs:\tno (%s)\n", in.NotSquashfs)
	}
	if len(in.Snapshots) == 0 {
		fmt.Fprintf(tw, "snapshots:\tnone\n")
	}
	for i, s := range in.Snapshots {
		label := ""
		if i == 0 {
			label = "snapshots:"
		}
		prot := ""
		if s.Protected {
			prot = ", protected"
		}
		fmt.Fprintf(tw, "%s\t%s (id %d, %s%s)\n", label, s.Name, s.ID, image.FormatBytes(int64(s.Size)), prot)
	}
	if len(in.Watchers) == 0 {
		fmt.Fprintf(tw, "watchers:\tnone\n")
	}
	for i, w := range in.Watchers {
		label := ""
		if i == 0 {
			label = "watchers:"
		}
		fmt.Fprintf(tw, "%s\t%s (client.%d, cookie %d)\n", label, w.Address, w.ID, w.Cookie)
	}
	return tw.Flush()
}

type infoOut struct {
	Pool        string            `json:"pool"`
	Namespace   string            `json:"namespace,omitempty"`
	Image       string            `json:"image"`
	Snapshot    string            `json:"snapshot,omitempty"`
	ID          string            `json:"id"`
	Size        uint64            `json:"size"`
	ObjectSize  uint64            `json:"object_size"`
	Features    []string          `json:"features"`
	Snapshots   []snapOut         `json:"snapshots"`
	Watchers    []image.Watcher   `json:"watchers"`
	Squashfs    *image.Superblock `json:"squashfs"`
	NotSquashfs string            `json:"not_squashfs,omitempty"`
}

type snapOut struct {
	ID        uint64 `json:"id"`
	Name      string `json:"name"`
	Size      uint64 `json:"size"`
	Protected bool   `json:"protected"`
}

func infoJSON(in *image.ImageInfo) infoOut {
	o := infoOut{Pool: in.Ref.Pool, Namespace: in.Ref.Namespace, Image: in.Ref.Image, Snapshot: in.Ref.Snapshot,
		ID: in.ID, Size: in.Size, ObjectSize: in.ObjectSize, Features: in.Features, Watchers: in.Watchers,
		Squashfs: in.Squashfs, NotSquashfs: in.NotSquashfs, Snapshots: []snapOut{}}
	if o.Watchers == nil {
		o.Watchers = []image.Watcher{}
	}
	for _, s := range in.Snapshots {
		o.Snapshots = append(o.Snapshots, snapOut{ID: s.ID, Name: s.Name, Size: s.Size, Protected: s.Protected})
	}
	return o
}

func remove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rm", stderr)
	var c connFlags
	c.add(fs)
	var pool, ns, img string
	var force bool
	fs.StringVar(&pool, "pool", "", "pool")
	fs.StringVar(&ns, "namespace", "", "namespace")
	fs.StringVar(&img, "image", "", "image")
	fs.BoolVar(&force, "force", false, "also remove snapshots")
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(stderr, "rm", err)
	}
	r, err := ref(pos, pool, ns, img, "")
	if err != nil {
		return usageError(stderr, "rm", "%v", err)
	}
	if r.Snapshot != "" {
		return usageError(stderr, "rm", "removes whole images, not snapshots (%s)", r)
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Remove(r, force); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %s\n", r)
	return nil
}
