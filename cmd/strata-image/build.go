package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-project/strata/image"
	"github.com/strata-project/strata/internal/verity"
)

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

// buildArgs are build's flags and its source.
type buildArgs struct {
	c                                                                                  connFlags
	src, pool, ns, img, snap, size, comp, tmp, keep, progress, output, plat            string
	protect, force, noI, noX, noXattrs, allRoot, noVerify, asJSON, digest, def, verity bool
	noVerity                                                                           bool
	inFlight                                                                           int
	chunk                                                                              string
	extra                                                                              listFlag
	fsType, erofsComp, objSize, stripeUnit                                             string
	erofsExtra                                                                         listFlag
	stripeCount                                                                        uint64
	set                                                                                *flag.FlagSet // to tell which flags were given

	signKey, signCert string // --sign-key, --sign-cert: sign the verity root hash
}

func (a *buildArgs) flags(fs *flag.FlagSet) {
	a.set = fs
	a.c.add(fs)
	fs.StringVar(&a.pool, "pool", "", "pool")
	fs.StringVar(&a.ns, "namespace", "", "namespace")
	fs.StringVar(&a.img, "image", "", "image")
	fs.StringVar(&a.snap, "snapshot", "", "snapshot to make")
	fs.BoolVar(&a.protect, "protect", false, "protect the snapshot")
	fs.StringVar(&a.size, "size", "auto", "image size")
	fs.StringVar(&a.objSize, "object-size", "4M", "RBD object size")
	fs.StringVar(&a.stripeUnit, "stripe-unit", "", "RBD stripe unit (default: the object size)")
	fs.Uint64Var(&a.stripeCount, "stripe-count", 1, "objects a stripe spans")
	fs.StringVar(&a.fsType, "fs", image.FSSquashfs, "file system: squashfs or erofs")
	fs.StringVar(&a.comp, "compressor", image.DefaultCompressor, "squashfs compressor")
	fs.StringVar(&a.erofsComp, "erofs-compress", image.DefaultErofsCompressor, "erofs compressor: lz4hc[,LEVEL], lz4 or none")
	fs.Var(&a.erofsExtra, "mkfs-erofs-arg", "extra mkfs.erofs argument")
	fs.BoolVar(&a.force, "force", false, "replace an existing image")
	fs.BoolVar(&a.noI, "no-compress-inodes", false, "mksquashfs -noI")
	fs.BoolVar(&a.noX, "no-compress-xattrs", false, "mksquashfs -noX")
	fs.BoolVar(&a.noXattrs, "no-xattrs", false, "mksquashfs -no-xattrs")
	fs.BoolVar(&a.allRoot, "all-root", false, "mksquashfs -all-root")
	fs.Var(&a.extra, "mksquashfs-arg", "extra mksquashfs argument")
	fs.StringVar(&a.tmp, "tmpdir", "", "temporary directory")
	fs.StringVar(&a.keep, "keep-squashfs", "", "keep the squashfs file here")
	fs.IntVar(&a.inFlight, "in-flight", 8, "writes in flight")
	fs.StringVar(&a.chunk, "chunk-size", "4M", "bytes per write")
	fs.BoolVar(&a.noVerify, "no-verify", false, "skip the read-back")
	fs.BoolVar(&a.digest, "sha256", false, "print the squashfs's SHA-256")
	fs.StringVar(&a.progress, "progress", "auto", "auto|bar|lines|none")
	fs.BoolVar(&a.asJSON, "json", false, "print the result as JSON")
	fs.StringVar(&a.output, "output", "", "make a squashfs file, no RBD image")
	fs.StringVar(&a.signKey, "sign-key", "", "PEM private key that signs the verity root hash")
	fs.StringVar(&a.signCert, "sign-cert", "", "PEM certificate (chain) of --sign-key")
	fs.StringVar(&a.plat, "platform", "", "OS/ARCH of an OCI image")
	fs.BoolVar(&a.def, "print-definition", false, "print a definition for the image")
	fs.BoolVar(&a.verity, "verity", true, "append the dm-verity hash tree (the default; --verity=false as --no-verity)")
	fs.BoolVar(&a.noVerity, "no-verity", false, "no dm-verity hash tree")
}

