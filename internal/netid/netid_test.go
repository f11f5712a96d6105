package netid

import "testing"

func TestHost(t *testing.T) {
	for want, spellings := range map[string][]string{
		"10.0.0.5":          {"10.0.0.5", "[10.0.0.5]", "::ffff:10.0.0.5", "[::ffff:10.0.0.5]", "::FFFF:a00:5"},
		"fd00::5":           {"fd00::5", "FD00::5", "[fd00:0:0::5]", "fd00:0000:0000:0000:0000:0000:0000:0005"},
		"fe80::1%eth0":      {"fe80::1%eth0", "[FE80::1%eth0]"},
		"san.example.com":   {"san.example.com", "SAN.Example.COM", "san.example.com.", "[san.example.com]"},
		"010.0.0.5":         {"010.0.0.5"}, // not an address: a name, as Go's resolver takes it
		"nfs":               {"NFS."},
		"fe80::1%Eth0":      {"fe80::1%Eth0"}, // zones are interface names: case kept
		"2001:db8::1:0:0:1": {"2001:DB8:0:0:1:0:0:1"},
	} {
		for _, s := range spellings {
			if got := Host(s); got != want {
				t.Errorf("Host(%q) = %q, want %q", s, got, want)
			}
		}
	}
}
