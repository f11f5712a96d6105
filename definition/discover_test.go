package definition

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The search path works like systemd's unit directories: the first
// directory holding a name wins, /dev/null masks, other files are ignored.
func TestDiscoverPrecedenceAndMasking(t *testing.T) {
	root := t.TempDir()
	etc, run, usr := filepath.Join(root, "etc"), filepath.Join(root, "run"), filepath.Join(root, "usr")
	write(t, filepath.Join(usr, "a.json"), "{}")  // overridden by etc's a.toml
	write(t, filepath.Join(etc, "a.toml"), "")    // wins
	write(t, filepath.Join(run, "b.yaml"), "")    // wins over usr
	write(t, filepath.Join(usr, "b.json"), "")    // hidden
	write(t, filepath.Join(usr, "c.json"), "")    // masked by etc
	write(t, filepath.Join(usr, "d.yml"), "")     // only here
	write(t, filepath.Join(etc, "README.md"), "") // not a definition
	write(t, filepath.Join(etc, ".e.json"), "")   // hidden file
	write(t, filepath.Join(etc, "f.json~"), "")   // editor backup
	if err := os.Symlink(os.DevNull, filepath.Join(etc, "c.json")); err != nil {
		t.Fatal(err)
	}
	got, problems := Discover([]string{etc, run, usr, filepath.Join(root, "missing")})
	want := []Source{
		{Name: "a", Path: filepath.Join(etc, "a.toml")},
		{Name: "b", Path: filepath.Join(run, "b.yaml")},
		{Name: "d", Path: filepath.Join(usr, "d.yml")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Discover = %v, want %v", got, want)
	}
	if len(problems) != 0 {
		t.Errorf("unexpected problems: %v", problems)
	}
}

func TestDiscoverSameNameInOneDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "x.json"), "")
	write(t, filepath.Join(dir, "x.yaml"), "")
	_, problems := Discover([]string{dir})
	want := "container \"x\" is defined by 2 files in one directory (" + filepath.Join(dir, "x.json") + ", " + filepath.Join(dir, "x.yaml") + "): keep one"
	if len(problems["x"]) != 1 || problems["x"][0].Message != want {
		t.Errorf("problems = %v, want %q", problems, want)
	}
}

func TestSearchPathEnv(t *testing.T) {
	t.Setenv(SearchPathEnv, "/a::/b")
	if got := SearchPath(); !reflect.DeepEqual(got, []string{"/a", "/b"}) {
		t.Errorf("SearchPath = %v", got)
	}
	os.Unsetenv(SearchPathEnv)
	if got := SearchPath(); !reflect.DeepEqual(got, DefaultSearchPath) {
		t.Errorf("SearchPath = %v, want the default", got)
	}
}

// A file holding a secret that others can read gets a warning; a private
// one does not. The secret itself is never in any message.
func TestExposedSecretWarning(t *testing.T) {
	data, err := os.ReadFile("testdata/seed.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "test.json")
	write(t, path, string(data))
	if _, problems := Load(path); len(problems) != 0 {
		t.Errorf("mode 0600: unexpected problems %v", problems)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	def, problems := Load(path)
	if def == nil || len(problems) != 1 || problems[0].Severity != Warning {
		t.Fatalf("mode 0644: want one warning, got %v", problems)
	}
	for _, s := range def.Secrets() {
		if s == "" || strings.Contains(problems.Error(), s) {
			t.Errorf("secret %q in message %q", s, problems.Error())
		}
	}
}

// Any symlink that leads to the null device masks, as in systemd; a link
// to another device does not (the generator refuses to read it).
func TestDiscoverMaskingByAnyLinkToNull(t *testing.T) {
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"abs.json": os.DevNull, "rel.json": rel, "zero.json": "/dev/zero", "dangling.json": "/nonexistent"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("abs.json", filepath.Join(dir, "chain.json")); err != nil {
		t.Fatal(err)
	}
	got, _ := Discover([]string{dir})
	want := []Source{{Name: "dangling", Path: filepath.Join(dir, "dangling.json")}, {Name: "zero", Path: filepath.Join(dir, "zero.json")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Discover = %v, want %v", got, want)
	}
}

// Scan says which names are masked and why every other file is skipped, and
// finds the same definitions as Discover.
func TestScanSaysWhatIsSkipped(t *testing.T) {
	etc, lib := t.TempDir(), t.TempDir()
	for _, f := range []string{"demo.json", "Demo.JSON", "demo.conf", "demo.json~", ".demo.json.swp"} {
		if err := os.WriteFile(filepath.Join(etc, f), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(etc, "notes"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(etc, "vendor.yaml")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vendor.json", "demo.toml"} {
		if err := os.WriteFile(filepath.Join(lib, f), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := Scan([]string{etc, lib})
	if len(f.Sources) != 1 || f.Sources[0].Path != filepath.Join(etc, "demo.json") {
		t.Errorf("sources: %+v", f.Sources)
	}
	if len(f.Masked) != 1 || f.Masked[0].Name != "vendor" || f.Masked[0].Path != filepath.Join(etc, "vendor.yaml") {
		t.Errorf("masked: %+v", f.Masked)
	}
	why := map[string]string{}
	for _, s := range f.Skipped {
		why[s.Path] = s.Why
	}
	want := map[string]string{
		filepath.Join(etc, "Demo.JSON"):      "lower case",
		filepath.Join(etc, "demo.conf"):      "not a definition",
		filepath.Join(etc, "demo.json~"):     "backup",
		filepath.Join(etc, ".demo.json.swp"): "hidden",
		filepath.Join(etc, "notes"):          "a directory",
		filepath.Join(lib, "vendor.json"):    "overridden by " + filepath.Join(etc, "vendor.yaml"),
		filepath.Join(lib, "demo.toml"):      "overridden by " + filepath.Join(etc, "demo.json"),
	}
	if len(why) != len(want) {
		t.Errorf("skipped %d files, want %d: %+v", len(why), len(want), f.Skipped)
	}
	for p, w := range want {
		if !strings.Contains(why[p], w) {
			t.Errorf("%s: skipped because %q, want %q in it", p, why[p], w)
		}
	}
	srcs, _ := Discover([]string{etc, lib})
	if !reflect.DeepEqual(srcs, f.Sources) {
		t.Errorf("Discover found %+v, Scan %+v", srcs, f.Sources)
	}
}