// given reports whether the command line set flag name (not its default).
func (a *buildArgs) given(name string) bool {
	set := false
	a.set.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func build(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("build", stderr)
	var a buildArgs
	a.flags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(stderr, "build", err)
	}
	if len(pos) != 1 {
		return usageError(stderr, "build", "want one DIR, TARBALL, SQUASHFS file or OCI image, got %d arguments", len(pos))
	}
	a.src = pos[0]
	opts, r, err := a.options(stderr)
	if err != nil {
		return err
	}
	if a.def && a.asJSON {
		return usageError(stderr, "build", "--print-definition and --json both want stdout: choose one")
	}
	if a.output != "" {
		res, err := image.BuildFile(ctx, a.src, a.output, opts)
		if err != nil {
			return err
		}
		return a.report(stdout, stderr, res, loopLower(absPath(a.output)))
	}
	conn, err := a.c.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := conn.Build(ctx, a.src, r, opts)
	if err != nil {
		return err
	}
	return a.report(stdout, stderr, res, rbdLower(res.Ref, monitors(a.c.mons, conn.MonHost())))
}

// options checks the flags (usage errors) and the source.
func (a *buildArgs) options(stderr io.Writer) (image.BuildOptions, image.Ref, error) {
	var o image.BuildOptions
	fail := func(format string, v ...any) (image.BuildOptions, image.Ref, error) {
		return o, image.Ref{}, usageError(stderr, "build", format, v...)
	}
	r := image.Ref{Pool: a.pool, Namespace: a.ns, Image: a.img}
	switch {
	case a.output != "" && (a.pool != "" || a.img != "" || a.snap != ""):
		return fail("--output makes a file: --pool, --image and --snapshot are for an RBD image")
	case a.output == "" && (a.pool == "" || a.img == ""):
		return fail("--pool and --image are required (or --output FILE for a squashfs file)")
	case a.protect && a.snap == "":
		return fail("--protect needs --snapshot")
	case a.noVerity && a.given("verity") && a.verity:
		return fail("--verity and --no-verity: choose one (--verity is the default)")
	}
	if a.output == "" {
		if err := r.Validate(); err != nil {
			return fail("%v", err)
		}
	}
	sz, err := image.ParseSize(a.size)
	if err != nil {
		return fail("--size: %v", err)
	}
	layout, err := objectLayout(a.objSize, a.stripeUnit, a.stripeCount)
	if err != nil {
		return fail("%v", err)
	}
	ch, err := image.ParseSize(a.chunk)
	if err != nil || ch == 0 || ch > 64<<20 {
		return fail("--chunk-size %q: want 4K to 64M", a.chunk)
	}
	if a.inFlight < 1 || a.inFlight > 64 {
		return fail("--in-flight %d: want 1 to 64", a.inFlight)
	}
	sq := image.SquashfsOptions{Compressor: a.comp, NoCompressInodes: a.noI, NoCompressXattrs: a.noX,
		NoXattrs: a.noXattrs, AllRoot: a.allRoot, ExtraArgs: a.extra}
	ero := image.ErofsOptions{Compressor: a.erofsComp, NoXattrs: a.noXattrs, AllRoot: a.allRoot, ExtraArgs: a.erofsExtra}
	if err := checkFSFlags(a.set, a.fsType, sq, ero); err != nil {
		return fail("%v", err)
	}
	// Progress goes to stderr: stdout carries the result.
	p, err := progressFor(a.progress, stderr)
	if err != nil {
		return fail("%v", err)
	}
	plat := image.HostPlatform()
	if a.plat != "" {
		if plat, err = image.ParsePlatform(a.plat); err != nil {
			return fail("%v", err)
		}
	}
	_, isOCI, err := image.ParseOCIRef(a.src)
	if err != nil {
		return fail("%v", err)
	}
	if a.def && !isOCI {
		return fail("--print-definition reads an OCI image's configuration: give oci:, oci-archive:, docker-archive: or docker://")
	}
	if !isOCI {
		if _, err := image.Source(a.src); err != nil {
			return o, r, err
		}
	}
	o = image.BuildOptions{
		FS: a.fsType, Squashfs: sq, Erofs: ero, Layout: layout, Size: sz, Snapshot: a.snap, Protect: a.protect, Force: a.force,
		TempDir: a.tmp, KeepSquashfs: a.keep, Progress: p, Platform: plat, Verity: a.verity && !a.noVerity,
		Write: image.WriteOptions{ChunkSize: int(ch), InFlight: a.inFlight, NoVerify: a.noVerify, SHA256: a.digest},
	}
	switch {
	case a.signKey == "" && a.signCert == "":
	case a.signKey == "" || a.signCert == "":
		return fail("--sign-key and --sign-cert go together: the key and its certificate")
	case !o.Verity:
		return fail("--sign-key signs the verity root hash: a build without the hash tree has none to sign")
	default:
		o.Sign, err = verity.LoadSigner(a.signKey, a.signCert)
	}
	return o, r, err
}

