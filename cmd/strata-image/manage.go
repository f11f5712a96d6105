package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-project/strata/image"
	"github.com/strata-project/strata/internal/verity"
)

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
	var file string
	fs.StringVar(&file, "file", "", "an image file (or block device) instead of an RBD image")
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(stderr, "info", err)
	}
	if file != "" {
		if len(pos) > 0 || pool != "" || img != "" {
			return usageError(stderr, "info", "--file or an RBD image, not both")
		}
		return fileInfo(file, asJSON, stdout)
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
	} else if sb := in.Erofs; sb != nil {
		fmt.Fprintf(tw, "erofs:\tyes, %s used, %d inodes, compressed %v, block %s, made %s\n",
			image.FormatBytes(int64(sb.Bytes())), sb.Inodes, sb.Compressed,
			image.FormatBytes(int64(sb.BlockSize)), sb.BuildTime.Format(time.RFC3339))
	} else {
		fmt.Fprintf(tw, "squashfs:\tno (%s)\n", in.NotSquashfs)
	}
	if src, ok := in.Metadata[image.MetaOCISource]; ok {
		fmt.Fprintf(tw, "built from:\t%s\n", src)
		fmt.Fprintf(tw, "oci digest:\t%s (%s)\n", in.Metadata[image.MetaOCIDigest], in.Metadata[image.MetaOCIPlatform])
	}
	if v := in.Verity; v != nil {
		fmt.Fprintf(tw, "verity:\troot hash %s, %d data blocks, hash tree at %d\n", v.RootHashHex(), v.DataBlocks, v.HashOffset)
		if l := signerLine(v); l != "" {
			fmt.Fprintf(tw, "signed by:\t%s\n", l)
		}
	} else {
		fmt.Fprintf(tw, "verity:\tno (%s)\n", in.NoVerity)
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
	Pool        string                 `json:"pool"`
	Namespace   string                 `json:"namespace,omitempty"`
	Image       string                 `json:"image"`
	Snapshot    string                 `json:"snapshot,omitempty"`
	ID          string                 `json:"id"`
	Size        uint64                 `json:"size"`
	ObjectSize  uint64                 `json:"object_size"`
	Features    []string               `json:"features"`
	Snapshots   []snapOut              `json:"snapshots"`
	Watchers    []image.Watcher        `json:"watchers"`
	Squashfs    *image.Superblock      `json:"squashfs"`
	NotSquashfs string                 `json:"not_squashfs,omitempty"`
	Erofs       *image.ErofsSuperblock `json:"erofs,omitempty"`
	Metadata    map[string]string      `json:"metadata,omitempty"`
	Verity      *verityOut             `json:"verity,omitempty"`
	NoVerity    string                 `json:"no_verity,omitempty"`
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
		Squashfs: in.Squashfs, NotSquashfs: in.NotSquashfs, Erofs: in.Erofs, Snapshots: []snapOut{}, Metadata: in.Metadata,
		Verity: verityJSON(in.Verity), NoVerity: in.NoVerity}
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

// fileInfo shows the verity parameters of an image file from its trailer.
func fileInfo(file string, asJSON bool, stdout io.Writer) error {
	v, err := image.ReadVerity(file)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, struct {
			File   string     `json:"file"`
			Verity *verityOut `json:"verity"`
		}{file, verityJSON(v)})
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "file:\t%s\n", file)
	fmt.Fprintf(tw, "verity:\tformat %d, %s, %d-byte blocks\n", verity.HashType, verity.Algorithm, verity.BlockSize)
	fmt.Fprintf(tw, "root hash:\t%s\n", v.RootHashHex())
	fmt.Fprintf(tw, "salt:\t%s\n", hex.EncodeToString(v.Salt))
	fmt.Fprintf(tw, "data:\t%d blocks (%s)\n", v.DataBlocks, image.FormatBytes(int64(v.DataBlocks*verity.BlockSize)))
	fmt.Fprintf(tw, "hash tree:\tat %d\n", v.HashOffset)
	if l := signerLine(v); l != "" {
		fmt.Fprintf(tw, "signed by:\t%s\n", l)
	}
	return tw.Flush()
}
