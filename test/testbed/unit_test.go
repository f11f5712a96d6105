package testbed

// Plain unit tests (no root, no container): they run in every `go test ./...`.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestReadMountsByID checks the leak check's view of the host: every mount under its
// own ID, with the line it shows in a leak message.
func TestReadMountsByID(t *testing.T) {
	ms := readMounts()
	root := false
	for id, m := range ms {
		if id != m.ID || !strings.HasPrefix(m.Line, strconv.Itoa(id)+" ") {
			t.Errorf("mount %d keyed as %d, line %q", m.ID, id, m.Line)
		}
		root = root || m.Point == "/"
	}
	if !root {
		t.Errorf("no / among %d mounts", len(ms))
	}
}

func TestMachineName(t *testing.T) {
	n := machineName(t)
	if !nameRE.MatchString(n) || !strings.HasPrefix(n, "tb-testmachinename-") {
		t.Fatalf("bad name %q", n)
	}
	if machineName(t) == n {
		t.Fatal("names must be unique")
	}
}

// TestMirrorFromAptConfig checks that build-root.sh takes the mirror from the apt
// configuration: the bookworm entry that is not -security, in both formats; for
// another release of the matrix, its own entry, else bookworm's (one mirror).
func TestMirrorFromAptConfig(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed")
	}
	cases := []struct {
		name  string
		suite string // "" is bookworm
		files map[string]string
		want  string
	}{
		{
			name: "deb822",
			files: map[string]string{
				"sources.list.d/a.sources": "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n\n" +
					"Types: deb-src\nURIs: http://src.invalid/debian\nSuites: bookworm\n\n" +
					"Types: deb\nEnabled: no\nURIs: http://disabled.invalid/debian\nSuites: bookworm\n\n" +
					"# comment\nTypes: deb\nURIs: http://main.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n",
			},
			want: "http://main.invalid/debian",
		},
		{
			name: "one-line",
			files: map[string]string{
				"sources.list": "# deb http://commented.invalid/debian bookworm main\n" +
					"deb http://sec.invalid/debian-security bookworm-security main\n" +
					"deb [arch=amd64 signed-by=/k.gpg] http://main.invalid/debian bookworm main\n",
			},
			want: "http://main.invalid/debian",
		},
		{
			name:  "none",
			files: map[string]string{"sources.list": "deb http://x.invalid/debian trixie main\n"},
			want:  "",
		},
		{
			name:  "trixie-own",
			suite: "trixie",
			files: map[string]string{"sources.list": "deb http://b.invalid/debian bookworm main\ndeb http://t.invalid/debian trixie main\n"},
			want:  "http://t.invalid/debian",
		},
		{
			name:  "bullseye-from-bookworm",
			suite: "bullseye",
			files: map[string]string{"sources.list.d/a.sources": "Types: deb\nURIs: http://b.invalid/debian\nSuites: bookworm bookworm-updates\n"},
			want:  "http://b.invalid/debian",
		},
		{
			name:  "trixie-none",
			suite: "trixie",
			files: map[string]string{"sources.list": "deb http://x.invalid/debian sid main\n"},
			want:  "",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755); err != nil {
				t.Fatal(err)
			}
			for p, body := range c.files {
				if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("bash", filepath.Join(ScriptsDir(), "build-root.sh"), "--print-mirror")
			cmd.Env = append(os.Environ(), "STRATA_TESTBED_APT_ETC="+dir, "STRATA_TESTBED_MIRROR=", "STRATA_TESTBED_SUITE="+c.suite)
			out, err := cmd.Output()
			got := strings.TrimSpace(string(out))
			if c.want == "" {
				if err == nil {
					t.Fatalf("want failure, got %q", got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
