package image

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress receives what a long operation is doing. A build goes through
// the phases "squashfs", "upload" and "verify"; Update is called with the
// bytes done so far (never from two goroutines at once), End once per Begin.
type Progress interface {
	Begin(phase string, total int64) // total bytes, 0 when not known
	Update(done int64)
	End(summary string)
	Note(msg string) // a line worth telling (e.g. "removing the old image")
}

// NopProgress reports nothing.
type NopProgress struct{}

func (NopProgress) Begin(string, int64) {}
func (NopProgress) Update(int64)        {}
func (NopProgress) End(string)          {}
func (NopProgress) Note(string)         {}

// NewProgress reports to w: a bar redrawn in place when w is a terminal,
// otherwise plain lines (at each tenth of the work, at most two a second).
func NewProgress(w io.Writer, terminal bool) Progress {
	if terminal {
		return &barProgress{w: w, now: time.Now}
	}
	return &lineProgress{w: w, now: time.Now}
}

// FormatBytes writes n in binary units: "196.0 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		if f < unit || u == "TiB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// FormatRate writes n bytes in d as a rate: "1.1 GiB/s".
func FormatRate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return FormatBytes(int64(float64(n)/d.Seconds())) + "/s"
}

type lineProgress struct {
	mu       sync.Mutex
	w        io.Writer
	now      func() time.Time
	phase    string
	total    int64
	start    time.Time
	last     time.Time
	lastTens int64
}

func (p *lineProgress) Begin(phase string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.total, p.start, p.last, p.lastTens = phase, total, p.now(), p.now(), 0
	if total > 0 {
		fmt.Fprintf(p.w, "%s: %s\n", phase, FormatBytes(total))
	} else {
		fmt.Fprintf(p.w, "%s: started\n", phase)
	}
}

func (p *lineProgress) Update(done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.total <= 0 || done >= p.total {
		return
	}
	tens := done * 10 / p.total
	now := p.now()
	if tens > p.lastTens && now.Sub(p.last) >= 500*time.Millisecond {
		p.lastTens, p.last = tens, now
		fmt.Fprintf(p.w, "%s: %d%% (%s of %s, %s)\n", p.phase, done*100/p.total,
			FormatBytes(done), FormatBytes(p.total), FormatRate(done, now.Sub(p.start)))
	}
}

func (p *lineProgress) End(summary string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s: done in %s: %s\n", p.phase, p.now().Sub(p.start).Round(time.Millisecond), summary)
}

func (p *lineProgress) Note(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, msg)
}

type barProgress struct {
	mu    sync.Mutex
	w     io.Writer
	now   func() time.Time
	phase string
	total int64
	start time.Time
	last  time.Time
	done  int64
	open  bool
}

const barWidth = 30

func (p *barProgress) Begin(phase string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.total, p.start, p.done, p.open = phase, total, p.now(), 0, true
	p.draw()
}

func (p *barProgress) Update(done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	if now := p.now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.draw()
	}
}

func (p *barProgress) draw() {
	p.last = p.now()
	elapsed := p.last.Sub(p.start)
	var line string
	if p.total > 0 {
		done := min(p.done, p.total)
		fill := int(done * barWidth / p.total)
		bar := strings.Repeat("=", fill)
		if fill < barWidth {
			bar += ">" + strings.Repeat(" ", barWidth-fill-1)
		}
		line = fmt.Sprintf("%-8s [%s] %3d%%  %s / %s  %s", p.phase, bar, done*100/p.total,
			FormatBytes(done), FormatBytes(p.total), FormatRate(done, elapsed))
	} else {
		// The size is not known ahead (a flatten, mksquashfs's output):
		// what is done so far, and how fast.
		line = fmt.Sprintf("%-8s %s  %s  %s", p.phase, FormatBytes(p.done), FormatRate(p.done, elapsed), elapsed.Round(100*time.Millisecond))
	}
	// \r and clear to the end of the line: redraw in place.
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
}

func (p *barProgress) End(summary string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.open {
		return
	}
	p.open = false
	fmt.Fprintf(p.w, "\r%-8s done in %s: %s\x1b[K\n", p.phase, p.now().Sub(p.start).Round(time.Millisecond), summary)
}

func (p *barProgress) Note(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprintf(p.w, "\r\x1b[K%s\n", msg)
		p.draw()
		return
	}
	fmt.Fprintln(p.w, msg)
}
