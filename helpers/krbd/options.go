//go:build linux

package krbd

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The kernel parses the option string with fs_parser (rbd_parse_options in
// drivers/block/rbd.c hands every item first to libceph's ceph_parse_param,
// then to rbd's own table). The table below is the union of both tables as
// of Linux 6.1, with each value's type and the range checks the two parse
// functions apply afterwards. Validating here turns what would be a bare
// EINVAL from the write(2) into a message naming the option.

type optKind int

const (
	kindFlag   optKind = iota // no value allowed (fsparam_flag)
	kindFlagNo                // no value; "noNAME" is the negation (fsparam_flag_no)
	kindU32                   // unsigned decimal (fsparam_u32) with a range
	kindString                // non-empty string (fsparam_string) with a checker
	kindEnum                  // one of a fixed set (fsparam_enum)
)

type optSpec struct {
	kind     optKind
	min, max uint64             // kindU32 range, inclusive
	values   []string           // kindEnum
	check    func(string) error // kindString, extra checks; nil: any non-empty value
	pow2     bool               // kindU32 must be a power of two (alloc_size)
}

// intMaxDiv1000 is INT_MAX/1000: libceph and rbd turn these seconds into
// milliseconds in an int and reject anything larger ("out of range").
const intMaxDiv1000 = math.MaxInt32 / 1000

// kernelOptions is the Linux 6.1 option table.
//
// libceph (net/ceph/ceph_common.c, ceph_parameters and ceph_parse_param):
//
//	abort_on_full            flag
//	cephx_require_signatures flag_no (deprecated, ignored since 5.x)
//	cephx_sign_messages      flag_no
//	crc                      flag_no
//	crush_location           string  "type:name|type:name..."
//	fsid                     string  32 hex digits, punctuation ignored
//	ip                       string  ip[:port]
//	key, name, secret        string  (handled by this package, not options)
//	mount_timeout            u32     0..INT_MAX/1000 (0 = wait forever)
//	osd_idle_ttl             u32     1..INT_MAX/1000
//	osd_request_timeout      u32     0..INT_MAX/1000 (0 = wait forever)
//	osdkeepalive             u32     1..INT_MAX/1000
//	read_from_replica        enum    no|balance|localize
//	ms_mode                  enum    legacy|crc|secure|prefer-crc|prefer-secure
//	rxbounce                 flag    (5.17)
//	share                    flag_no
//	tcp_nodelay              flag_no
//
// rbd (drivers/block/rbd.c, rbd_parameters and rbd_parse_param):
//
//	alloc_size        u32   >= 512 (SECTOR_SIZE), power of two
//	compression_hint  enum  none|compressible|incompressible
//	exclusive         flag
//	lock_on_read      flag
//	lock_timeout      u32   0..INT_MAX/1000 (0 = wait forever)
//	notrim            flag
//	_pool_ns          string (this package renders it from Spec.Namespace)
//	queue_depth       u32   >= 1
//	read_only, ro     flag
//	read_write, rw    flag
var kernelOptions = map[string]optSpec{
	// libceph
	"abort_on_full":            {kind: kindFlag},
	"cephx_require_signatures": {kind: kindFlagNo},
	"cephx_sign_messages":      {kind: kindFlagNo},
	"crc":                      {kind: kindFlagNo},
	"crush_location":           {kind: kindString, check: checkCrushLocation},
	"fsid":                     {kind: kindString, check: checkFSID},
	"ip":                       {kind: kindString, check: checkClientIP},
	"mount_timeout":            {kind: kindU32, min: 0, max: intMaxDiv1000},
	"osd_idle_ttl":             {kind: kindU32, min: 1, max: intMaxDiv1000},
	"osd_request_timeout":      {kind: kindU32, min: 0, max: intMaxDiv1000},
	"osdkeepalive":             {kind: kindU32, min: 1, max: intMaxDiv1000},
	"read_from_replica":        {kind: kindEnum, values: []string{"no", "balance", "localize"}},
	"ms_mode":                  {kind: kindEnum, values: []string{"legacy", "crc", "secure", "prefer-crc", "prefer-secure"}},
	"rxbounce":                 {kind: kindFlag},
	"share":                    {kind: kindFlagNo},
	"tcp_nodelay":              {kind: kindFlagNo},

	// rbd
	"alloc_size":       {kind: kindU32, min: 512, max: math.MaxUint32, pow2: true},
	"compression_hint": {kind: kindEnum, values: []string{"none", "compressible", "incompressible"}},
	"exclusive":        {kind: kindFlag},
	"lock_on_read":     {kind: kindFlag},
	"lock_timeout":     {kind: kindU32, min: 0, max: intMaxDiv1000},
	"notrim":           {kind: kindFlag},
	"queue_depth":      {kind: kindU32, min: 1, max: math.MaxUint32},
	"read_only":        {kind: kindFlag},
	"ro":               {kind: kindFlag},
	"read_write":       {kind: kindFlag},
	"rw":               {kind: kindFlag},
}

// refusedOptions are names the kernel (or the rbd tool) knows but that must
// not come through Spec.Options, each with the reason shown to the admin.
// The values of secret/key are never echoed back.
var refusedOptions = map[string]string{
	"force":    "\"force\" is an unmap option (Unmap's force argument), not a map option",
	"secret":   "the cephx key is not an option: pass it as Map's secret argument (it goes into the kernel keyring)",
	"key":      "key= is set by this package when the secret is in the kernel keyring; pass the secret as Map's secret argument",
	"name":     "the cephx user is Spec.User, not an option",
	"_pool_ns": "the RADOS namespace is Spec.Namespace, not an option",
	"udev":     "\"udev\" is an option of the rbd tool, not of the kernel; it has no meaning here",
	"noudev":   "\"noudev\" is an option of the rbd tool, not of the kernel; it has no meaning here",
}

// OptionError reports one option the kernel would reject, or that belongs
// elsewhere. It never carries the value of secret= or key=.
type OptionError struct {
	Option string // the offending item as written, or only its name for secret/key
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("rbd map option %q: %s", e.Option, e.Reason)
}

// ValidateOptions checks every item of an ordered kernel map option list
// (each "name" or "name=value") against the Linux 6.1 rbd and libceph option
// tables, returning all problems joined. A nil or empty list is valid.
func ValidateOptions(opts []string) error {
	var errs []error
	for _, o := range opts {
		if err := ValidateOption(o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ValidateOption checks one "name" or "name=value" item.
func ValidateOption(opt string) error {
	name, value, hasValue := strings.Cut(opt, "=")
	shown := opt
	if name == "secret" || name == "key" {
		shown = name // never echo a secret back
	}
	bad := func(format string, args ...any) error {
		return &OptionError{Option: shown, Reason: fmt.Sprintf(format, args...)}
	}
	if opt == "" {
		return bad("empty option")
	}
	// The add line is split on whitespace into tokens and the options token
	// on ','; either inside an option would corrupt the line.
	if i := strings.IndexFunc(opt, isLineSeparator); i >= 0 {
		return bad("contains %q, which would split the line the kernel parses", opt[i])
	}
	if strings.ContainsRune(opt, ',') {
		return bad("contains ',', which separates options: give each option as its own item")
	}
	if i := strings.IndexFunc(opt, isControl); i >= 0 {
		return bad("contains a control character")
	}
	// No rbd option takes anything but ASCII; a look-alike space such as
	// U+2000 would pass the kernel's ASCII-only split yet read as two
	// words to anyone checking the line.
	if i := strings.IndexFunc(opt, isNonASCII); i >= 0 {
		r, _ := utf8.DecodeRuneInString(opt[i:])
		return bad("contains %U; rbd options are plain ASCII", r)
	}
	if name == "" {
		return bad("no option name before '='")
	}
	if reason, ok := refusedOptions[name]; ok {
		return bad("%s", reason)
	}

	spec, ok := kernelOptions[name]
	if !ok && strings.HasPrefix(name, "no") {
		// fs_parser's fs_lookup_key: "noNAME" negates NAME when NAME is a
		// flag_no parameter; an exact match always wins (e.g. "notrim").
		if s, found := kernelOptions[name[2:]]; found && s.kind == kindFlagNo {
			spec, ok = s, true
		}
	}
	if !ok {
		return bad("unknown to the Linux 6.1 rbd driver (known: %s)", knownOptionList())
	}

	switch spec.kind {
	case kindFlag, kindFlagNo:
		if hasValue {
			return bad("is a flag and takes no value")
		}
		return nil
	}
	if !hasValue {
		return bad("needs a value (%s=...)", name)
	}
	if value == "" {
		return bad("has an empty value")
	}
	switch spec.kind {
	case kindU32:
		n, err := parseDecimalU32(value)
		if err != nil {
			return bad("%v", err)
		}
		if n < spec.min || n > spec.max {
			return bad("%d is out of range %d..%d", n, spec.min, spec.max)
		}
		if spec.pow2 && bits.OnesCount64(n) != 1 {
			return bad("%d is not a power of two", n)
		}
	case kindEnum:
		for _, v := range spec.values {
			if value == v {
				return nil
			}
		}
		return bad("must be one of %s", strings.Join(spec.values, ", "))
	case kindString:
		if spec.check != nil {
			if err := spec.check(value); err != nil {
				return bad("%v", err)
			}
		}
	}
	return nil
}

// parseDecimalU32 accepts only canonical decimal numbers. The kernel's
// fsparam_u32 uses kstrtouint with base 0, which would read "010" as octal 8
// and "0x10" as 16; refusing those keeps what the admin wrote and what the
// kernel does identical.
func parseDecimalU32(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("needs a decimal number")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero (the kernel would read it as octal)", s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q does not fit in 32 bits", s)
	}
	return n, nil
}

// checkCrushLocation follows ceph_parse_crush_location (net/ceph/osdmap.c):
// '|'-separated "type:name" pairs, both parts non-empty, no pair twice
// (the kernel's rb-tree insert fails with EEXIST on a duplicate). Both parts
// must also be names Ceph can give a bucket (CrushWrapper::is_valid_crush_name:
// letters, digits, '-', '_', '.'), or the location can match nothing.
func checkCrushLocation(v string) error {
	seen := map[string]bool{}
	for _, part := range strings.Split(v, "|") {
		typ, name, ok := strings.Cut(part, ":")
		if !ok {
			return fmt.Errorf("%q is not type:name (e.g. rack:r1|datacenter:dc1)", part)
		}
		if typ == "" || name == "" {
			return fmt.Errorf("%q needs both a bucket type and a bucket name", part)
		}
		for _, n := range []string{typ, name} {
			if i := strings.IndexFunc(n, notCrushNameRune); i >= 0 {
				return fmt.Errorf("%q: %q contains %q; CRUSH names hold only letters, digits, '-', '_' and '.'", part, n, n[i])
			}
		}
		if seen[part] {
			return fmt.Errorf("%q is given twice", part)
		}
		seen[part] = true
	}
	return nil
}

// checkFSID follows parse_fsid (net/ceph/ceph_common.c): punctuation is
// skipped and 16 bytes of hex pairs must follow. We also refuse trailing
// garbage, which the kernel would silently ignore.
func checkFSID(v string) error {
	hex := 0
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			hex++
		case strings.ContainsRune("-:{}", c):
		default:
			return fmt.Errorf("%q is not a cluster fsid (a UUID such as 8f6b2d3e-...)", v)
		}
	}
	if hex != 32 {
		return fmt.Errorf("%q has %d hex digits, a cluster fsid has 32", v, hex)
	}
	return nil
}

