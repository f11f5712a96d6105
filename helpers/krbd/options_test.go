//go:build linux

package krbd

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestValidateOptionAccepts(t *testing.T) {
	good := []string{
		// flags
		"ro", "rw", "read_only", "read_write", "exclusive", "lock_on_read", "notrim",
		"abort_on_full", "rxbounce",
		// flag_no, both forms
		"share", "noshare", "crc", "nocrc", "tcp_nodelay", "notcp_nodelay",
		"cephx_sign_messages", "nocephx_sign_messages",
		"cephx_require_signatures", "nocephx_require_signatures",
		// u32 with ranges
		"mount_timeout=0", "mount_timeout=2147483", "osd_request_timeout=0",
		"osdkeepalive=1", "osdkeepalive=2147483", "osd_idle_ttl=1",
		"lock_timeout=0", "lock_timeout=2147483",
		"queue_depth=1", "queue_depth=4294967295",
		"alloc_size=512", "alloc_size=4096", "alloc_size=2147483648",
		// enums
		"read_from_replica=no", "read_from_replica=balance", "read_from_replica=localize",
		"compression_hint=none", "compression_hint=compressible", "compression_hint=incompressible",
		"ms_mode=legacy", "ms_mode=crc", "ms_mode=secure", "ms_mode=prefer-crc", "ms_mode=prefer-secure",
		// strings
		"crush_location=host:node1", "crush_location=rack:r1|rack:r2|datacenter:dc",
		"fsid=8f6b2d3e-1c2a-4b5c-9d8e-7f6a5b4c3d2e", "fsid=8F6B2D3E1C2A4B5C9D8E7F6A5B4C3D2E",
		"ip=10.0.0.5", "ip=10.0.0.5:7000", "ip=2001:db8::5", "ip=[2001:db8::5]:7000",
	}
	for _, o := range good {
		if err := ValidateOption(o); err != nil {
			t.Errorf("ValidateOption(%q) = %v", o, err)
		}
	}
}

func TestValidateOptionRejects(t *testing.T) {
	cases := []struct{ opt, want string }{
		{"", "empty option"},
		{"bogus", "unknown to the Linux 6.1"},
		{"osdtimeout=5", "unknown"}, // dropped from the 6.1 table
		{"nonotrim", "unknown"},     // notrim is not a flag_no
		{"noro", "unknown"},
		{"RO", "unknown"}, // keys are case-sensitive
		{"force", "unmap option"},
		{"name=admin", "Spec.User"},
		{"_pool_ns=x", "Spec.Namespace"},
		{"udev", "rbd tool"},
		{"noudev", "rbd tool"},
		{"=ro", "no option name"},
		{"ro=1", "takes no value"},
		{"nocrc=1", "takes no value"},
		{"queue_depth", "needs a value"},
		{"queue_depth=", "empty value"},
		{"queue_depth=0", "out of range"},
		{"queue_depth=4294967296", "32 bits"},
		{"queue_depth=-1", "not a decimal"},
		{"queue_depth=+1", "not a decimal"},
		{"queue_depth=0x10", "not a decimal"},
		{"queue_depth=010", "leading zero"},
		{"mount_timeout=2147484", "out of range"},
		{"osdkeepalive=0", "out of range"},
		{"osd_idle_ttl=0", "out of range"},
		{"lock_timeout=9999999", "out of range"},
		{"alloc_size=256", "out of range"},
		{"alloc_size=1000", "power of two"},
		{"read_from_replica=yes", "one of no, balance, localize"},
		{"compression_hint=maybe", "one of none"},
		{"ms_mode=plain", "one of legacy"},
		{"ms_mode=", "empty value"},
		{"crush_location=rack", "type:name"},
		{"crush_location=:r1", "both"},
		{"crush_location=rack:", "both"},
		{"crush_location=rack:r1|rack:r1", "given twice"},
		{"crush_location=host:a:b", "CRUSH names"},
		{"crush_location=rack:r\u20001", "plain ASCII"},
		{"crush_location=rack:r/1", "CRUSH names"},
		{"pool_ns=é", "plain ASCII"},
		{"fsid=xyz", "not a cluster fsid"},
		{"fsid=8f6b2d3e", "32"},
		{"ip=10.0.0", "not ip"},
		{"ip=fe80::1%eth0", "zone"},
		{"ip=10.0.0.1:0", "not ip"},
		{"ro,rw", "separates options"},
		{"ro rw", "split the line"},
		{"ro\trw", "split the line"},
		{"ip=1.2.3.4\x00", "control character"},
	}
	for _, c := range cases {
		err := ValidateOption(c.opt)
		if err == nil {
			t.Errorf("ValidateOption(%q) accepted", c.opt)
			continue
		}
		var oe *OptionError
		if !errors.As(err, &oe) {
			t.Errorf("ValidateOption(%q) = %T, want *OptionError", c.opt, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ValidateOption(%q) = %q, want mention of %q", c.opt, err, c.want)
		}
	}
}

// A secret pasted into the options must be refused without being echoed.
func TestValidateOptionNeverEchoesSecrets(t *testing.T) {
	for _, o := range []string{"secret=" + testSecret, "key=" + testSecret} {
		err := ValidateOption(o)
		if err == nil {
			t.Fatalf("%s accepted", o[:6])
		}
		if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), testSecret[:16]) {
			t.Errorf("error echoes the secret: %v", err)
		}
	}
	err := ValidateOptions([]string{"ro", "secret=" + testSecret, "bogus"})
	if err == nil || strings.Contains(err.Error(), testSecret) || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("ValidateOptions = %v", err)
	}
}