// report prints the result: the summary on stdout, or on stderr when
// stdout carries the definition.
func (a *buildArgs) report(stdout, stderr io.Writer, res *image.BuildResult, lower any) error {
	if a.asJSON {
		return printJSON(stdout, buildJSON(res, a.output))
	}
	out := stdout
	if a.def {
		out = stderr
	}
	if a.output != "" {
		printFile(out, a.output, res)
	} else {
		printUpload(out, res)
	}
	printSigner(out, res.Verity)
	if o := res.OCI; o != nil {
		fmt.Fprintf(out, "from %s\ndigest %s (%s)\n", o.Source, o.Digest, o.Platform)
		if o.Systemd {
			fmt.Fprintf(out, "the image holds systemd: it boots (\"systemd\": true)\n")
		} else {
			fmt.Fprintf(out, "the image holds no systemd: it runs its Entrypoint/Cmd as a plain command (--print-definition writes the definition)\n")
		}
		fmt.Fprintf(out, "flatten %s (%s, %s)", res.Flatten.Round(time.Millisecond), image.FormatBytes(o.FlatSize), image.FormatRate(o.FlatSize, res.Flatten))
		fmt.Fprintf(out, ", squashfs %s\n", res.Squashfs.Round(time.Millisecond))
	}
	if !a.def {
		return nil
	}
	name := containerName(a)
	def, problems, err := printDefinition(name, res.OCI, lower, res.Verity)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "%s\n", p)
	}
	fmt.Fprintf(stderr, "definition for /etc/strata/%s.json:\n", name)
	_, err = stdout.Write(def)
	return err
}

func printFile(out io.Writer, file string, res *image.BuildResult) {
	fmt.Fprintf(out, "built %s: %s %s, %s in all\n", file, image.FormatBytes(res.SquashfsSize), res.FS, image.FormatBytes(res.FileSize))
	if v := res.Verity; v != nil {
		fmt.Fprintf(out, "verity: root hash %s (hash tree at %d, %s)\n", v.RootHashHex(), v.HashOffset, res.Hash.Round(time.Millisecond))
	}
}

func printUpload(out io.Writer, res *image.BuildResult) {
	what := "built"
	if res.Replaced {
		what = "replaced"
		if res.InPlace {
			what = "wrote over (in place)"
		}
	}
	fmt.Fprintf(out, "%s %s: %s %s in a %s image (features: layering)\n", what, res.Ref,
		image.FormatBytes(res.SquashfsSize), res.FS, image.FormatBytes(int64(res.ImageSize)))
	if res.SHA256 != "" {
		fmt.Fprintf(out, "sha256 %s\n", res.SHA256)
	}
	fmt.Fprintf(out, "layout: %s\n", res.Layout)
	if res.Layout.Fancy() {
		fmt.Fprintf(out, "striped: nodes need Linux %s or later to map it (krbd)\n", image.FancyStripingKernel)
	}
	if v := res.Verity; v != nil {
		fmt.Fprintf(out, "verity: root hash %s (hash tree at %d, trailer in the last 4 KiB)\n", v.RootHashHex(), v.HashOffset)
	}
	if res.Verified {
		fmt.Fprintf(out, "verified: read back, %s match\n", image.ReadBack)
	} else {
		fmt.Fprintf(out, "not verified (--no-verify)\n")
	}
	fmt.Fprintf(out, "%s %s, upload %s (%s), verify %s\n", res.FS, res.Squashfs.Round(time.Millisecond),
		res.Upload.Round(time.Millisecond), image.FormatRate(res.SquashfsSize, res.Upload), res.Verify.Round(time.Millisecond))
	if res.Ref.Snapshot != "" {
		prot := ""
		if res.Protected {
			prot = ", protected"
		}
		fmt.Fprintf(out, "nodes map it read-only as %s (snapshot%s)\n", res.Ref, prot)
	}
}