// checkClientIP follows ceph_parse_ips with one address: an IP, optionally
// with a port ("[v6]:port" for IPv6 with a port).
func checkClientIP(v string) error {
	if a, err := netip.ParseAddr(v); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%q has a zone, which the kernel cannot parse", v)
		}
		return nil
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil || ap.Port() == 0 {
		return fmt.Errorf("%q is not ip or ip:port (IPv6 with a port as [addr]:port)", v)
	}
	if ap.Addr().Zone() != "" {
		return fmt.Errorf("%q has a zone, which the kernel cannot parse", v)
	}
	return nil
}

func knownOptionList() string {
	names := make([]string, 0, len(kernelOptions))
	for n := range kernelOptions {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// msgr2 reports whether the options select the msgr2 protocol. Like the
// kernel (and Ceph's krbd.cc), the last ms_mode wins; without one the kernel
// speaks msgr1 (legacy).
func msgr2(opts []string) (bool, string) {
	mode := "legacy"
	for _, o := range opts {
		if v, ok := strings.CutPrefix(o, "ms_mode="); ok {
			mode = v
		}
	}
	return mode != "legacy", mode
}

// optionValue returns the last value given for name, if any.
func optionValue(opts []string, name string) (string, bool) {
	val, found := "", false
	for _, o := range opts {
		if v, ok := strings.CutPrefix(o, name+"="); ok {
			val, found = v, true
		}
	}
	return val, found
}

// isLineSeparator matches the characters rbd.c's next_token treats as
// token separators: " \f\n\r\t\v".
func isLineSeparator(r rune) bool {
	switch r {
	case ' ', '\f', '\n', '\r', '\t', '\v':
		return true
	}
	return false
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func isNonASCII(r rune) bool { return r > 0x7f }

func notCrushNameRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}
