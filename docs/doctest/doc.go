// Package doctest keeps the pages under docs/ true: the examples in them are
// test inputs. It has no code of its own; its test (plain `go test`, part of
// `go test ./...`) reads every docs/**/*.md and checks the fenced blocks
// that an HTML comment on the line before marks:
//
//	<!-- definition: NAME.json -->   a definition (json, toml or yaml fence):
//	                                 definition.Load accepts it without errors,
//	                                 the generator renders units for it, and
//	                                 systemd-analyze verify accepts them
//	<!-- broken: NAME.json -->       a deliberately broken definition: Load
//	                                 reports errors; its placeholder unit is
//	                                 verified like any other
//	<!-- validate: NAME.json -->     the exact output of `strata validate
//	                                 /etc/strata/NAME.json` for a definition or
//	                                 broken block of the same page
//	<!-- units: NAME.json -->        an excerpt of `strata render
//	                                 /etc/strata/NAME.json`: "# PATH" lines name
//	                                 files (or "# PATH -> TARGET" symlinks) as
//	                                 render prints them, the lines after one are
//	                                 compared line by line with that file, and a
//	                                 line "..." stands for any number of lines
//	<!-- message: SCENARIO NAME.json --> the exact line the helper logs when
//	                                 SCENARIO (a failure the test plays: see
//	                                 scenarios in the test) happens to the attach
//	                                 unit of NAME.json
//	<!-- file: /etc/strata/PATH -->  a file of a page's layout (a definition, a
//	                                 template, an instance or a drop-in, under
//	                                 /etc/strata, /run/strata/definitions or
//	                                 /usr/lib/strata): the page's files together
//	                                 load without errors and their units verify
//	<!-- explain: NAME -->           the exact output of `strata render
//	                                 --explain NAME` for the page's layout
//	<!-- not-a-definition -->        a json/toml/yaml block that is not one (an
//	                                 API response, a fragment)
//
// A definition file is written to a temporary directory under its NAME and
// rendered there; paths in the output are shown as /etc/strata/NAME. Every
// json, toml or yaml block must carry one of these marks, every page under
// docs/schemes/ must hold at least one definition and one units excerpt,
// and relative links between pages must resolve.
package doctest