// containerName names the definition after the image or the file.
func containerName(a *buildArgs) string {
	n := a.img
	if a.output != "" {
		n = strings.TrimSuffix(filepath.Base(a.output), filepath.Ext(a.output))
	}
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, n)
	if n == "" {
		return "container"
	}
	return n
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// monitors for a definition: the --mon flags, else the conf's mon_host,
// one address per monitor as the kernel takes it.
func monitors(flags []string, monHost string) []string {
	src := flags
	if len(src) == 0 {
		src = splitMonHost(monHost)
	}
	var out []string
	for _, m := range src {
		out = append(out, kernelMon(m))
	}
	return out
}

// splitMonHost splits mon_host at blanks and at commas outside brackets.
func splitMonHost(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s + " " {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0 && (r == ' ' || r == ','):
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// kernelMon picks one address of a monitor's [v2:...,v1:...] vector: the
// msgr1 one, which the kernel speaks unless ms_mode says otherwise.
func kernelMon(m string) string {
	inner, ok := strings.CutPrefix(m, "[")
	if !ok {
		return m
	}
	addrs := strings.Split(strings.TrimSuffix(inner, "]"), ",")
	for _, a := range addrs {
		if strings.HasPrefix(a, "v1:") {
			return a
		}
	}
	return addrs[0]
}

type buildOut struct {
	Pool         string     `json:"pool"`
	Namespace    string     `json:"namespace,omitempty"`
	Image        string     `json:"image"`
	Snapshot     string     `json:"snapshot,omitempty"`
	FS           string     `json:"fs"`
	Protected    bool       `json:"protected,omitempty"`
	ImageSize    uint64     `json:"image_size"`
	SquashfsSize int64      `json:"squashfs_size"`
	ObjectSize   uint64     `json:"object_size"`
	StripeUnit   uint64     `json:"stripe_unit"`
	StripeCount  uint64     `json:"stripe_count"`
	SHA256       string     `json:"sha256,omitempty"`
	Verified     bool       `json:"verified"`
	Output       string     `json:"output,omitempty"`
	OCISource    string     `json:"oci_source,omitempty"`
	OCIDigest    string     `json:"oci_digest,omitempty"`
	OCIPlatform  string     `json:"oci_platform,omitempty"`
	Systemd      *bool      `json:"systemd,omitempty"`
	FlattenSec   float64    `json:"flatten_seconds,omitempty"`
	FlatSize     int64      `json:"flat_size,omitempty"`
	Replaced     bool       `json:"replaced,omitempty"`
	InPlace      bool       `json:"in_place,omitempty"`
	SquashfsSec  float64    `json:"squashfs_seconds"`
	UploadSec    float64    `json:"upload_seconds"`
	VerifySec    float64    `json:"verify_seconds"`
	UploadBps    float64    `json:"upload_bytes_per_second"`
	FileSize     int64      `json:"file_size,omitempty"`
	Verity       *verityOut `json:"verity,omitempty"`
}

func buildJSON(r *image.BuildResult, output string) buildOut {
	o := buildOut{
		FS: r.FS, ObjectSize: r.Layout.Bytes(), StripeUnit: r.Layout.Unit(), StripeCount: r.Layout.Count(), Pool: r.Ref.Pool, Namespace: r.Ref.Namespace, Image: r.Ref.Image, Snapshot: r.Ref.Snapshot,
		Protected: r.Protected, ImageSize: r.ImageSize, SquashfsSize: r.SquashfsSize, SHA256: r.SHA256, Verified: r.Verified,
		Replaced: r.Replaced, InPlace: r.InPlace, SquashfsSec: r.Squashfs.Seconds(),
		UploadSec: r.Upload.Seconds(), VerifySec: r.Verify.Seconds(), UploadBps: r.Throughput(),
		Output: output, FlattenSec: r.Flatten.Seconds(), FileSize: r.FileSize, Verity: verityJSON(r.Verity),
	}
	if oci := r.OCI; oci != nil {
		o.OCISource, o.OCIDigest, o.OCIPlatform, o.FlatSize = oci.Source, oci.Digest, oci.Platform, oci.FlatSize
		o.Systemd = &oci.Systemd
	}
	return o
}

// checkFSFlags refuses options of the file system not being made, so that
// --fs erofs --compressor xz does not silently ignore the compressor.
func checkFSFlags(fs *flag.FlagSet, fsType string, sq image.SquashfsOptions, ero image.ErofsOptions) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	only := map[string][]string{
		image.FSSquashfs: {"erofs-compress", "mkfs-erofs-arg"},
		image.FSErofs:    {"compressor", "no-compress-inodes", "no-compress-xattrs", "mksquashfs-arg"},
	}
	others, ok := only[fsType]
	if !ok {
		return fmt.Errorf("--fs %q: want %s", fsType, strings.Join(image.FileSystems, " or "))
	}
	for _, o := range others {
		if set[o] {
			return fmt.Errorf("--%s is not an option of --fs %s", o, fsType)
		}
	}
	if fsType == image.FSErofs {
		if err := ero.Validate(); err != nil {
			return fmt.Errorf("--erofs-compress: %v", err)
		}
		return nil
	}
	if err := sq.Validate(); err != nil {
		return fmt.Errorf("--compressor: %v", err)
	}
	return nil
}

// objectLayout reads --object-size, --stripe-unit and --stripe-count.
func objectLayout(objSize, unit string, count uint64) (image.ObjectLayout, error) {
	var l image.ObjectLayout
	var err error
	if l.ObjectSize, err = image.ParseSize(objSize); err != nil || l.ObjectSize == 0 {
		return l, fmt.Errorf("--object-size %q: want a power of two from 4K to 32M", objSize)
	}
	if unit != "" {
		if l.StripeUnit, err = image.ParseSize(unit); err != nil || l.StripeUnit == 0 {
			return l, fmt.Errorf("--stripe-unit %q: want a power of two from 4K up to the object size", unit)
		}
	}
	if count == 0 {
		return l, fmt.Errorf("--stripe-count 0: want 1 or more")
	}
	l.StripeCount = count
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("object layout: %v", err)
	}
	return l, nil
}

