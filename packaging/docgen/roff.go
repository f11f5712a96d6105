package main

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// The Markdown that Strata's documentation uses, turned into man(7) roff:
// headings, paragraphs, fenced and indented code, "- " lists, tables,
// `code`, **bold**, *italic* and [links](...). Field tables (a first
// column headed "field") become tagged paragraphs, the usual man page
// layout for options and settings. Nothing else of Markdown is needed; a
// construct it does not know stays as text, so nothing is silently dropped.

// roffWriter accumulates a page.
type roffWriter struct {
	b strings.Builder
}

func (w *roffWriter) line(s string) {
	w.b.WriteString(s)
	w.b.WriteByte('\n')
}

// text writes filled text: one input line, guarded against a leading
// control character.
func (w *roffWriter) text(s string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return
	}
	if s[0] == '.' || s[0] == '\'' {
		s = `\&` + s
	}
	w.line(s)
}

// literal writes lines of a code block, unfilled.
func (w *roffWriter) literal(lines []string) {
	w.line(".PP")
	w.line(".RS 4")
	w.line(".nf")
	for _, l := range lines {
		l = escape(l, true)
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			l = `\&` + l
		}
		w.line(l)
	}
	w.line(".fi")
	w.line(".RE")
}

// escape makes plain text safe for roff. In literal text (code), hyphens
// are real minus signs, so options can be copied from the page.
func escape(s string, code bool) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-' && code:
			b.WriteString(`\-`)
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		default:
			b.WriteString(glyph(r))
		}
	}
	return b.String()
}

// glyph names a non-ASCII character the way groff knows it without a
// preprocessor (man-db runs preconv, groff -man alone does not).
func glyph(r rune) string {
	switch r {
	case '—':
		return `\(em`
	case '–':
		return `\(en`
	case '→':
		return `\(->`
	case '←':
		return `\(<-`
	case '≥':
		return `\(>=`
	case '≤':
		return `\(<=`
	case '…':
		return `.\|.\|.`
	case '‘':
		return `\(oq`
	case '’':
		return `\(cq`
	case '“':
		return `\(lq`
	case '”':
		return `\(rq`
	case '×':
		return `\(mu`
	case '│':
		return `|`
	case '─':
		return `-`
	case '┘', '┌', '┐', '└', '├', '┤', '┬', '┴', '┼':
		return `+`
	case '►':
		return `>`
	}
	return fmt.Sprintf(`\[u%04X]`, r)
}

// manRef is a reference to a man page, "systemd.generator(7)", set in
// bold as man pages do.
var manRef = regexp.MustCompile(`^([a-z][a-z0-9_.@-]*[a-z0-9])\(([1-8])\)`)

// inline converts Markdown inline markup to roff font changes. font is
// the font to return to after a change (R, or B inside bold text).
func inline(s string, font string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if font == "R" && (i == 0 || !isWordByte(s[i-1])) {
			if m := manRef.FindStringSubmatch(s[i:]); m != nil {
				b.WriteString(`\fB` + escape(m[1], true) + `\fR(` + m[2] + ")")
				i += len(m[0])
				continue
			}
		}
		switch {
		case c == '`':
			if j := strings.IndexByte(s[i+1:], '`'); j >= 0 {
				b.WriteString(`\fB` + escape(s[i+1:i+1+j], true) + `\f` + font)
				i += j + 2
				continue
			}
		case c == '*' && strings.HasPrefix(s[i:], "**"):
			if j := strings.Index(s[i+2:], "**"); j >= 0 {
				b.WriteString(`\fB` + inline(s[i+2:i+2+j], "B") + `\f` + font)
				i += j + 4
				continue
			}
		case c == '*' || c == '_' && (i == 0 || s[i-1] == ' ' || s[i-1] == '('):
			if j := strings.IndexByte(s[i+1:], c); j > 0 {
				// Placeholders (*NORMAL-DIR*) must not break at a hyphen.
				b.WriteString(`\fI` + strings.ReplaceAll(inline(s[i+1:i+1+j], "I"), "-", `\-`) + `\f` + font)
				i += j + 2
				continue
			}
		case c == '[':
			if j := strings.Index(s[i:], "]("); j > 0 {
				if k := strings.IndexByte(s[i+j+2:], ')'); k >= 0 {
					text := s[i+1 : i+j]
					url := s[i+j+2 : i+j+2+k]
					b.WriteString(inline(text, font))
					if strings.Contains(url, "://") {
						b.WriteString(" <" + escape(url, false) + ">")
					}
					i += j + 3 + k
					continue
				}
			}
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteString(escape(string(r), false))
		i += n
	}
	return b.String()
}

