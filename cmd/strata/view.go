package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/strata-project/strata/client"
	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/helpers/state"
	"github.com/strata-project/strata/internal/layout"
)

// The views are what list and status print: built from the client's data
// and the definitions, marshalled as is for --json and drawn as text
// otherwise, so both outputs always say the same.

// unitView is one unit's state.
type unitView struct {
	Unit        string `json:"unit"`
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
	Result      string `json:"result,omitempty"` // services and mounts: how the last run ended
	Job         string `json:"job,omitempty"`    // type of a pending job
	What        string `json:"what,omitempty"`   // mounts: the device (or fs name)
	Where       string `json:"where,omitempty"`  // mounts: the mount point
	Image       string `json:"image,omitempty"`  // attach units: the image (file, RBD image@snap, iSCSI LUN)
}

func viewUnit(u *client.Unit) unitView {
	return unitView{Unit: u.Name, ActiveState: u.ActiveState, SubState: u.SubState,
		Result: u.Result, Job: u.JobType, What: u.What, Where: u.Where, Image: u.Image()}
}

// machineView is the container's machine as machined has it.
type machineView struct {
	Name          string `json:"name"`
	State         string `json:"state"`
	Leader        uint32 `json:"leader"`
	Class         string `json:"class"`
	Service       string `json:"service"`
	RootDirectory string `json:"root_directory"`
}

func viewMachine(m *client.Machine) *machineView {
	if m == nil {
		return nil
	}
	return &machineView{Name: m.Name, State: m.State, Leader: m.Leader, Class: m.Class,
		Service: m.Service, RootDirectory: m.RootDirectory}
}

// defined is a container as the search path defines it.
type defined struct {
	Name       string
	Source     string
	Invalid    bool
	Problems   definition.Problems
	Generation string // of the units it gives now
	Masked     bool   // Source is the link to /dev/null
}

// listEntry is one line of `strata list`.
type listEntry struct {
	Name     string              `json:"name"`
	Source   string              `json:"source"`
	Invalid  bool                `json:"invalid"`
	Problems definition.Problems `json:"problems,omitempty"`
	// Loaded: systemd has Strata's drop-in for the container unit. False
	// for a definition added since the last reload, or one whose name no
	// unit can carry.
	Loaded bool `json:"loaded"`
	// RestartToApply: it runs, started from other units than its
	// definition gives now (edited since): a restart applies the edit.
	RestartToApply bool `json:"restart_to_apply"`
	// ChangedOnDisk: the definition changed since systemd loaded it
	// (systemd's NeedDaemonReload): strata reload applies it.
	ChangedOnDisk bool `json:"changed_on_disk"`
	Masked        bool `json:"masked"`  // Source links to /dev/null
	AtBoot        bool `json:"at_boot"` // a boot target wants the container
	// Failed names the chain's units in the failed state, the container's first.
	Failed []string `json:"failed"`
	unitView
	Machine *machineView `json:"machine"` // null when not registered
	Layers  []unitView   `json:"layers"`  // the chain's mounts: root, layers, upper
}

func viewListEntry(d defined, ct *client.Container) listEntry {
	e := listEntry{Name: d.Name, Source: d.Source, Invalid: d.Invalid, Problems: d.Problems, Masked: d.Masked,
		Layers: []unitView{}, Failed: []string{}}
	if ct == nil {
		return e
	}
	root := ct.Unit()
	e.Loaded = root.HasStrataDropIn()
	e.ChangedOnDisk = root.NeedDaemonReload
	e.AtBoot = root.AtBoot
	for _, u := range ct.Chain.Failed() {
		e.Failed = append(e.Failed, u.Name)
	}
	e.unitView = viewUnit(root)
	e.RestartToApply = root.ActiveState == "active" && restartToApply(d.Name, d.Generation)
	e.Machine = viewMachine(ct.Machine)
	for _, m := range ct.Chain.Mounts() {
		e.Layers = append(e.Layers, viewUnit(m))
	}
	return e
}

