package units

import "embed"

// Static holds the unit files Strata's package installs in
// /usr/lib/systemd/system: templates whose instances the generator
// configures with drop-ins. What they do must not depend on a definition
// still being there, so they carry the way to let go (ExecStop=,
// StopWhenUnneeded=) themselves.
//
//go:embed static/*
var Static embed.FS

// StaticDir is the directory of Static's files.
const StaticDir = "static"