// verityOut is how build --json and info --json show verity parameters.
type verityOut struct {
	RootHash   string `json:"root_hash"`
	Salt       string `json:"salt"`
	DataBlocks uint64 `json:"data_blocks"`
	HashOffset uint64 `json:"hash_offset"`
	Algorithm  string `json:"hash_algorithm"`
	BlockSize  int    `json:"block_size"`

	Signer          *verity.SignerInfo `json:"signer,omitempty"`           // who signed the root hash, as the signature says
	SignatureOffset uint64             `json:"signature_offset,omitempty"` // where the signature is stored
	SignatureError  string             `json:"signature_error,omitempty"`  // why the signature names no signer
}

func verityJSON(v *verity.Params) *verityOut {
	if v == nil {
		return nil
	}
	o := &verityOut{RootHash: v.RootHashHex(), Salt: hex.EncodeToString(v.Salt), DataBlocks: v.DataBlocks,
		HashOffset: v.HashOffset, Algorithm: verity.Algorithm, BlockSize: verity.BlockSize}
	if len(v.Signature) > 0 {
		o.SignatureOffset = v.SignatureOffset
		var err error
		if o.Signer, err = verity.Signed(v.Signature); err != nil {
			o.SignatureError = err.Error()
		}
	}
	return o
}

// signerLine says who signed the root hash: the certificate's subject
// and SHA-256 fingerprint (what an admin compares with the trust store's
// `openssl x509 -fingerprint -sha256`), "" for an unsigned image. The
// signature is not checked here: nodes check it against their trust store.
func signerLine(v *verity.Params) string {
	if v == nil || len(v.Signature) == 0 {
		return ""
	}
	s, err := verity.Signed(v.Signature)
	if err != nil {
		return fmt.Sprintf("a signature of %d bytes at %d: %v", len(v.Signature), v.SignatureOffset, err)
	}
	return fmt.Sprintf("%s (sha256 fingerprint %s, issuer %s, valid until %s)", s.Subject, s.SHA256, s.Issuer, s.NotAfter)
}

// printSigner adds the signer to a build's summary.
func printSigner(out io.Writer, v *verity.Params) {
	if l := signerLine(v); l != "" {
		fmt.Fprintf(out, "signed by: %s\n", l)
	}
}