// quoted is an argument of a macro line (.SH, .SS, .TP tags).
func quoted(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\(dq`) + `"`
}

// document is a parsed Markdown file as a list of blocks.
type block struct {
	kind  string // heading, para, code, list, table, item, directive
	level int    // heading level
	text  string // heading, paragraph; directive: the directive's text
	lines []string
	rows  [][]string // table rows, header first
	items []string   // list items
}

// parseMarkdown splits Markdown into blocks.
func parseMarkdown(src string) []block {
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	var out []block
	for i := 0; i < len(lines); {
		l := lines[i]
		t := strings.TrimSpace(l)
		switch {
		case t == "":
			i++
		case strings.HasPrefix(t, "<!--"):
			var d []string
			for ; i < len(lines); i++ {
				d = append(d, lines[i])
				if strings.Contains(lines[i], "-->") {
					i++
					break
				}
			}
			text := strings.TrimSpace(strings.Join(d, " "))
			text = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(text, "<!--"), "-->"))
			out = append(out, block{kind: "directive", text: text})
		case strings.HasPrefix(t, "#"):
			n := len(t) - len(strings.TrimLeft(t, "#"))
			out = append(out, block{kind: "heading", level: n, text: strings.TrimSpace(t[n:])})
			i++
		case strings.HasPrefix(t, "```"):
			var code []string
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				code = append(code, lines[i])
			}
			i++
			out = append(out, block{kind: "code", lines: code})
		case strings.HasPrefix(l, "    ") || strings.HasPrefix(l, "\t"):
			var code []string
			for ; i < len(lines) && (strings.HasPrefix(lines[i], "    ") || strings.HasPrefix(lines[i], "\t") || strings.TrimSpace(lines[i]) == ""); i++ {
				code = append(code, strings.TrimPrefix(strings.TrimPrefix(lines[i], "    "), "\t"))
			}
			for len(code) > 0 && strings.TrimSpace(code[len(code)-1]) == "" {
				code = code[:len(code)-1]
			}
			out = append(out, block{kind: "code", lines: code})
		case strings.HasPrefix(t, "|"):
			var rows [][]string
			for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				row := splitRow(lines[i])
				if isSeparator(row) {
					continue
				}
				rows = append(rows, row)
			}
			out = append(out, block{kind: "table", rows: rows})
		case strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "* "):
			var items []string
			for i < len(lines) {
				t := strings.TrimSpace(lines[i])
				if strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "* ") {
					items = append(items, t[2:])
				} else if t != "" && len(items) > 0 && strings.HasPrefix(lines[i], " ") {
					items[len(items)-1] += " " + t
				} else {
					break
				}
				i++
			}
			out = append(out, block{kind: "list", items: items})
		case i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), ": "):
			// A definition list item: "TERM" then ":   text" lines.
			term := t
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
				body = append(body, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[i]), ":")))
			}
			out = append(out, block{kind: "item", text: term, items: []string{strings.Join(body, " ")}})
		default:
			var para []string
			for ; i < len(lines); i++ {
				t := strings.TrimSpace(lines[i])
				if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, "|") || strings.HasPrefix(t, "```") || strings.HasPrefix(t, "<!--") || strings.HasPrefix(t, "- ") {
					break
				}
				para = append(para, t)
			}
			out = append(out, block{kind: "para", text: strings.Join(para, " ")})
		}
	}
	return out
}

func splitRow(l string) []string {
	l = strings.TrimSpace(l)
	l = strings.TrimPrefix(l, "|")
	l = strings.TrimSuffix(l, "|")
	cells := strings.Split(l, "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

func isSeparator(row []string) bool {
	for _, c := range row {
		if strings.Trim(c, "-: ") != "" {
			return false
		}
	}
	return true
}

// emitBlocks writes blocks as roff. Level-2 headings are sections (.SH,
// in capitals as man pages have them), level 3 and below subsections.
func emitBlocks(w *roffWriter, blocks []block) {
	for _, b := range blocks {
		switch b.kind {
		case "heading":
			if b.level <= 2 {
				w.line(".SH " + quoted(strings.ToUpper(inline(b.text, "R"))))
			} else {
				w.line(".SS " + quoted(inline(b.text, "R")))
			}
		case "para":
			w.line(".PP")
			w.text(inline(b.text, "R"))
		case "code":
			w.literal(b.lines)
		case "list":
			for _, it := range b.items {
				w.line(`.IP \(bu 2`)
				w.text(inline(it, "R"))
			}
		case "table":
			emitTable(w, b.rows)
		case "item":
			w.line(".TP")
			w.text(inline(b.text, "R"))
			w.text(inline(b.items[0], "R"))
		}
	}
}

// emitTable writes a table as tagged paragraphs: the first column is the
// tag; a field table's type and default go beside the field's name, other
// tables' cells follow as "header: cell".
func emitTable(w *roffWriter, rows [][]string) {
	if len(rows) == 0 {
		return
	}
	header := rows[0]
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(h)] = i
	}
	_, hasType := col["type"]
	field := strings.EqualFold(header[0], "field") && hasType
	for _, r := range rows[1:] {
		cell := func(name string) string {
			if i, ok := col[name]; ok && i < len(r) {
				return r[i]
			}
			return ""
		}
		w.line(".TP")
		if field {
			name := r[0]
			attrs := []string{cell("type")}
			if strings.Contains(name, extMark) {
				name = strings.TrimSpace(strings.ReplaceAll(name, extMark, ""))
				attrs = append(attrs, "Strata extension")
			}
			if d := cell("default"); d != "" && d != "—" && d != "-" {
				if d == "required" || strings.HasPrefix(d, "required") {
					attrs = append(attrs, d)
				} else {
					attrs = append(attrs, "default: "+d)
				}
			}
			w.text(inline(name, "R") + " (" + inline(strings.Join(attrs, "; "), "R") + ")")
			w.text(inline(cell("meaning"), "R"))
			continue
		}
		w.text(inline(r[0], "R"))
		var rest []string
		for i := 1; i < len(r) && i < len(header); i++ {
			if r[i] == "" {
				continue
			}
			if len(header) == 2 {
				rest = append(rest, r[i])
			} else {
				rest = append(rest, header[i]+": "+r[i])
			}
		}
		w.text(inline(strings.Join(rest, "; "), "R"))
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || c == '/' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// extMark is how docs/DEFINITIONS.md marks Strata's extensions.
const extMark = "*(ext)*"
