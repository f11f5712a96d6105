package image

import (
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLineProgress(t *testing.T) {
	var b strings.Builder
	clk := &fakeClock{t: time.Unix(0, 0)}
	p := &lineProgress{w: &b, now: clk.now}
	p.Begin("upload", 100<<20)
	for i := int64(1); i <= 100; i++ {
		clk.t = clk.t.Add(100 * time.Millisecond)
		p.Update(i << 20)
	}
	p.End("ok")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	// Begin, at most one line a half second (10 s of updates: ~10), End.
	if len(lines) < 5 || len(lines) > 12 {
		t.Errorf("%d lines:\n%s", len(lines), b.String())
	}
	if lines[0] != "upload: 100.0 MiB" || !strings.HasPrefix(lines[len(lines)-1], "upload: done in 10s: ok") {
		t.Errorf("first/last lines:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "upload: 50% (50.0 MiB of 100.0 MiB, 10.0 MiB/s)") {
		t.Errorf("no 50%% line:\n%s", b.String())
	}
	if strings.Contains(b.String(), "\r") {
		t.Error("carriage returns in line mode")
	}
}

func TestBarProgress(t *testing.T) {
	var b strings.Builder
	clk := &fakeClock{t: time.Unix(0, 0)}
	p := &barProgress{w: &b, now: clk.now}
	p.Begin("upload", 4<<20)
	clk.t = clk.t.Add(time.Second)
	p.Update(2 << 20)
	p.Note("hello")
	p.End("ok")
	out := b.String()
	for _, want := range []string{"\rupload   [===============>              ]  50%  2.0 MiB / 4.0 MiB  2.0 MiB/s", "\r\x1b[Khello\n", "done in 1s: ok\x1b[K\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("bar output %q lacks %q", out, want)
		}
	}
	b.Reset()
	p.Begin("flatten", 0)
	clk.t = clk.t.Add(2 * time.Second)
	p.Update(8 << 20)
	p.End("x")
	for _, want := range []string{"\rflatten  0 B  -  0s", "\rflatten  8.0 MiB  4.0 MiB/s  2s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("unknown total: %q lacks %q", b.String(), want)
		}
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 196 << 20: "196.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := FormatRate(1<<30, time.Second); got != "1.0 GiB/s" {
		t.Errorf("rate %q", got)
	}
	if got := FormatRate(1, 0); got != "-" {
		t.Errorf("rate %q", got)
	}
}
