package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// What the operator's commands (tasks, replicas) print comes from task
// owners, tool handlers and clients: any text. Nothing of it reaches the
// terminal raw, so a value cannot move the cursor, recolour the screen,
// reorder the line (bidi overrides) or pass for another column.

// quoteIfNeeded returns s as is when it is one "word" of printable
// characters, else Go-quoted (strconv.Quote: unambiguous, and the shell's
// $'…' takes it back). Owners, tools and runner ids are shown this way.
func quoteIfNeeded(s string) string {
	if s == "" || s[0] == '"' {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if r == ' ' || r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// escapeText returns free text (a status message) with each character that
// is not printable written as its Go escape (\n, \x1b, \u202e) and each
// byte of invalid UTF-8 as \xNN; the rest, spaces included, as is.
func escapeText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// safeJSON marshals v on one line, then writes every non-ASCII character
// that is not printable as a \u escape: outside strings JSON is ASCII, so
// only strings change, and they decode to the same text.
func safeJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for i := 0; i < len(raw); {
		r, n := utf8.DecodeRune(raw[i:])
		if r < utf8.RuneSelf && r != 0x7f || r >= utf8.RuneSelf && unicode.IsPrint(r) {
			b.Write(raw[i : i+n])
		} else if r1, r2 := utf16.EncodeRune(r); r1 != unicode.ReplacementChar {
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		} else {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += n
	}
	return b.Bytes(), nil
}

// writeJSON writes v as one line of safeJSON.
func writeJSON(w io.Writer, v any) error {
	b, err := safeJSON(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// table lays out rows in columns two spaces apart. With a width, the
// columns named shrinkable are narrowed (in their order, down to their
// minimum) until a line fits, and a cell longer than its column is cut,
// ending in "…". Cells must already be escaped.
type table struct {
	header []string
	rows   [][]string
	// shrink lists the columns that may be narrowed, first narrowed first,
	// each with the width it keeps at least.
	shrink []shrinkable
}

type shrinkable struct{ col, min int }

// write prints the table within width columns (0: no limit) and returns
// how many cells it cut.
func (t *table) write(w io.Writer, width int) (cut int, err error) {
	widths := make([]int, len(t.header))
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	if width > 0 {
		total := 2 * (len(widths) - 1)
		for _, w := range widths {
			total += w
		}
		for _, s := range t.shrink {
			if total <= width {
				break
			}
			by := min(total-width, max(widths[s.col]-s.min, 0))
			widths[s.col] -= by
			total -= by
		}
	}
	var b strings.Builder
	for _, row := range append([][]string{t.header}, t.rows...) {
		b.Reset()
		for i, c := range row {
			if n := utf8.RuneCountInString(c); n > widths[i] {
				c = string([]rune(c)[:max(widths[i]-1, 0)]) + "…"
				cut++
			}
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		if _, err := io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n"); err != nil {
			return cut, err
		}
	}
	return cut, nil
}

// outputWidth is the width a table printed to w is cut to: flagWidth when
// it was given (0 or more; 0 means no limit), else the terminal's when w
// is one, else no limit.
func outputWidth(w io.Writer, flagWidth int) int {
	if flagWidth >= 0 {
		return flagWidth
	}
	if f, ok := w.(*os.File); ok {
		return terminalWidth(f)
	}
	return 0
}

// age is how long ago t was, in two units at most ("3m04s", "2h05m").
func age(now, t time.Time) string {
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}
