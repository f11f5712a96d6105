package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// OCI sources are named as the containers tools (skopeo, podman) name them.
const (
	TransportOCI           = "oci"            // oci:DIR[:TAG|@DIGEST], an OCI image layout
	TransportOCIArchive    = "oci-archive"    // oci-archive:FILE[:TAG], a layout in a tar file
	TransportDockerArchive = "docker-archive" // docker-archive:FILE[:REPO:TAG], docker save
	TransportDocker        = "docker"         // docker://HOST/REPO:TAG|@DIGEST, a registry
)

// refNameAnnotation names a manifest in an OCI layout's index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// OCIRef is an OCI or Docker image a build reads from.
type OCIRef struct {
	Transport string
	// Path is the layout directory or the archive file; for docker, the
	// registry reference (HOST/REPO:TAG).
	Path string
	// Tag (oci, oci-archive: a ref.name of the layout; docker-archive:
	// REPO:TAG) or Digest (oci: sha256:...) picks one image of several.
	Tag, Digest string
}

func (r OCIRef) String() string {
	switch {
	case r.Transport == TransportDocker:
		return "docker://" + r.Path
	case r.Digest != "":
		return r.Transport + ":" + r.Path + "@" + r.Digest
	case r.Tag != "":
		return r.Transport + ":" + r.Path + ":" + r.Tag
	}
	return r.Transport + ":" + r.Path
}

// ParseOCIRef reads a source with a transport prefix. ok is false when s
// has none (a directory, tarball or squashfs file).
func ParseOCIRef(s string) (r OCIRef, ok bool, err error) {
	tr, rest, found := strings.Cut(s, ":")
	if !found {
		return r, false, nil
	}
	r.Transport = tr
	switch tr {
	case TransportDocker:
		if !strings.HasPrefix(rest, "//") || len(rest) == 2 {
			return r, true, fmt.Errorf("%s: want docker://HOST/REPO:TAG", s)
		}
		r.Path = rest[2:]
		if _, err := name.ParseReference(r.Path); err != nil {
			return r, true, fmt.Errorf("%s: %w", s, err)
		}
	case TransportOCI, TransportOCIArchive:
		r.Path, r.Tag, r.Digest = splitLayoutRef(rest)
	case TransportDockerArchive:
		r.Path, r.Tag = splitArchiveRef(rest)
	default:
		return r, false, nil
	}
	if r.Path == "" {
		return r, true, fmt.Errorf("%s: no %s after %q", s, map[bool]string{true: "directory", false: "file"}[tr == TransportOCI], tr+":")
	}
	return r, true, nil
}

// splitLayoutRef splits DIR[:TAG|@DIGEST]; a path that exists as it is
// wins (a directory may have a colon in its name).
func splitLayoutRef(s string) (path, tag, digest string) {
	if _, err := os.Stat(s); err == nil {
		return s, "", ""
	}
	if i := strings.LastIndex(s, "@sha256:"); i >= 0 {
		return s[:i], "", s[i+1:]
	}
	if i := strings.LastIndex(s, ":"); i >= 0 && !strings.Contains(s[i:], "/") {
		return s[:i], s[i+1:], ""
	}
	return s, "", ""
}

// splitArchiveRef splits FILE[:REPO:TAG] at the first colon after which
// the rest is not part of the file's name.
func splitArchiveRef(s string) (path, tag string) {
	if _, err := os.Stat(s); err == nil {
		return s, ""
	}
	if i := strings.Index(s, ":"); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// HostPlatform is the platform built for when none is asked for.
func HostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// ParsePlatform reads OS/ARCH[/VARIANT], e.g. linux/arm64/v8.
func ParsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("--platform %q: want OS/ARCH[/VARIANT], e.g. linux/amd64", s)
	}
	return *p, nil
}

// OCIImage is an image chosen from a source, ready to be flattened.
type OCIImage struct {
	Ref      OCIRef
	Image    v1.Image
	Digest   v1.Hash // of the image's manifest: what nodes can tell a build by
	Platform v1.Platform
	Config   *v1.ConfigFile
	cleanup  func()
}

// Close removes what opening the image unpacked (an oci-archive's layout).
func (o *OCIImage) Close() {
	if o.cleanup != nil {
		o.cleanup()
	}
}

// OpenOCI finds the image r names for the platform: in a layout, an
// archive or a registry (with the credentials of the usual auth files:
// ~/.docker/config.json, $REGISTRY_AUTH_FILE,
// ${XDG_RUNTIME_DIR}/containers/auth.json). tmp holds an oci-archive's
// unpacked layout.
func OpenOCI(ctx context.Context, r OCIRef, platform v1.Platform, tmp string) (*OCIImage, error) {
	o := &OCIImage{Ref: r, Platform: platform}
	var err error
	switch r.Transport {
	case TransportOCI:
		o.Image, err = fromLayout(r.Path, r, platform)
	case TransportOCIArchive:
		o.Image, o.cleanup, err = fromOCIArchive(r, platform, tmp)
	case TransportDockerArchive:
		o.Image, err = fromDockerArchive(r)
	case TransportDocker:
		o.Image, err = fromRegistry(ctx, r, platform)
	default:
		err = fmt.Errorf("unknown transport %q", r.Transport)
	}
	if err == nil {
		err = o.describe()
	}
	if err != nil {
		o.Close()
		return nil, fmt.Errorf("%s: %w", r, err)
	}
	return o, nil
}

