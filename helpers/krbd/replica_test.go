//go:build linux

package krbd

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestReplicaReadDefault(t *testing.T) {
	snap := testSpec() // images/hpc/rootfs@v1, options ro, queue_depth=128
	head := testSpec()
	head.Snapshot = ""
	with := func(s Spec, opts ...string) Spec {
		s.Options = append(slices.Clone(s.Options), opts...)
		return s
	}
	for _, c := range []struct {
		name    string
		spec    Spec
		release string
		added   bool
	}{
		{"snapshot on Debian 12", snap, "6.1.0-13-amd64", true},
		{"snapshot on 5.8", snap, "5.8.0", true},
		{"snapshot on EL9", snap, "5.14.0-362.el9.x86_64", true},
		{"snapshot on a two-digit major", snap, "10.2", true},
		{"snapshot on 5.7", snap, "5.7.19", false},
		{"snapshot on EL8", snap, "4.18.0-513.el8.x86_64", false},
		{"snapshot, release unreadable", snap, "", false},
		{"snapshot, release unparsable", snap, "linux-six", false},
		{"image head, even read-only", head, "6.1.0-13-amd64", false},
		{"snapshot that says no", with(snap, "read_from_replica=no"), "6.1.0-13-amd64", false},
		{"snapshot that says localize", with(snap, "read_from_replica=localize", "crush_location=rack:r1"), "6.1.0-13-amd64", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := slices.Clone(c.spec.Options)
			got, why := withReplicaReads(c.spec, c.release)
			want := before
			if c.added {
				want = append(slices.Clone(before), "read_from_replica=balance")
			}
			if !slices.Equal(got, want) {
				t.Errorf("options %q, want %q", got, want)
			}
			if (why != "") != c.added {
				t.Errorf("reason %q, added %v", why, c.added)
			}
			if !slices.Equal(c.spec.Options, before) {
				t.Errorf("the spec's own options changed to %q", c.spec.Options)
			}
		})
	}
}

// The kernel gets the default in the line it parses, and the log says why.
func TestMapSnapshotReadsFromReplicas(t *testing.T) {
	k := newFakeKernel(t)
	k.release = "6.1.0-13-amd64"
	if _, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, testSpec(), testSecret); err != nil {
		t.Fatal(err)
	}
	adds := k.writesTo("add")
	if len(adds) != 1 || !strings.Contains(adds[0].data, ",read_from_replica=balance,") {
		t.Fatalf("adds %+v, want one line with read_from_replica=balance", adds)
	}
	logs := strings.Join(k.logs, "\n")
	if !strings.Contains(logs, "reading snapshot images/hpc/rootfs@v1 from all replicas (read_from_replica=balance: a snapshot never changes, and Linux 6.1.0-13-amd64 has the option)") {
		t.Errorf("the log does not say why:\n%s", logs)
	}

	// The head of the same image: primary reads, as the kernel defaults.
	head := testSpec()
	head.Snapshot = ""
	if _, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, head, testSecret); err != nil {
		t.Fatal(err)
	}
	if adds := k.writesTo("add"); len(adds) != 2 || strings.Contains(adds[1].data, "read_from_replica") {
		t.Errorf("head mapped with %q", adds[len(adds)-1].data)
	}
}