// writeList draws the list as a table, or says where nothing was found.
func writeList(w io.Writer, entries []listEntry) error {
	if len(entries) == 0 {
		_, err := fmt.Fprintf(w, "no containers defined in %s\n", strings.Join(definition.SearchPath(), ", "))
		return err
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tBOOT\tMACHINE\tMOUNTS\tSOURCE\tNOTE")
	for _, e := range entries {
		machine, boot := "-", "-"
		if e.Machine != nil {
			machine = e.Machine.State
		}
		if e.AtBoot {
			boot = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, listState(e), boot, machine, listMounts(e), e.Source, listNote(e))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// An empty last column leaves the padding of the one before it.
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		if l == "" {
			continue
		}
		if _, err := io.WriteString(w, strings.TrimRight(l, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// listState is the container unit's state, as systemctl shows it.
func listState(e listEntry) string {
	switch {
	case e.Masked:
		return "masked"
	case e.Unit == "":
		return "-"
	}
	state := e.ActiveState + " (" + e.SubState + ")"
	if e.Result != "" && e.Result != "success" {
		state += ", result " + e.Result
	}
	if e.Job != "" {
		state += ", " + e.Job + " queued"
	}
	return state
}

// listMounts counts the chain's mounts that are up, "-" when none is: a
// stopped container's mounts are down, which is no news.
func listMounts(e listEntry) string {
	up := 0
	for _, l := range e.Layers {
		if l.ActiveState == "active" {
			up++
		}
	}
	if up == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d mounted", up, len(e.Layers))
}

// listNote says what needs attention in a list entry.
func listNote(e listEntry) string {
	var notes []string
	switch {
	case e.Masked:
		return "masked: " + e.Source + " links to /dev/null"
	case e.Source == "":
		notes = append(notes, "definition removed: it runs until stopped")
	case e.Invalid:
		notes = append(notes, "invalid definition: see strata validate")
	case e.Unit != "" && !e.Loaded:
		notes = append(notes, "not loaded: run strata reload")
	case e.ChangedOnDisk:
		notes = append(notes, "changed on disk: run strata reload")
	case e.RestartToApply:
		notes = append(notes, "runs an older definition: restart to apply")
	}
	if len(e.Failed) > 0 {
		notes = append(notes, "failed: "+strings.Join(e.Failed, ", "))
	}
	return strings.Join(notes, "; ")
}

// writeOrphans lists what no running container needs, if anything.
func writeOrphans(w io.Writer, found []orphan) {
	if len(found) == 0 {
		return
	}
	fmt.Fprintln(w, "\nNot needed by any running container (strata gc releases it):")
	for _, o := range found {
		fmt.Fprintf(w, "  %s %s: %s\n", o.Kind, o.Name, o.Why)
	}
}

// nodeView is a unit in the status tree.
type nodeView struct {
	unitView
	Journal    []string    `json:"journal,omitempty"` // failed units: their last journal lines
	JournalErr string      `json:"journal_error,omitempty"`
	Children   []*nodeView `json:"children,omitempty"`
}

// statusView is `strata status NAME`.
type statusView struct {
	Name string `json:"name"`
	// Source is the definition in the search path ("" when there is none:
	// the units systemd has then come from a definition removed since).
	Source   string              `json:"source"`
	Invalid  bool                `json:"invalid"`
	Problems definition.Problems `json:"problems,omitempty"`
	Loaded   bool                `json:"loaded"` // as in listEntry
	// RestartToApply, ChangedOnDisk, AtBoot as in listEntry.
	RestartToApply bool         `json:"restart_to_apply"`
	ChangedOnDisk  bool         `json:"changed_on_disk"`
	AtBoot         bool         `json:"at_boot"`
	Machine        *machineView `json:"machine"`
	// Health is the last health check's record (nil: no check recorded).
	Health *state.Health `json:"health"`
	Tree   *nodeView     `json:"tree"`
}

// viewStatus builds the status view; failures holds the journal of the
// chain's failed units, by unit name.
func viewStatus(d defined, ct *client.Container, failures []client.Failure) statusView {
	byUnit := map[string]client.Failure{}
	for _, f := range failures {
		byUnit[f.Unit.Name] = f
	}
	var build func(n *client.Node) *nodeView
	build = func(n *client.Node) *nodeView {
		v := &nodeView{unitView: viewUnit(n.Unit)}
		if f, ok := byUnit[n.Name]; ok {
			v.Journal = f.Journal
			if f.JournalErr != nil {
				v.JournalErr = f.JournalErr.Error()
			}
		}
		for _, c := range n.Children {
			v.Children = append(v.Children, build(c))
		}
		return v
	}
	return statusView{
		Name: d.Name, Source: d.Source, Invalid: d.Invalid, Problems: d.Problems,
		Loaded:         ct.Unit().HasStrataDropIn(),
		RestartToApply: ct.Unit().ActiveState == "active" && restartToApply(d.Name, d.Generation),
		ChangedOnDisk:  ct.Unit().NeedDaemonReload,
		AtBoot:         ct.Unit().AtBoot,
		Machine:        viewMachine(ct.Machine),
		Health:         recordedHealth(d.Name, ct.Unit().ActiveState),
		Tree:           build(ct.Chain.Tree()),
	}
}

// writeStatus draws the status: a header, then the chain as a tree.
func writeStatus(w io.Writer, s statusView) {
	fmt.Fprintf(w, "Container:  %s\n", s.Name)
	switch {
	case s.Source == "":
		fmt.Fprintf(w, "Definition: none in the search path (%s)\n", strings.Join(definition.SearchPath(), ":"))
	case s.Invalid:
		fmt.Fprintf(w, "Definition: %s (invalid)\n", s.Source)
		for _, p := range s.Problems {
			fmt.Fprintf(w, "            %s\n", p)
		}
	default:
		fmt.Fprintf(w, "Definition: %s\n", s.Source)
	}
	if !s.Loaded && s.Source != "" {
		fmt.Fprintln(w, "            systemd has no Strata unit for it: run strata reload")
	}
	if s.ChangedOnDisk {
		fmt.Fprintln(w, "            changed on disk: run strata reload")
	}
	if s.RestartToApply {
		fmt.Fprintln(w, "            it runs an older version of this definition: restart to apply (strata restart "+s.Name+")")
	}
	if m := s.Machine; m != nil {
		fmt.Fprintf(w, "Machine:    %s, leader PID %d\n", m.State, m.Leader)
	} else {
		fmt.Fprintln(w, "Machine:    not registered")
	}
	if s.AtBoot {
		fmt.Fprintln(w, "Boot:       starts at boot")
	} else {
		fmt.Fprintln(w, "Boot:       not started at boot")
	}
	if h := s.Health; h != nil {
		fmt.Fprintf(w, "Health:     %s\n", healthLine(h))
	}
	fmt.Fprintln(w)
	writeNode(w, s.Tree, "", "")
}

// writeNode draws n and its subtree. first prefixes n's own line, rest the
// lines below it (its journal and children), like systemctl list-dependencies.
func writeNode(w io.Writer, n *nodeView, first, rest string) {
	fmt.Fprintf(w, "%s%s\n", first, unitLine(n.unitView))
	// Journal lines hang under the unit, inside the tree's lines.
	indent := rest + "   "
	if len(n.Children) > 0 {
		indent = rest + "│  "
	}
	for _, l := range n.Journal {
		fmt.Fprintf(w, "%s%s\n", indent, l)
	}
	if n.JournalErr != "" {
		fmt.Fprintf(w, "%s(no journal: %s)\n", indent, n.JournalErr)
	}
	for i, c := range n.Children {
		if i == len(n.Children)-1 {
			writeNode(w, c, rest+"└─ ", rest+"   ")
		} else {
			writeNode(w, c, rest+"├─ ", rest+"│  ")
		}
	}
}

// unitLine is a unit's name and state on one line, with the mount for mounts.
func unitLine(u unitView) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s (%s)", u.Unit, u.ActiveState, u.SubState)
	if u.Result != "" && u.Result != "success" {
		fmt.Fprintf(&b, ", result %s", u.Result)
	}
	if u.Job != "" {
		fmt.Fprintf(&b, ", %s job queued", u.Job)
	}
	if u.Where != "" {
		fmt.Fprintf(&b, "  %s on %s", u.What, u.Where)
	}
	if u.Image != "" {
		fmt.Fprintf(&b, "  %s", u.Image)
	}
	return b.String()
}

// writeFailures explains failed units: name, result and journal lines.
func writeFailures(w io.Writer, fs []client.Failure) {
	for _, f := range fs {
		fmt.Fprintf(w, "%s: %s", f.Unit.Name, f.Unit.ActiveState)
		if f.Unit.Result != "" {
			fmt.Fprintf(w, " (%s)", f.Unit.Result)
		}
		fmt.Fprintln(w)
		for _, l := range f.Journal {
			fmt.Fprintf(w, "    %s\n", l)
		}
		if f.JournalErr != nil {
			fmt.Fprintf(w, "    (no journal: %v)\n", f.JournalErr)
		}
	}
}

// recordedHealth reads what the container's health checks recorded,
// while it runs: the record outlives a stop, and is reset at the next start.
func recordedHealth(name, active string) *state.Health {
	if active != "active" && active != "activating" && active != "reloading" {
		return nil
	}
	h, ok, err := state.Store{Dir: layout.StateDir}.Health(name)
	if err != nil || !ok {
		return nil
	}
	return &h
}

// healthLine says a health record in one line: status, then the last
// check when there was one.
func healthLine(h *state.Health) string {
	if h.LastCheck.IsZero() {
		return h.Status + " (no check yet)"
	}
	line := fmt.Sprintf("%s (last check %s: exit status %d", h.Status, h.LastCheck.Local().Format("2006-01-02 15:04:05"), h.LastExit)
	if h.Failures > 0 {
		line += fmt.Sprintf(", %d failed in a row", h.Failures)
	}
	return line + ")"
}
