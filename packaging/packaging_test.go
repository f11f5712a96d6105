// Package packaging holds only tests: of packaging/build.sh's versions and
// of the packages' layout against the code. Building and installing the
// packages is tested in test/integration (package_test.go, build tag
// integration).
package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/helpers/krbd"
	"github.com/strata-project/strata/internal/layout"
)

func mapVersion(t *testing.T, describe, count string) string {
	t.Helper()
	out, err := exec.Command("bash", "build.sh", "--map-version", describe, count).CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh --map-version %s %s: %v\n%s", describe, count, err, out)
	}
	return strings.TrimSpace(string(out))
}

// git describe's forms become versions that dpkg and rpm accept and that
// sort as the history does.
func TestMapVersion(t *testing.T) {
	cases := map[string]string{
		"v1.2.3":                "1.2.3",
		"1.2.3":                 "1.2.3",
		"v1.2.3-rc1":            "1.2.3~rc1",
		"v1.2.3-4-gabc1234":     "1.2.3+git4.abc1234",
		"v1.2.3-rc1-2-gdeadbee": "1.2.3~rc1+git2.deadbee",
		"abc1234":               "0.0.0~git57.abc1234",
		"27ef86c":               "0.0.0~git57.27ef86c",
		"1234567":               "0.0.0~git57.1234567",
	}
	valid := regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*$`)
	for in, want := range cases {
		got := mapVersion(t, in, "57")
		if got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
		if !valid.MatchString(got) {
			t.Errorf("%s: %s is not a valid deb and rpm version", in, got)
		}
	}
	if out, err := exec.Command("bash", "build.sh", "--map-version", "not a version", "1").CombinedOutput(); err == nil {
		t.Errorf("an unusable describe output was accepted: %s", out)
	}

	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Fatal("dpkg is needed to compare versions")
	}
	// Each sorts before the next, as the commits do.
	order := []string{
		mapVersion(t, "abc1234", "10"),
		mapVersion(t, "abc1234", "11"),
		mapVersion(t, "v0.1.0-rc1", "0"),
		mapVersion(t, "v0.1.0-rc1-3-gabc1234", "0"),
		mapVersion(t, "v0.1.0", "0"),
		mapVersion(t, "v0.1.0-1-gabc1234", "0"),
		mapVersion(t, "v0.1.0-12-gabc1234", "0"),
		mapVersion(t, "v0.1.1", "0"),
	}
	for i := 1; i < len(order); i++ {
		if err := exec.Command(dpkg, "--compare-versions", order[i-1], "lt", order[i]).Run(); err != nil {
			t.Errorf("dpkg: %s does not sort before %s", order[i-1], order[i])
		}
	}
}

type nfpmConfig struct {
	Name      string   `yaml:"name"`
	License   string   `yaml:"license"`
	Depends   []string `yaml:"depends"`
	Overrides map[string]struct {
		Depends []string `yaml:"depends"`
	} `yaml:"overrides"`
	Contents []struct {
		Src      string `yaml:"src"`
		Dst      string `yaml:"dst"`
		Type     string `yaml:"type"`
		Packager string `yaml:"packager"`
		FileInfo struct {
			Mode  os.FileMode `yaml:"mode"`
			Owner string      `yaml:"owner"`
		} `yaml:"file_info"`
	} `yaml:"contents"`
	Scripts map[string]string `yaml:"scripts"`
}

func readConfig(t *testing.T, name string) nfpmConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("nfpm", name))
	if err != nil {
		t.Fatal(err)
	}
	var c nfpmConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// The node package puts each program where the code expects it: the helper
// at the path units and the udev rule run, the generator in systemd's
// generator directory, the definition directories of the search path
// (the administrator's root-only), a man page for each page source, and
// completions where each shell looks for them.
func TestNodePackageLayout(t *testing.T) {
	c := readConfig(t, "strata.yaml")
	dst := map[string]string{} // dst -> src
	dirs := map[string]os.FileMode{}
	for _, f := range c.Contents {
		if f.Type == "dir" {
			dirs[f.Dst] = f.FileInfo.Mode
			continue
		}
		if f.Packager == "" || f.Packager == "deb" {
			dst[f.Dst] = f.Src
		}
	}
	want := map[string]string{
		"/usr/bin/strata": "bin/strata",
		"/usr/lib/systemd/system-generators/strata-generator": "bin/strata-generator",
		layout.HelperPath: "bin/strata-helper",
		"/usr/lib/udev/rules.d/50-strata-rbd.rules":        "rules/50-strata-rbd.rules",
		"/usr/share/bash-completion/completions/strata":    "gen/completions/bash/strata",
		"/usr/share/zsh/vendor-completions/_strata":        "gen/completions/zsh/_strata",
		"/usr/share/fish/vendor_completions.d/strata.fish": "gen/completions/fish/strata.fish",
	}
	pages, err := filepath.Glob("man/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no page sources in packaging/man: %v", err)
	}
	for _, p := range pages {
		name := strings.TrimSuffix(filepath.Base(p), ".md")
		section := name[strings.LastIndex(name, ".")+1:]
		want["/usr/share/man/man"+section+"/"+name+".gz"] = "gen/man/" + name + ".gz"
	}
	for d, s := range want {
		if dst[d] != s {
			t.Errorf("strata.yaml installs %q as %s, want %q", dst[d], d, s)
		}
	}
	for _, m := range regexp.MustCompile(`PROGRAM="([^" ]+)`).FindAllStringSubmatch(krbd.UdevRules, -1) {
		if m[1] != layout.HelperPath {
			t.Errorf("50-strata-rbd.rules runs %s; the package installs the helper as %s", m[1], layout.HelperPath)
		}
	}
	for _, d := range definition.DefaultSearchPath {
		if strings.HasPrefix(d, "/run/") {
			continue // created at run time
		}
		if _, ok := dirs[d]; !ok {
			t.Errorf("search path directory %s is not in the package", d)
		}
	}
	if m := dirs["/etc/strata"]; m != 0o700 {
		t.Errorf("/etc/strata has mode %o, want 0700 (definitions may hold keys)", m)
	}
	if c.Scripts["postinstall"] == "" || c.Scripts["postremove"] == "" {
		t.Errorf("maintainer scripts missing: %v", c.Scripts)
	}
	for _, d := range c.Depends {
		if strings.Contains(d, "rados") || strings.Contains(d, "rbd") || strings.Contains(d, "ceph") {
			t.Errorf("the node package depends on %s: nodes need no Ceph library", d)
		}
	}
	for _, s := range []string{"scripts/postinstall", "scripts/postremove"} {
		if out, err := exec.Command("sh", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", s, err, out)
		}
	}
	if out, err := exec.Command("bash", "-n", "build.sh").CombinedOutput(); err != nil {
		t.Errorf("build.sh: %v\n%s", err, out)
	}
}

// The node package asks for the systemd the core chain needs, no newer: a
// newer one would refuse to install where containers work (EL8, Ubuntu
// 22.04); what needs more is refused by the generator on the node.
func TestNodePackageSystemdMinimum(t *testing.T) {
	c := readConfig(t, "strata.yaml")
	want := map[string]string{
		"deb": fmt.Sprintf("systemd (>= %d)", generator.MinimumSystemd),
		"rpm": fmt.Sprintf("systemd >= %d", generator.MinimumSystemd),
	}
	deps := map[string][]string{"deb": c.Depends, "rpm": c.Overrides["rpm"].Depends}
	for packager, w := range want {
		var got []string
		for _, d := range deps[packager] {
			if strings.HasPrefix(d, "systemd ") || d == "systemd" {
				got = append(got, d)
			}
		}
		if len(got) != 1 || got[0] != w {
			t.Errorf("%s: the package depends on %q, want %q", packager, got, w)
		}
	}
}

// The image tool's package is the one with the Ceph libraries.
func TestImagePackageLayout(t *testing.T) {
	c := readConfig(t, "strata-image.yaml")
	deps := strings.Join(c.Depends, " ")
	for _, d := range []string{"librados2", "librbd1", "squashfs-tools"} {
		if !strings.Contains(deps, d) {
			t.Errorf("strata-image does not depend on %s", d)
		}
	}
	var programs []string
	for _, f := range c.Contents {
		if strings.HasPrefix(f.Dst, "/usr/bin/") || strings.HasPrefix(f.Dst, "/usr/lib") {
			programs = append(programs, f.Dst)
		}
	}
	if strings.Join(programs, " ") != "/usr/bin/strata-image" {
		t.Errorf("strata-image installs %v, want /usr/bin/strata-image only", programs)
	}
}

// Both packages carry the license: Apache-2.0 in their metadata, the
// Debian copyright file in the .deb, the license text (%license) in the
// .rpm; LICENSE is the license's full text, and the copyright file is
// machine-readable (DEP-5): every Files paragraph has its Copyright and
// License, and every license named has its text.
func TestLicense(t *testing.T) {
	for _, name := range []string{"strata", "strata-image"} {
		c := readConfig(t, name+".yaml")
		if c.License != "Apache-2.0" {
			t.Errorf("%s.yaml: license %q, want Apache-2.0", name, c.License)
		}
		have := map[string]string{}
		for _, f := range c.Contents {
			have[f.Packager+" "+f.Dst] = f.Src + " " + f.Type
		}
		if got := have["deb /usr/share/doc/"+name+"/copyright"]; got != "legal/copyright " {
			t.Errorf("%s.yaml: the .deb's copyright file is %q", name, got)
		}
		if got := have["rpm /usr/share/licenses/"+name+"/LICENSE"]; got != "legal/LICENSE license" {
			t.Errorf("%s.yaml: the .rpm's license is %q", name, got)
		}
	}
	text, err := os.ReadFile("../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Apache License\n                           Version 2.0, January 2004",
		"TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION", "9. Accepting Warranty or Additional Liability.",
		"END OF TERMS AND CONDITIONS", "APPENDIX: How to apply the Apache License to your work."} {
		if !strings.Contains(string(text), want) {
			t.Errorf("LICENSE lacks %q: not the full Apache-2.0 text", want)
		}
	}
	checkDEP5(t, "copyright")
}

func checkDEP5(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	paras := strings.Split(strings.TrimSpace(string(b)), "\n\n")
	if !strings.HasPrefix(paras[0], "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n") {
		t.Errorf("%s: the header paragraph does not start with Format:", file)
	}
	used, texts, star := map[string]string{}, map[string]bool{}, ""
	for i, p := range paras[1:] {
		fields := map[string]string{}
		for _, line := range strings.Split(p, "\n") {
			if line == "" || line[0] == ' ' {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				t.Errorf("%s: paragraph %d: %q is neither a field nor a continuation", file, i+2, line)
			}
			fields[k] = strings.TrimSpace(v)
		}
		switch {
		case fields["Files"] != "":
			if fields["Copyright"] == "" || fields["License"] == "" {
				t.Errorf("%s: Files %s: want Copyright and License", file, fields["Files"])
			}
			if fields["Files"] == "*" {
				star = fields["License"]
			}
			for _, l := range strings.Split(fields["License"], " and ") {
				used[l] = fields["Files"]
			}
		case fields["License"] != "":
			if !strings.Contains(p, "\n ") {
				t.Errorf("%s: License %s has no text", file, fields["License"])
			}
			texts[fields["License"]] = true
		default:
			t.Errorf("%s: paragraph %d is neither Files nor License", file, i+2)
		}
	}
	for l, files := range used {
		if !texts[l] {
			t.Errorf("%s: %s (for %s) has no License paragraph with its text", file, l, files)
		}
	}
	if star != "Apache-2.0" {
		t.Errorf("%s: Files: * is not Apache-2.0", file)
	}
}

// The helper's path is said once (layout.HelperPath, what the generator
// writes into units); the static units and the udev rule the package
// installs run the same program, and the Makefile builds the path from
// PREFIX into the binaries and into what it installs.
func TestHelperPathAgrees(t *testing.T) {
	static, err := filepath.Glob("../units/static/*.service")
	if err != nil || len(static) < 2 {
		t.Fatalf("static units: %v, %v", static, err)
	}
	runs := regexp.MustCompile(`(?m)^Exec\w+=[-@:+!]*(\S+)`)
	for _, f := range static {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ms := runs.FindAllStringSubmatch(string(data), -1)
		if len(ms) == 0 {
			t.Errorf("%s runs nothing", f)
		}
		for _, m := range ms {
			if m[1] != layout.HelperPath {
				t.Errorf("%s runs %s; the generator's units run %s", f, m[1], layout.HelperPath)
			}
		}
	}
	for prefix, want := range map[string]string{"": layout.HelperPath, "/opt/strata": "/opt/strata/libexec/strata/strata-helper"} {
		args := []string{"-s", "-C", "..", "print-HELPER", "print-PACKAGED_HELPER", "print-LDFLAGS"}
		if prefix != "" {
			args = append(args, "PREFIX="+prefix)
		}
		out, err := exec.Command("make", args...).Output()
		if err != nil {
			t.Fatalf("make %s: %v", strings.Join(args, " "), err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 3 || lines[0] != want || lines[1] != layout.HelperPath ||
			!strings.Contains(lines[2], "-X github.com/strata-project/strata/internal/layout.HelperPath="+want) {
			t.Errorf("PREFIX=%q: make says HELPER, PACKAGED_HELPER, LDFLAGS =\n%s\nwant %s, %s and -X ...layout.HelperPath=%s", prefix, out, want, layout.HelperPath, want)
		}
	}
}
