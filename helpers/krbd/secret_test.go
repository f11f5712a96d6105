//go:build linux

package krbd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// secretForms are the texts that would betray the secret: as given, without
// padding, and long fragments of it.
func secretForms() []string {
	s := testSecret
	return []string{s, strings.TrimRight(s, "="), s[:16], s[8:24], s[20:36]}
}

func assertNoSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, f := range secretForms() {
		if strings.Contains(text, f) {
			t.Errorf("%s contains the secret (%q): %s", where, f, text)
			return
		}
	}
}

// errTexts renders an error every way a caller might print or log it.
func errTexts(err error) []string {
	if err == nil {
		return nil
	}
	out := []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%s", err), fmt.Sprintf("%q", err)}
	var e *Error
	if errors.As(err, &e) {
		out = append(out, fmt.Sprintf("%#v", *e), e.Msg, e.Line, strings.Join(e.KernelLog, "\n"))
	}
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		out = append(out, u.Error())
	}
	return out
}

// TestSecretNeverLeaks runs every path that can fail or log, on the keyring
// path and on the secret= fallback, and greps every error text and log line
// (and, on the keyring path, the written line) for the secret.
func TestSecretNeverLeaks(t *testing.T) {
	errnos := []syscall.Errno{0, syscall.ENOENT, syscall.EACCES, syscall.EPERM, syscall.ETIMEDOUT,
		syscall.EAGAIN, syscall.ENXIO, syscall.EINVAL, syscall.ENODEV, syscall.ENAMETOOLONG,
		syscall.ESHUTDOWN, syscall.ENOSPC, syscall.EIO, syscall.EXDEV}
	for _, keyring := range []bool{true, false} {
		for _, errno := range errnos {
			name := fmt.Sprintf("keyring=%v/errno=%d", keyring, errno)
			t.Run(name, func(t *testing.T) {
				k := newFakeKernel(t)
				if !keyring {
					k.keyring.addErr = syscall.EPERM
				}
				k.addErr = errno
				// A kernel log line that (absurdly) quotes the secret.
				k.kmsg = []string{"rbd: image rootfs: image uses unsupported features: 0x40", "libceph: bogus " + testSecret}
				s := testSpec()
				for _, secret := range []string{testSecret, testSecret + "\n", strings.TrimRight(testSecret, "=")} {
					_, err := k.mapper().Map(context.Background(), k.sysfs, k.dev, s, secret)
					if errno != 0 && err == nil {
						t.Fatal("no error")
					}
					for _, txt := range errTexts(err) {
						assertNoSecret(t, "error", txt)
					}
					if errno != 0 && !keyring {
						var e *Error
						if errors.As(err, &e) && !strings.Contains(e.Line, "secret=<redacted>") {
							t.Errorf("fallback line not redacted in the error: %q", e.Line)
						}
					}
				}
				for _, l := range k.logs {
					assertNoSecret(t, "log line", l)
				}
				for _, w := range k.writesTo("add") {
					if keyring {
						assertNoSecret(t, "written line (keyring path)", w.data)
					} else if !strings.Contains(w.data, ",secret="+testSecret+",") {
						t.Errorf("fallback line lacks the secret: %q", w.data)
					}
				}
			})
		}
	}
}

func TestSecretNeverLeaksFromOtherFailures(t *testing.T) {
	k := newFakeKernel(t)
	m := k.mapper()
	ctx := context.Background()
	var errs []error

	// The secret pasted into the options.
	s := testSpec()
	s.Options = []string{"secret=" + testSecret}
	_, err := m.Map(ctx, k.sysfs, k.dev, s, testSecret)
	errs = append(errs, err)
	s.Options = []string{"key=" + testSecret}
	_, err = m.Map(ctx, k.sysfs, k.dev, s, testSecret)
	errs = append(errs, err)
	errs = append(errs, ValidateOptions([]string{"secret=" + testSecret}), ValidateOption("key="+testSecret))

	// A keyring failure that is not a fallback case.
	k.keyring.addErr = fmt.Errorf("odd keyring failure for %s: %w", testSecret, syscall.EDQUOT)
	_, err = m.Map(ctx, k.sysfs, k.dev, testSpec(), testSecret)
	errs = append(errs, err)
	k.keyring.addErr = nil

	// A write failing with something that is not an errno and quotes the
	// data it was given (secret= fallback, so the data holds the secret).
	k.keyring.addErr = syscall.ENOSYS
	m.Write = func(path string, data []byte) error { return fmt.Errorf("device said no to %q", data) }
	_, err = m.Map(ctx, k.sysfs, k.dev, testSpec(), testSecret)
	errs = append(errs, err)

	// A corrupted secret close to the real one.
	bad := testSecret[:len(testSecret)-4] + "!!=="
	_, err = m.Map(ctx, k.sysfs, k.dev, testSpec(), bad)
	errs = append(errs, err)
	_, err = AddLine(testSpec(), SecretAuth(bad))
	errs = append(errs, err)

	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		for _, txt := range errTexts(err) {
			assertNoSecret(t, fmt.Sprintf("case %d", i), txt)
			if strings.Contains(txt, bad[:30]) {
				t.Errorf("case %d echoes the bad secret: %s", i, txt)
			}
		}
	}
	for _, l := range k.logs {
		assertNoSecret(t, "log line", l)
	}
}
