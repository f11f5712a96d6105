package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/image"
	"github.com/strata-project/strata/internal/verity"
)

// A definition as --print-definition writes it: the fields in the order
// docs/DEFINITIONS.md gives them.
type defOut struct {
	Command     string            `json:"command"`
	Systemd     bool              `json:"systemd"`
	State       string            `json:"state"`
	Environment map[string]string `json:"environment,omitempty"`
	NspawnArgs  []string          `json:"nspawn_args,omitempty"`
	Mount       defMount          `json:"mount"`
}

type defMount struct {
	Kind    string     `json:"kind"`
	Overlay defOverlay `json:"overlay"`
}

type defOverlay struct {
	Lower []defLower `json:"lower"`
}

type defLower struct {
	Kind   string    `json:"kind"`
	Attach defAttach `json:"attach"`
}

type defAttach struct {
	FSType string     `json:"fs_type"`
	Attach any        `json:"attach"`
	Verity *defVerity `json:"verity,omitempty"`
}

type defVerity struct {
	RootHash string `json:"root_hash"`
	Signed   bool   `json:"signed,omitempty"` // a signed build: nodes check the signature too
}

// rbdLower and loopLower are the attach of the image just built.
func rbdLower(r image.Ref, monitors []string) any {
	type rbd struct {
		Monitors  []string          `json:"monitors"`
		Pool      string            `json:"pool"`
		Namespace string            `json:"namespace,omitempty"`
		Image     string            `json:"image"`
		Snapshot  string            `json:"snapshot,omitempty"`
		Options   map[string]string `json:"options"`
	}
	// A read-only user of the nodes' own, never the admin who built it
	// (docs/schemes/rbd.md, "Give nodes a read-only key").
	opts := map[string]string{"name": "node", "keyring": "/etc/ceph/ceph.client.node.keyring"}
	return map[string]any{"kind": "rbd", "rbd": rbd{Monitors: monitors, Pool: r.Pool, Namespace: r.Namespace,
		Image: r.Image, Snapshot: r.Snapshot, Options: opts}}
}

func loopLower(file string) any {
	return map[string]any{"kind": "loopback", "loopback": map[string]string{"base": "root", "path": file}}
}

// printDefinition writes a definition for the built image: it boots when
// the image holds systemd, otherwise it runs the image's Entrypoint and
// Cmd with its Env and WorkingDir. It is checked as strata validate would
// check NAME.json; its warnings are returned. A --verity build pins its
// root hash (verity.root_hash); a signed one asks for the signature to be
// checked too (verity.signed).
func printDefinition(name string, oci *image.OCIInfo, lower any, v *verity.Params) ([]byte, definition.Problems, error) {
	att := defAttach{FSType: "squashfs", Attach: lower}
	if v != nil {
		att.Verity = &defVerity{RootHash: v.RootHashHex(), Signed: len(v.Signature) > 0}
	}
	d := defOut{State: "running", Mount: defMount{Kind: "overlay", Overlay: defOverlay{
		Lower: []defLower{{Kind: "attach", Attach: att}}}}}
	if oci.Systemd {
		d.Command, d.Systemd = "/usr/lib/systemd/systemd", true
	} else {
		argv := append(append([]string{}, oci.Entrypoint...), oci.Cmd...)
		if len(argv) == 0 {
			return nil, nil, errors.New("the image holds no systemd and its configuration has no Entrypoint or Cmd: there is nothing to run (write the definition's command yourself)")
		}
		d.Command = shellJoin(argv)
		d.Environment = envMap(oci.Env)
		if oci.WorkingDir != "" {
			d.NspawnArgs = []string{"--chdir=" + oci.WorkingDir}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, nil, err
	}
	_, problems := definition.Parse(name+".json", buf.Bytes())
	if problems.HasErrors() {
		return buf.Bytes(), problems, fmt.Errorf("the definition made from the image does not validate:\n%s", problemList(problems))
	}
	return buf.Bytes(), problems, nil
}

func problemList(ps definition.Problems) string {
	var lines []string
	for _, p := range ps {
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
}

// envMap turns the image's NAME=VALUE list into a definition's map.
func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if k != "" {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellJoin quotes argv as definition.SplitCommand reads it back.
func shellJoin(argv []string) string {
	words := make([]string, len(argv))
	for i, w := range argv {
		if plainWord.MatchString(w) {
			words[i] = w
		} else {
			words[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return strings.Join(words, " ")
}
