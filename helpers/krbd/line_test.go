//go:build linux

package krbd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// fakeResolver answers from a table, so tests never touch DNS.
func fakeResolver(table map[string][]string) Resolver {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		ips, ok := table[host]
		if !ok {
			return nil, fmt.Errorf("no such host %s", host)
		}
		var out []netip.Addr
		for _, s := range ips {
			out = append(out, netip.MustParseAddr(s))
		}
		return out, nil
	}
}

var testHosts = fakeResolver(map[string][]string{
	"mon.example.com": {"10.0.0.1", "10.0.0.2", "fd00::1"},
	"mon-a":           {"10.1.0.1"},
	"linklocal":       {"fe80::1%eth0", "10.2.0.1"},
	"empty":           {},
})

// TestAddLine asserts the exact bytes for many combinations.
func TestAddLine(t *testing.T) {
	fsid := "8f6b2d3e-1c2a-4b5c-9d8e-7f6a5b4c3d2e"
	canon := testSecret
	cases := []struct {
		name string
		spec Spec
		auth Auth
		want string
	}{
		{
			name: "minimal keyring",
			spec: Spec{Monitors: []string{"1.2.3.4"}, Pool: "rbd", Image: "img"},
			auth: KeyringAuth(),
			want: "1.2.3.4:6789 name=admin,key=client.admin rbd img -",
		},
		{
			name: "v1 ports kept, custom port kept",
			spec: Spec{Monitors: []string{"1.2.3.4:6789", "5.6.7.8:7000"}, Pool: "rbd", Image: "img"},
			auth: KeyringAuth(),
			want: "1.2.3.4:6789,5.6.7.8:7000 name=admin,key=client.admin rbd img -",
		},
		{
			name: "ipv6 bracketed, bare, and 4in6",
			spec: Spec{Monitors: []string{"[::1]:6789", "2001:db8::1", "::ffff:192.0.2.7"}, Pool: "rbd", Image: "img"},
			auth: KeyringAuth(),
			want: "[::1]:6789,[2001:db8::1]:6789,192.0.2.7:6789 name=admin,key=client.admin rbd img -",
		},
		{
			name: "ms_mode=crc gives bare IPs the v2 port",
			spec: Spec{Monitors: []string{"1.2.3.4", "[2001:db8::2]"}, Pool: "rbd", Image: "img", Options: []string{"ms_mode=crc"}},
			auth: KeyringAuth(),
			want: "1.2.3.4:3300,[2001:db8::2]:3300 name=admin,key=client.admin,ms_mode=crc rbd img -",
		},
		{
			name: "ms_mode=secure keeps v2 addresses, drops v1 ones",
			spec: Spec{Monitors: []string{"v2:1.2.3.4:3300", "v1:5.6.7.8", "9.9.9.9:6789", "v2:[::1]", "10.0.0.9:3300"}, Pool: "rbd", Image: "img", Options: []string{"ms_mode=secure"}},
			auth: KeyringAuth(),
			want: "1.2.3.4:3300,[::1]:3300,10.0.0.9:3300 name=admin,key=client.admin,ms_mode=secure rbd img -",
		},
		{
			name: "legacy keeps v1 addresses, drops v2 ones",
			spec: Spec{Monitors: []string{"v2:1.2.3.4:3300", "v1:5.6.7.8", "10.0.0.9:3300", "10.0.0.10"}, Pool: "rbd", Image: "img", Options: []string{"ms_mode=legacy"}},
			auth: KeyringAuth(),
			want: "5.6.7.8:6789,10.0.0.10:6789 name=admin,key=client.admin,ms_mode=legacy rbd img -",
		},
		{
			name: "addrvec picks v1 without ms_mode",
			spec: Spec{Monitors: []string{"[v2:1.2.3.4:3300,v1:1.2.3.4:6789]"}, Pool: "rbd", Image: "img"},
			auth: KeyringAuth(),
			want: "1.2.3.4:6789 name=admin,key=client.admin rbd img -",
		},
		{
			name: "addrvec picks v2 with prefer-crc",
			spec: Spec{Monitors: []string{"[v2:1.2.3.4:3300,v1:1.2.3.4:6789]", "[v2:[::2]:3301,v1:[::2]:6789]"}, Pool: "rbd", Image: "img", Options: []string{"ms_mode=prefer-crc"}},
			auth: KeyringAuth(),
			want: "1.2.3.4:3300,[::2]:3301 name=admin,key=client.admin,ms_mode=prefer-crc rbd img -",
		},
		{
			name: "last ms_mode wins",
			spec: Spec{Monitors: []string{"1.2.3.4"}, Pool: "rbd", Image: "img", Options: []string{"ms_mode=secure", "ms_mode=legacy"}},
			auth: KeyringAuth(),
			want: "1.2.3.4:6789 name=admin,key=client.admin,ms_mode=secure,ms_mode=legacy rbd img -",
		},
		{
			name: "pasted mon_host, duplicates dropped",
			spec: Spec{Monitors: []string{"1.2.3.4,5.6.7.8 9.9.9.9;[::1]", "1.2.3.4:6789"}, Pool: "rbd", Image: "img"},
			auth: KeyringAuth(),
			want: "1.2.3.4:6789,5.6.7.8:6789,9.9.9.9:6789,[::1]:6789 name=admin,key=client.admin rbd img -",
		},
		{
			name: "host names resolved, all addresses, zones skipped",
			spec: Spec{Monitors: []string{"mon.example.com", "linklocal:6790", "v2:mon-a"}, Pool: "rbd", Image: "img", Options: []string{"ms_mode=prefer-secure"}, Resolver: testHosts},
			auth: KeyringAuth(),
			want: "10.0.0.1:3300,10.0.0.2:3300,[fd00::1]:3300,10.2.0.1:6790,10.1.0.1:3300 name=admin,key=client.admin,ms_mode=prefer-secure rbd img -",
		},
		{
			name: "namespace and snapshot",
			spec: Spec{Monitors: []string{"1.2.3.4"}, Pool: "pool", Namespace: "tenant-a", Image: "root", Snapshot: "v42", Options: []string{"ro"}},
			auth: KeyringAuth(),
			want: "1.2.3.4:6789 name=admin,key=client.admin,ro,_pool_ns=tenant-a pool root v42",
		},
		{
			name: "user with client. prefix",
			spec: Spec{Monitors: []string{"1.2.3.4"}, User: "client.strata", Pool: "rbd", Image: "img"},
			auth: KeyringAuth(),
			want: "1.2.3.4:6789 name=strata,key=client.strata rbd img -",
		},
		{
			name: "secret fallback",
			spec: Spec{Monitors: []string{"1.2.3.4"}, User: "strata", Pool: "rbd", Image: "img", Namespace: "ns"},
			auth: SecretAuth(testSecret + "\n"),
			want: "1.2.3.4:6789 name=strata,secret=" + canon + ",_pool_ns=ns rbd img -",
		},
		{
			name: "no auth",
			spec: Spec{Monitors: []string{"1.2.3.4"}, Pool: "rbd", Image: "img"},
			auth: NoAuth(),
			want: "1.2.3.4:6789 name=admin rbd img -",
		},
		{
			name: "every option type",
			spec: Spec{
				Monitors: []string{"10.0.0.1", "10.0.0.2"},
				User:     "node",
				Pool:     "images", Namespace: "hpc", Image: "rootfs", Snapshot: "2024-01",
				Options: []string{
					"ro", "read_only", "rw", "read_write", "queue_depth=128", "alloc_size=65536",
					"lock_timeout=0", "compression_hint=incompressible",
					"read_from_replica=localize", "crush_location=rack:r1|datacenter:dc1",
					"fsid=" + fsid, "ip=10.0.0.5", "mount_timeout=30", "osdkeepalive=5",
					"osd_idle_ttl=60", "osd_request_timeout=0", "noshare", "share", "nocrc",
					"crc", "nocephx_sign_messages", "cephx_sign_messages",
					"nocephx_require_signatures", "cephx_require_signatures", "notcp_nodelay",
					"tcp_nodelay", "abort_on_full", "rxbounce", "notrim", "exclusive",
					"lock_on_read", "ms_mode=prefer-secure",
				},
			},
			auth: KeyringAuth(),
			want: "10.0.0.1:3300,10.0.0.2:3300 name=node,key=client.node," +
				"ro,read_only,rw,read_write,queue_depth=128,alloc_size=65536,lock_timeout=0," +
				"compression_hint=incompressible,read_from_replica=localize," +
				"crush_location=rack:r1|datacenter:dc1,fsid=" + fsid + ",ip=10.0.0.5," +
				"mount_timeout=30,osdkeepalive=5,osd_idle_ttl=60,osd_request_timeout=0," +
				"noshare,share,nocrc,crc,nocephx_sign_messages,cephx_sign_messages," +
				"nocephx_require_signatures,cephx_require_signatures,notcp_nodelay,tcp_nodelay," +
				"abort_on_full,rxbounce,notrim,exclusive,lock_on_read,ms_mode=prefer-secure," +
				"_pool_ns=hpc images rootfs 2024-01",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := AddLine(c.spec, c.auth)
			if err != nil {
				t.Fatalf("AddLine: %v", err)
			}
			if got != c.want {
				t.Errorf("line\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestAddLineErrors(t *testing.T) {
	ok := Spec{Monitors: []string{"1.2.3.4"}, Pool: "rbd", Image: "img"}
	with := func(f func(*Spec)) Spec { s := ok; s.Options = nil; f(&s); return s }
	cases := []struct {
		name string
		spec Spec
		auth Auth
		want string
	}{
		{"no monitors", with(func(s *Spec) { s.Monitors = nil }), KeyringAuth(), "no monitors"},
		{"bad ipv4", with(func(s *Spec) { s.Monitors = []string{"10.0.0.300"} }), KeyringAuth(), "not a valid IPv4"},
		{"port zero", with(func(s *Spec) { s.Monitors = []string{"1.2.3.4:0"} }), KeyringAuth(), "1..65535"},
		{"port too big", with(func(s *Spec) { s.Monitors = []string{"1.2.3.4:70000"} }), KeyringAuth(), "1..65535"},
		{"unclosed bracket", with(func(s *Spec) { s.Monitors = []string{"[::1"} }), KeyringAuth(), "unbalanced"},
		{"zone", with(func(s *Spec) { s.Monitors = []string{"fe80::1%eth0"} }), KeyringAuth(), "zone"},
		{"v4 in brackets", with(func(s *Spec) { s.Monitors = []string{"[1.2.3.4]:6789"} }), KeyringAuth(), "not an IPv6"},
		{"untyped addrvec", with(func(s *Spec) { s.Monitors = []string{"[v2:1.2.3.4:3300,1.2.3.4:6789]"} }), KeyringAuth(), "v1: or v2:"},
		{"only v2 without ms_mode", with(func(s *Spec) { s.Monitors = []string{"v2:1.2.3.4"} }), KeyringAuth(), "add ms_mode=prefer-crc"},
		{"only v1 with crc", with(func(s *Spec) { s.Monitors = []string{"1.2.3.4:6789"}; s.Options = []string{"ms_mode=crc"} }), KeyringAuth(), "v1 (msgr1) address, but ms_mode=crc"},
		{"unknown host", with(func(s *Spec) { s.Monitors = []string{"nowhere.example"}; s.Resolver = testHosts }), KeyringAuth(), "resolve monitor host"},
		{"host without addresses", with(func(s *Spec) { s.Monitors = []string{"empty"}; s.Resolver = testHosts }), KeyringAuth(), "no usable IP"},
		{"too many monitors", with(func(s *Spec) {
			s.Monitors = nil
			for i := 0; i < 32; i++ {
				s.Monitors = append(s.Monitors, fmt.Sprintf("10.0.0.%d", i+1))
			}
		}), KeyringAuth(), "at most 31"},
		{"pool missing", with(func(s *Spec) { s.Pool = "" }), KeyringAuth(), "pool is empty"},
		{"image with space", with(func(s *Spec) { s.Image = "my img" }), KeyringAuth(), "whitespace"},
		{"image with slash", with(func(s *Spec) { s.Image = "a/b" }), KeyringAuth(), "contains '/'"},
		{"namespace with comma", with(func(s *Spec) { s.Namespace = "a,b" }), KeyringAuth(), "contains ','"},
		{"user with comma", with(func(s *Spec) { s.User = "a,b" }), KeyringAuth(), "contains ','"},
		{"snapshot dash", with(func(s *Spec) { s.Snapshot = "-" }), KeyringAuth(), "image head"},
		{"snapshot too long", with(func(s *Spec) { s.Snapshot = strings.Repeat("s", 251) }), KeyringAuth(), "at most 250"},
		{"bad option", with(func(s *Spec) { s.Options = []string{"queue_depth=0"} }), KeyringAuth(), "out of range"},
		{"bad secret", ok, SecretAuth("not base64!"), "not a valid key"},
		{"short secret", ok, SecretAuth("AQAA"), "not a valid key"},
		{"line too long", with(func(s *Spec) { s.Image = strings.Repeat("i", 4100) }), KeyringAuth(), "at most 4096"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			line, err := AddLine(c.spec, c.auth)
			if err == nil {
				t.Fatalf("no error, line %q", line)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestAuthNeverPrintsSecret(t *testing.T) {
	a := SecretAuth(testSecret)
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a)} {
		if strings.Contains(s, testSecret) || strings.Contains(s, testSecret[:20]) {
			t.Errorf("Auth printed the secret: %s", s)
		}
	}
}

func TestDecodeSecret(t *testing.T) {
	canon, payload, err := decodeSecret("  " + testSecret + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if canon != testSecret || string(payload) != string(testSecretBytes()) {
		t.Errorf("decode: %q / %x", canon, payload)
	}
	// Unpadded base64 is accepted and padded.
	if canon, _, err := decodeSecret(strings.TrimRight(testSecret, "=")); err != nil || canon != testSecret {
		t.Errorf("unpadded: %q, %v", canon, err)
	}
	bad := testSecretBytes()
	bad[10] = 20 // claims more key bytes than present
	for _, s := range []string{"", "====", "AQAAAAAAAAAAAA==", b64(bad)} {
		if _, _, err := decodeSecret(s); !errors.Is(err, errBadSecret) {
			t.Errorf("decodeSecret(%q) = %v, want errBadSecret", s, err)
		}
	}
}
