package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/strata-project/strata/generator"
)

// journalSocket is journald's native protocol socket (systemd.journal-fields(7)).
const journalSocket = "/run/systemd/journal/socket"

// logger sends each record where it will be seen, all under the identifier
// strata-generator, so that `journalctl -b -t strata-generator` finds them
// whichever way they went: the journal's native socket when it is there
// (after boot: daemon-reload; a datagram sent without waiting, so a
// journald that does not read can never block systemd, which waits for
// us), else the kernel log (early boot, before the journal), else stderr
// (a terminal, or a node that is a container and has no /dev/kmsg).
type logger struct {
	journal string    // the native socket's path, "" for none
	kmsg    io.Writer // takes "<LEVEL>strata-generator[PID]: message" records; nil for none
	stderr  io.Writer
	// unheard keeps what only stderr got when systemd runs us: for the
	// journal to replay at boot (generator.AddLogReplay).
	unheard *[]generator.Record
}

func newLogger() *logger {
	l := &logger{stderr: os.Stderr}
	if !bySystemd() {
		return l // an interactive run prints and nothing more
	}
	l.unheard = &[]generator.Record{}
	if _, err := os.Stat(journalSocket); err == nil {
		l.journal = journalSocket
	}
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		l.kmsg = f
	}
	return l
}

func (l *logger) printf(level int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if l.journal != "" && sendJournal(l.journal, level, msg) == nil {
		return
	}
	if l.kmsg != nil {
		// One write per record: /dev/kmsg takes a whole record per write.
		if _, err := fmt.Fprintf(l.kmsg, "<%d>%s[%d]: %s\n", level, generator.Name, os.Getpid(), msg); err == nil {
			return
		}
	}
	fmt.Fprintf(l.stderr, "%s: %s\n", generator.Name, msg)
	if l.unheard != nil {
		*l.unheard = append(*l.unheard, generator.Record{Priority: level, Message: msg})
	}
}

// bySystemd tells a run by systemd from one by hand: systemd (since 251)
// sets $SYSTEMD_SCOPE for generators; older ones give no terminal. A test
// of stderr alone is not enough: in a container, systemd's stderr is the
// console, a terminal.
func bySystemd() bool {
	if os.Getenv("SYSTEMD_SCOPE") != "" {
		return true
	}
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice == 0
}

func (l *logger) close() {
	if c, ok := l.kmsg.(io.Closer); ok {
		c.Close()
	}
}

// sendJournal sends one record to journald's native socket. It fails
// rather than wait: a full socket buffer (EAGAIN), no journald behind a
// stale socket file (ECONNREFUSED), a record too large; the caller then
// logs elsewhere.
func sendJournal(path string, level int, msg string) error {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	return syscall.Sendto(fd, journalRecord(level, msg), syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, &syscall.SockaddrUnix{Name: path})
}

// journalRecord encodes the fields of one record in the native protocol;
// MESSAGE in the binary form, which takes any byte, newlines included.
func journalRecord(level int, msg string) []byte {
	b := fmt.Appendf(nil, "PRIORITY=%d\nSYSLOG_IDENTIFIER=%s\nSYSLOG_PID=%d\nMESSAGE\n", level, generator.Name, os.Getpid())
	b = binary.LittleEndian.AppendUint64(b, uint64(len(msg)))
	b = append(b, msg...)
	return append(b, '\n')
}