// Every table entry has a sane definition, and the table holds exactly the
// Linux 6.1 names (so an accidental deletion or addition is noticed).
func TestOptionTableIs61(t *testing.T) {
	want := strings.Fields(`abort_on_full cephx_require_signatures cephx_sign_messages crc
		crush_location fsid ip mount_timeout osd_idle_ttl osd_request_timeout osdkeepalive
		read_from_replica ms_mode rxbounce share tcp_nodelay
		alloc_size compression_hint exclusive lock_on_read lock_timeout notrim queue_depth
		read_only ro read_write rw`)
	if len(want) != len(kernelOptions) {
		t.Errorf("table has %d options, want %d", len(kernelOptions), len(want))
	}
	for _, n := range want {
		s, ok := kernelOptions[n]
		if !ok {
			t.Errorf("missing %s", n)
			continue
		}
		if s.kind == kindU32 && s.min > s.max {
			t.Errorf("%s: empty range", n)
		}
		if s.kind == kindEnum && len(s.values) == 0 {
			t.Errorf("%s: no values", n)
		}
	}
}

// FuzzValidateOption: no input panics, and whatever is accepted can be
// carried in the line unchanged (one token, one comma-separated item).
func FuzzValidateOption(f *testing.F) {
	for _, s := range []string{"ro", "noshare", "queue_depth=128", "alloc_size=4096",
		"ms_mode=prefer-crc", "crush_location=rack:a|dc:b", "fsid=8f6b2d3e-1c2a-4b5c-9d8e-7f6a5b4c3d2e",
		"ip=[::1]:7000", "secret=AQ==", "=", "no", "nono", "queue_depth=010", "\x00", "ro,rw"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, opt string) {
		err := ValidateOption(opt)
		_ = ValidateOptions(strings.Split(opt, ","))
		if err != nil {
			return
		}
		if opt == "" || strings.ContainsAny(opt, ", \t\n\r\v\f") {
			t.Fatalf("accepted %q, which cannot be one item of the line", opt)
		}
		line, lerr := AddLine(Spec{Monitors: []string{"1.2.3.4"}, Pool: "p", Image: "i", Options: []string{opt}}, NoAuth())
		if lerr != nil {
			t.Fatalf("valid option %q, but AddLine failed: %v", opt, lerr)
		}
		if !strings.Contains(line, ","+opt+" ") || len(strings.Fields(line)) != 5 {
			t.Fatalf("option %q not carried intact: %q", opt, line)
		}
	})
}

// FuzzMonitors: monitor parsing never panics, and every rendered address
// is one ceph_parse_ips can read back as ip:port.
func FuzzMonitors(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "1.2.3.4:6789", "[::1]:3300", "v2:1.2.3.4:3300",
		"mon.example.com", "[v2:1.2.3.4:3300,v1:1.2.3.4:6789]", "a,b;c d", "[", "]", "v1:", "::",
		"[v2:[::1]:3300]", "10.0.0.300"} {
		f.Add(s, false)
	}
	resolve := func(_ context.Context, host string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
	}
	f.Fuzz(func(t *testing.T, mon string, v2 bool) {
		opts := []string{}
		if v2 {
			opts = append(opts, "ms_mode=crc")
		}
		addrs, _, err := monitorAddrs(context.Background(), []string{mon}, opts, resolve)
		if err != nil {
			return
		}
		for _, a := range addrs {
			ap, perr := netip.ParseAddrPort(a)
			if perr != nil || ap.Port() == 0 || ap.Addr().Zone() != "" || strings.ContainsAny(a, ", ") {
				t.Fatalf("monitor %q rendered %q", mon, a)
			}
		}
	})
}
