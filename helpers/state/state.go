// Package state holds what Strata records on a node while containers run,
// under /run/strata/state (gone at reboot, like everything it describes):
// for each attached device, how to release it; for each started container,
// which definition it started from. Teardown reads these records, never the
// definitions, so it works whether a definition is unchanged, edited,
// removed or broken since the container started.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Store is a directory of records.
type Store struct{ Dir string }

// Attachment is a device the helper attached.
type Attachment struct {
	ID      string   `json:"id"`      // the instance of strata-attach@ID.service
	Release []string `json:"release"` // helper arguments that release it (contract.Parse)
	Device  string   `json:"device,omitempty"`
	File    string   `json:"file,omitempty"` // a loop device's backing file
}

// Container is a container that was started.
type Container struct {
	Name       string `json:"name"`
	Generation string `json:"generation"` // of the units it started with
}

const (
	attachments = "attachments"
	containers  = "containers"
	health      = "health"
)

// PutAttachment records a, replacing an older record of the same ID.
func (s Store) PutAttachment(a Attachment) error { return s.put(attachments, a.ID, a) }

// Attachment reads the record of id; ok is false when there is none.
func (s Store) Attachment(id string) (a Attachment, ok bool, err error) {
	ok, err = s.get(attachments, id, &a)
	return a, ok, err
}

// Attachments lists every attachment record, by ID.
func (s Store) Attachments() ([]Attachment, error) {
	var out []Attachment
	err := s.each(attachments, func(name string) error {
		var a Attachment
		if _, err := s.get(attachments, name, &a); err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

// AttachmentIDs lists the attachments with a record, sorted, reading only
// the directory (for the generator at boot).
func (s Store) AttachmentIDs() ([]string, error) {
	var out []string
	err := s.each(attachments, func(name string) error { out = append(out, name); return nil })
	return out, err
}

// RemoveAttachment forgets id; forgetting what is not there is no error.
func (s Store) RemoveAttachment(id string) error { return s.remove(attachments, id) }

// PutContainer records c.
// Health is the last result of a container's health check.
type Health struct {
	Name      string    `json:"name"`
	Status    string    `json:"status"`     // HealthStarting, HealthHealthy or HealthUnhealthy
	Failures  int       `json:"failures"`   // failed checks in a row
	LastCheck time.Time `json:"last_check"` // zero before the first check
	LastExit  int       `json:"last_exit"`  // the check's exit status; -1 when it could not run or timed out
	Output    string    `json:"output"`     // the last lines the check printed
}

// Health statuses.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// PutHealth records a container's health.
func (s Store) PutHealth(h Health) error { return s.put(health, h.Name, h) }

// Health returns a container's recorded health.
func (s Store) Health(name string) (h Health, ok bool, err error) {
	ok, err = s.get(health, name, &h)
	return h, ok, err
}

// RemoveHealth forgets a container's health record.
func (s Store) RemoveHealth(name string) error { return s.remove(health, name) }

func (s Store) PutContainer(c Container) error { return s.put(containers, c.Name, c) }

// Container reads the record of name.
func (s Store) Container(name string) (c Container, ok bool, err error) {
	ok, err = s.get(containers, name, &c)
	return c, ok, err
}

// ContainerNames lists the containers with a record, sorted. It reads only
// the directory, so the generator can call it at boot cheaply.
func (s Store) ContainerNames() ([]string, error) {
	var out []string
	err := s.each(containers, func(name string) error { out = append(out, name); return nil })
	return out, err
}

// RemoveContainer forgets name.
func (s Store) RemoveContainer(name string) error { return s.remove(containers, name) }

func (s Store) path(kind, name string) (string, error) {
	// Names are unit instance names: never a path.
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return "", fmt.Errorf("state: bad record name %q", name)
	}
	return filepath.Join(s.Dir, kind, name+".json"), nil
}

// put writes atomically: a reader sees the old record or the new one.
func (s Store) put(kind, name string, v any) error {
	p, err := s.path(kind, name)
	if err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (s Store) get(kind, name string, v any) (bool, error) {
	p, err := s.path(kind, name)
	if err != nil {
		return false, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("state: %s: %v", p, err)
	}
	return true, nil
}

func (s Store) remove(kind, name string) error {
	p, err := s.path(kind, name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (s Store) each(kind string, fn func(name string) error) error {
	entries, err := os.ReadDir(filepath.Join(s.Dir, kind))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && e.Type().IsRegular() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if err := fn(n); err != nil {
			return err
		}
	}
	return nil
}