// describe reads the digest and configuration and checks the platform
// (an image without an index says its platform only in its config).
func (o *OCIImage) describe() error {
	var err error
	if o.Digest, err = o.Image.Digest(); err != nil {
		return err
	}
	if o.Config, err = o.Image.ConfigFile(); err != nil {
		return fmt.Errorf("reading the image's configuration: %w", err)
	}
	got := v1.Platform{OS: o.Config.OS, Architecture: o.Config.Architecture, Variant: o.Config.Variant}
	if got.OS == "" && got.Architecture == "" {
		return nil // says nothing: taken as asked
	}
	if !got.Satisfies(o.Platform) {
		return fmt.Errorf("the image is for %s, not %s (choose with --platform)", got, o.Platform)
	}
	return nil
}

func fromLayout(dir string, r OCIRef, platform v1.Platform) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("not an OCI image layout (no readable index.json): %w", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	desc, err := pickManifest(idx, r)
	if err != nil {
		return nil, err
	}
	return imageFor(idx, desc, platform)
}

// pickManifest finds the layout's entry for the tag or digest; without
// either, the only entry.
func pickManifest(idx v1.ImageIndex, r OCIRef) (v1.Descriptor, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	var tags []string
	for _, d := range m.Manifests {
		tag := d.Annotations[refNameAnnotation]
		tags = append(tags, tag)
		switch {
		case r.Digest != "" && d.Digest.String() == r.Digest,
			r.Tag != "" && tag == r.Tag,
			r.Tag == "" && r.Digest == "" && len(m.Manifests) == 1:
			return d, nil
		}
	}
	known := "tags: " + strings.Join(nonEmpty(tags), ", ")
	if len(nonEmpty(tags)) == 0 {
		known = "no tags"
	}
	switch {
	case len(m.Manifests) == 0:
		return v1.Descriptor{}, errors.New("the layout holds no image")
	case r.Digest != "":
		return v1.Descriptor{}, fmt.Errorf("no manifest %s in the layout (%d entries, %s)", r.Digest, len(m.Manifests), known)
	case r.Tag != "":
		return v1.Descriptor{}, fmt.Errorf("no tag %q in the layout (%s)", r.Tag, known)
	}
	return v1.Descriptor{}, fmt.Errorf("the layout holds %d images: name one as :TAG or @DIGEST (%s)", len(m.Manifests), known)
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// imageFor is the image desc names, through nested indexes by platform.
func imageFor(idx v1.ImageIndex, desc v1.Descriptor, platform v1.Platform) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		return idx.Image(desc.Digest)
	}
	child, err := idx.ImageIndex(desc.Digest)
	if err != nil {
		return nil, err
	}
	m, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	var have []string
	for _, d := range m.Manifests {
		if d.Platform == nil {
			continue
		}
		if d.Platform.Satisfies(platform) {
			return imageFor(child, d, platform)
		}
		have = append(have, d.Platform.String())
	}
	return nil, fmt.Errorf("no image for %s (the index has %s; choose with --platform)", platform, strings.Join(have, ", "))
}

func fromOCIArchive(r OCIRef, platform v1.Platform, tmp string) (v1.Image, func(), error) {
	dir, err := os.MkdirTemp(tmp, "strata-oci-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := untarLayout(r.Path, dir); err != nil {
		cleanup()
		return nil, nil, err
	}
	img, err := fromLayout(dir, r, platform)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return img, cleanup, nil
}

func fromDockerArchive(r OCIRef) (v1.Image, error) {
	var tag *name.Tag
	if r.Tag != "" {
		t, err := name.NewTag(r.Tag)
		if err != nil {
			return nil, err
		}
		tag = &t
	}
	return tarball.ImageFromPath(r.Path, tag)
}

func fromRegistry(ctx context.Context, r OCIRef, platform v1.Platform) (v1.Image, error) {
	ref, err := name.ParseReference(r.Path)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithPlatform(platform),
		remote.WithAuthFromKeychain(authn.DefaultKeychain))
	return img, registryError(ref, err)
}

// registryError says what a registry's refusal means for the user.
func registryError(ref name.Reference, err error) error {
	var te *transport.Error
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return err
	}
	host, repo := ref.Context().RegistryStr(), ref.Context().RepositoryStr()
	switch te.Errors[0].Code {
	case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode:
		return fmt.Errorf("%s has no %s in %s (MANIFEST_UNKNOWN: check the tag)", host, ref.Identifier(), repo)
	case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
		return fmt.Errorf("%s refused access to %s (%s): log in (podman login, docker login) or set $REGISTRY_AUTH_FILE; "+
			"credentials are read from ~/.docker/config.json, $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json", host, repo, te.Errors[0].Code)
	}
	return err
}
