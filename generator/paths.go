package generator

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// id names a shared attachment or layer on the node: kind, a readable tail
// and a hash of the identity. The hash makes it unique whatever the names
// hold; the result uses only [A-Za-z0-9._], so it is safe as a unit name,
// a directory, and inside overlayfs's lowerdir= (where ':' ',' '\' are special).
func id(kind, tail string, identity ...string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + strings.Join(identity, "\x00")))
	return kind + "_" + sanitize(tail) + "_" + hex.EncodeToString(sum[:5])
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if len(b.String()) > 40 {
		return b.String()[:40]
	}
	return b.String()
}
