// Command strata-image builds squashfs images into Ceph RBD images and
// manages them: the admin side of Strata's RBD scheme. It links librados and
// librbd (go-ceph, cgo, built with -tags pacific for Ceph 16.2), so it is a
// binary of its own: nodes, the generator and strata-helper need no Ceph
// libraries. `strata image ...` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/strata-project/strata/image"
	"github.com/strata-project/strata/internal/layout"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `usage: strata-image COMMAND [ARGS]

Commands:
  build SOURCE --pool P --image I [--namespace N] [--snapshot S] [--protect]
        [--size auto|N] [--fs squashfs|erofs] [--compressor zstd|xz|gzip]
        [--erofs-compress lz4hc[,LEVEL]|lz4|none] [--no-verity] [--force] [--json]
  build SOURCE --output FILE [--no-verity] [--force] [--json]
      make a squashfs (or erofs) of SOURCE, write it into a new RBD image
      that many nodes can map read-only (feature layering only), read it
      back to verify it, and optionally snapshot (and protect) it; with
      --output, make an image file for the loopback and nfs-loopback
      schemes instead.
      By default the build computes the dm-verity hash tree, stores it
      after the file system and a trailer with its parameters in the last
      4 KiB (for RBD, metadata strata.verity too), and prints the root
      hash for definitions to pin as verity.root_hash (--print-definition
      pins it); --no-verity makes an image without them.
      SOURCE is a directory, a tar archive (plain, gzip, bzip2, xz, zstd),
      a squashfs or erofs file made before (written as it is), or an OCI
      image:
        oci:DIR[:TAG|@DIGEST]    an OCI image layout
        oci-archive:FILE[:TAG]   an OCI layout in a tar file
        docker-archive:FILE[:REPO:TAG]   what docker save writes
        docker://HOST/REPO:TAG|@DIGEST   a registry (credentials from
          ~/.docker/config.json, $REGISTRY_AUTH_FILE or
          ${XDG_RUNTIME_DIR}/containers/auth.json)
      whose layers are flattened (run as root: owners and devices are
      kept); its digest is printed and kept in the RBD image's metadata
      --sign-key KEY.pem --sign-cert CERT.pem (with --verity) signs the
      root hash as systemd's RootHashSignature= wants it (PKCS#7, DER,
      over the hex root hash) and stores the signature in the image; nodes
      check it against /etc/strata/trust (docs/schemes/verity.md).
  ls [--pool P] [--namespace N] [--json] [POOL[/NAMESPACE]]
      the images of a pool (default pool: rbd)
  info [--json] POOL/[NAMESPACE/]IMAGE[@SNAPSHOT]
      size, features, snapshots, watchers, and whether it holds a squashfs
  info [--json] --file FILE
      the verity parameters (root hash, salt, sizes) from an image file's
      trailer
      (both: the signer of a signed root hash, subject and fingerprint)
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
  --fs erofs            make an erofs with mkfs.erofs (erofs-utils) instead;
                        a tarball is unpacked first (as root, to keep owners)
  --erofs-compress C    lz4hc (default; lz4hc,1 to lz4hc,12), lz4 or none
  --mkfs-erofs-arg ARG  one more mkfs.erofs argument (repeatable)
                        (--no-xattrs and --all-root apply to erofs too)
  --object-size N       RBD object size, 4K to 32M (default 4M): smaller
                        objects spread a fleet's boot reads over more OSDs
  --stripe-unit N       stripe unit (default: the object size) } fancy striping:
  --stripe-count N      objects per stripe (default 1)         } Linux 4.17+ nodes
  --tmpdir DIR          where the file system is made (default $TMPDIR or /tmp)
  --keep-squashfs FILE  keep the squashfs (or erofs) file there
  --in-flight N         writes in flight (default 8)
  --chunk-size N        bytes per write (default 4M)
  --no-verify           do not read the image back (it compares the size and
                        each chunk's CRC-32C with what was written)
  --sha256              also compute and print the squashfs's SHA-256
  --progress auto|bar|lines|none
  --platform OS/ARCH[/VARIANT]  which image of an OCI index (default: the
                        host's architecture)
  --sign-key FILE       PEM private key (PKCS#8, RSA or EC) that signs the
                        verity root hash
  --sign-cert FILE      PEM certificate of --sign-key, then any
                        intermediates: stored with the signature
  --print-definition    print a definition (JSON) for the OCI image on
                        stdout: it boots when the image holds systemd,
                        otherwise runs its Entrypoint/Cmd with its Env and
                        WorkingDir (the summary goes to stderr); it pins
                        the root hash unless --no-verity
  --no-verity           no dm-verity hash tree and trailer (by default the
                        build appends them: docs/schemes/verity.md);
                        --verity, the default, is still accepted

--force: build replaces an existing image (written over in place when it
is mapped somewhere: the readers see it change) or --output FILE; rm
removes snapshots.
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
	fs.StringVar(&c.id, "id", layout.DefaultCephUser, "cephx user")
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
