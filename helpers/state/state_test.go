package state

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestRecordsRoundTrip(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	a := Attachment{ID: "loop_x_1", Release: []string{"loop-detach", "--link=/run/strata/dev/loop_x_1"}, Device: "/dev/loop3", File: "/srv/x.sqfs"}
	if err := s.PutAttachment(a); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Attachment("loop_x_1")
	if err != nil || !ok || !reflect.DeepEqual(got, a) {
		t.Fatalf("read back %+v %v %v", got, ok, err)
	}
	if _, ok, err := s.Attachment("other"); ok || err != nil {
		t.Errorf("a missing record: %v %v", ok, err)
	}
	all, err := s.Attachments()
	if err != nil || len(all) != 1 {
		t.Fatalf("list: %v %v", all, err)
	}
	if err := s.RemoveAttachment("loop_x_1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveAttachment("loop_x_1"); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	if all, _ := s.Attachments(); len(all) != 0 {
		t.Errorf("left: %v", all)
	}
}

func TestContainerNamesReadOnlyTheDirectory(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if names, err := s.ContainerNames(); err != nil || names != nil {
		t.Fatalf("no directory yet: %v %v", names, err)
	}
	for _, n := range []string{"web", "db"} {
		if err := s.PutContainer(Container{Name: n, Generation: "g"}); err != nil {
			t.Fatal(err)
		}
	}
	// A half-written record and a stray file are not containers.
	os.WriteFile(filepath.Join(s.Dir, containers, "x.json.tmp"), nil, 0o644)
	os.Mkdir(filepath.Join(s.Dir, containers, "d.json"), 0o755)
	names, err := s.ContainerNames()
	if err != nil || !reflect.DeepEqual(names, []string{"db", "web"}) {
		t.Errorf("names %v %v", names, err)
	}
}

func TestRefusesPathsAsNames(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	for _, n := range []string{"", "..", "a/b", "x\x00"} {
		if err := s.PutContainer(Container{Name: n}); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
}
