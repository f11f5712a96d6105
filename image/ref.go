package image

import (
	"fmt"
	"strings"
)

// Ref names an RBD image, or one of its snapshots.
type Ref struct {
	Pool      string
	Namespace string // "" for the pool's default namespace
	Image     string
	Snapshot  string // "" for the image itself (its head)
}

// String writes the rbd tool's spec: pool[/namespace]/image[@snapshot].
func (r Ref) String() string {
	s := r.Pool + "/"
	if r.Namespace != "" {
		s += r.Namespace + "/"
	}
	s += r.Image
	if r.Snapshot != "" {
		s += "@" + r.Snapshot
	}
	return s
}

// PoolSpec writes pool[/namespace].
func (r Ref) PoolSpec() string {
	if r.Namespace != "" {
		return r.Pool + "/" + r.Namespace
	}
	return r.Pool
}

// ParseRef reads pool/[namespace/]image[@snapshot], as the rbd tool writes
// it. An image without a pool takes defaultPool ("rbd" in the rbd tool).
func ParseRef(spec, defaultPool string) (Ref, error) {
	var r Ref
	rest := spec
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		r.Snapshot = rest[i+1:]
		rest = rest[:i]
		if r.Snapshot == "" {
			return Ref{}, fmt.Errorf("image spec %q: empty snapshot name after @", spec)
		}
	}
	parts := strings.Split(rest, "/")
	switch len(parts) {
	case 1:
		r.Pool, r.Image = defaultPool, parts[0]
	case 2:
		r.Pool, r.Image = parts[0], parts[1]
	case 3:
		r.Pool, r.Namespace, r.Image = parts[0], parts[1], parts[2]
		if r.Namespace == "" {
			return Ref{}, fmt.Errorf("image spec %q: empty namespace", spec)
		}
	default:
		return Ref{}, fmt.Errorf("image spec %q: want pool/[namespace/]image[@snapshot]", spec)
	}
	if err := r.Validate(); err != nil {
		return Ref{}, err
	}
	return r, nil
}

// Validate checks that the names can be used: pool and image present, no
// '/' or '@' inside a name, no control characters.
func (r Ref) Validate() error {
	if r.Pool == "" {
		return fmt.Errorf("no pool given")
	}
	if r.Image == "" {
		return fmt.Errorf("no image given")
	}
	for _, f := range []struct{ what, v string }{
		{"pool", r.Pool}, {"namespace", r.Namespace}, {"image", r.Image}, {"snapshot", r.Snapshot},
	} {
		if strings.ContainsAny(f.v, "/@") {
			return fmt.Errorf("%s name %q: must not contain '/' or '@'", f.what, f.v)
		}
		for _, c := range f.v {
			if c < 0x20 || c == 0x7f {
				return fmt.Errorf("%s name %q: must not contain control characters", f.what, f.v)
			}
		}
	}
	return nil
}
