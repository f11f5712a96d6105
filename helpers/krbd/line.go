//go:build linux

package krbd

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// maxLineLen bounds the add line to one (4 KiB) page: kernfs hands a sysfs
// store method at most PAGE_SIZE bytes of a write and silently drops the
// rest (kernfs_fop_write_iter), so a longer line would be parsed truncated.
const maxLineLen = 4096

type authMode int

const (
	authNone   authMode = iota // cephx disabled: no key at all
	authKey                    // key=client.ID: the secret is in the kernel keyring
	authSecret                 // secret=BASE64 in the line (fallback)
)

// Auth says how the add line authenticates. Build it with KeyringAuth,
// SecretAuth or NoAuth. Its String and GoString never show the secret.
type Auth struct {
	mode   authMode
	secret string
}

// KeyringAuth renders key=client.ID: the caller has put the secret into a
// keyring that libceph's request_key searches for the writing thread.
func KeyringAuth() Auth { return Auth{mode: authKey} }

// SecretAuth renders secret=BASE64: the secret is passed in the line itself
// (readable by root afterwards in /sys/bus/rbd/devices/N/config_info).
func SecretAuth(secret string) Auth { return Auth{mode: authSecret, secret: secret} }

// NoAuth renders neither, for clusters with auth_client_required = none.
func NoAuth() Auth { return Auth{mode: authNone} }

func (a Auth) String() string {
	switch a.mode {
	case authKey:
		return "key (kernel keyring)"
	case authSecret:
		return "secret=<redacted>"
	}
	return "none"
}

// GoString keeps %#v from printing the secret field.
func (a Auth) GoString() string { return "krbd.Auth{" + a.String() + "}" }

// AddLine renders the exact line written to /sys/bus/rbd/add_single_major:
//
//	MON1,MON2 name=ID[,key=client.ID|,secret=BASE64][,OPTIONS][,_pool_ns=NS] POOL IMAGE SNAP|-
//
// in the order Ceph's own krbd.cc builds it. Host names are resolved with
// spec.Resolver.
func AddLine(spec Spec, auth Auth) (string, error) {
	return AddLineContext(context.Background(), spec, auth)
}

// AddLineContext is AddLine with a context for host name resolution.
func AddLineContext(ctx context.Context, spec Spec, auth Auth) (string, error) {
	line, _, err := renderLine(ctx, spec, auth)
	return line, err
}

// renderLine also returns the monitors not usable in the selected ms_mode.
func renderLine(ctx context.Context, spec Spec, auth Auth) (string, []string, error) {
	if err := spec.Validate(); err != nil {
		return "", nil, err
	}
	mons, dropped, err := monitorAddrs(ctx, spec.Monitors, spec.Options, spec.Resolver)
	if err != nil {
		return "", dropped, err
	}
	line, err := buildLine(spec, mons, auth)
	return line, dropped, err
}

// buildLine assembles the line from a validated spec and rendered monitors.
func buildLine(spec Spec, mons []string, auth Auth) (string, error) {
	var b strings.Builder
	b.WriteString(strings.Join(mons, ","))
	b.WriteString(" name=")
	b.WriteString(spec.user())
	switch auth.mode {
	case authKey:
		b.WriteString(",key=")
		b.WriteString(spec.keyName())
	case authSecret:
		canon, _, err := decodeSecret(auth.secret)
		if err != nil {
			return "", err
		}
		b.WriteString(",secret=")
		b.WriteString(canon)
	}
	for _, o := range spec.Options {
		b.WriteByte(',')
		b.WriteString(o)
	}
	if spec.Namespace != "" {
		b.WriteString(",_pool_ns=")
		b.WriteString(spec.Namespace)
	}
	b.WriteByte(' ')
	b.WriteString(spec.Pool)
	b.WriteByte(' ')
	b.WriteString(spec.Image)
	b.WriteByte(' ')
	b.WriteString(spec.snapToken())
	line := b.String()
	if len(line) > maxLineLen {
		return "", fmt.Errorf("the map line is %d bytes, sysfs takes at most %d: use fewer monitors or options", len(line), maxLineLen)
	}
	return line, nil
}

// errBadSecret never includes the secret, not even a fragment of it.
var errBadSecret = errors.New("the cephx secret is not a valid key: expected the base64 text `ceph auth get-key client.ID` prints")

// decodeSecret checks a cephx secret and returns its canonical base64 text
// and the bytes the kernel's "ceph" key type takes as payload.
//
// The base64 text of a cephx key is the armored encoding of a CryptoKey:
// le16 type, le32+le32 creation time, le16 length, then the key bytes
// (ceph_crypto_key_decode in net/ceph/crypto.c). The kernel's key type
// decodes exactly those bytes (ceph_key_preparse), the same bytes Ceph's
// set_kernel_secret passes to add_key(2) after unarmoring.
func decodeSecret(secret string) (canonical string, payload []byte, err error) {
	s := strings.TrimSpace(secret) // keyring files and get-key output end in a newline
	if s == "" {
		return "", nil, errBadSecret
	}
	payload, err = base64.StdEncoding.DecodeString(s)
	if err != nil {
		payload, err = base64.RawStdEncoding.DecodeString(s)
		if err != nil {
			return "", nil, errBadSecret
		}
	}
	const header = 2 + 8 + 2
	if len(payload) < header {
		return "", nil, errBadSecret
	}
	typ := binary.LittleEndian.Uint16(payload[0:2])
	n := int(binary.LittleEndian.Uint16(payload[10:12]))
	if len(payload) < header+n {
		return "", nil, errBadSecret
	}
	switch typ {
	case 0: // CEPH_CRYPTO_NONE
	case 1: // CEPH_CRYPTO_AES
		if n != 16 && n != 24 && n != 32 {
			return "", nil, errBadSecret
		}
	default:
		return "", nil, errBadSecret
	}
	return base64.StdEncoding.EncodeToString(payload), payload, nil
}

// redactor replaces every form of the secret we might have handled with a
// marker. It is applied to everything this package returns or logs, as a
// second line of defence behind never formatting the secret at all.
type redactor []string

func newRedactor(secret string) redactor {
	var r redactor
	for _, s := range []string{secret, strings.TrimSpace(secret)} {
		if s != "" {
			r = append(r, s)
		}
	}
	if canon, _, err := decodeSecret(secret); err == nil {
		r = append(r, canon, strings.TrimRight(canon, "="))
	}
	return r
}

func (r redactor) apply(s string) string {
	for _, sec := range r {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "<redacted>")
		}
	}
	return s
}
