package taskstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mcptasks/mcptasks/internal/jsonwalk"
)

// The record codec. A stored record is a JSON document of a fixed shape
// (see TaskRecord), so it is read in one pass of a validating scanner
// (jsonwalk.Scanner) and written by appending, without reflection. The decoder
// validates the whole document once; raw JSON values (variables, _meta,
// result, error data, input requests and responses) are then kept as
// slices of the document, which the backend handed over (Record.Data is
// the caller's), and written back verbatim: they were validated when they
// entered the Store or when the document was read, so no write validates
// or re-formats them again.
//
// Compatibility with documents written by the encoding/json v1 codec
// (testdata/records): every field and value reads the same. Bytes may
// differ on rewrite: HTML characters are no longer escaped (v1 wrote
// \u003c for <), and whitespace inside a caller's raw value is kept. As
// in v1, invalid UTF-8 inside a string is accepted (a raw value keeps its
// bytes; a Go string gets U+FFFD), repeated names are accepted (the last
// wins), and names match exactly (v1 also matched them ignoring case;
// the Store never wrote such names). Strings are quoted and unquoted by
// jsontext, the syntax layer of encoding/json/v2.

// errShape is the cause of a corrupt record whose JSON is valid but not a
// task record's.
var errShape = errors.New("not a task record")

// recordScanner reads one stored document.
type recordScanner struct {
	jsonwalk.Scanner
	br *Record
}

func decodeRecord(br Record) (*TaskRecord, error) { return decodeRecordInto(br, &recordBox{}) }

// decodeRecordInto is decodeRecord into box, which a caller decoding many
// records (a list page) allocates all at once.
func decodeRecordInto(br Record, box *recordBox) (*TaskRecord, error) {
	d := recordScanner{Scanner: jsonwalk.New(br.Data), br: &br}
	r, err := d.record(box)
	if err != nil {
		return nil, fmt.Errorf("%w: stored task %s is corrupt: %v", ErrBackend, br.TaskID, err)
	}
	r.Version = br.Version
	return r, nil
}

// recordBox allocates a record together with what its pointers point to.
type recordBox struct {
	rec       TaskRecord
	ttl, poll time.Duration
	expires   time.Time
}

func (d *recordScanner) record(box *recordBox) (*TaskRecord, error) {
	r := &box.rec
	hasTask := false
	if err := d.openObject(); err != nil {
		return nil, err
	}
	for n := 0; ; n++ {
		name, ok, err := d.Member(n)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch string(name) {
		case "task":
			hasTask = true
			err = d.task(box)
		case "ownerId":
			r.OwnerID, err = d.strOr(d.br.Owner)
		case "variables":
			r.Variables, err = d.rawMap(r.Variables)
		case "result":
			if r.Result, err = d.raw(); string(r.Result) == "null" {
				r.Result = nil // a stored null means "none"
			}
		case "error":
			r.Error, err = d.rpcError()
		case "inputRequests":
			r.InputRequests, err = d.raw()
		case "inputResponses":
			r.InputResponses, err = d.raw()
		case "requestMethod":
			r.RequestMethod, err = d.method()
		case "expiresAt":
			var ok bool
			if box.expires, ok, err = d.time(); ok {
				r.ExpiresAt = &box.expires
			}
		case "lease":
			r.Lease, err = d.lease()
		case "rerun":
			if r.Rerun, err = d.raw(); string(r.Rerun) == "null" {
				r.Rerun = nil
			}
		case "trace":
			r.Trace, err = d.trace()
		default:
			// A field of a newer release: kept, and written back.
			var v json.RawMessage
			if v, err = d.raw(); err == nil {
				if r.Unknown == nil {
					r.Unknown = map[string]json.RawMessage{}
				}
				r.Unknown[string(name)] = v
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("%w: data after the document", errShape)
	}
	if !hasTask {
		return nil, fmt.Errorf("%w: no task", errShape)
	}
	if r.Variables == nil {
		r.Variables = map[string]json.RawMessage{}
	}
	return r, nil
}

// openObject reads the '{' of an object; anything else is not a record's
// shape (a syntax error is reported as one).
func (d *recordScanner) openObject() error {
	switch c := d.Peek(); c {
	case '{':
		return d.Open()
	case 0:
		return d.Unexpected()
	default:
		if err := d.Value(); err != nil {
			return err
		}
		return fmt.Errorf("%w: %c where an object belongs", errShape, c)
	}
}

func (d *recordScanner) task(box *recordBox) error {
	t := &box.rec.Task
	var created, updated bool
	if d.Null() {
		return fmt.Errorf("%w: task has no createdAt", errShape)
	}
	if err := d.openObject(); err != nil {
		return err
	}
	for n := 0; ; n++ {
		name, ok, err := d.Member(n)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(name) {
		case "taskId":
			t.TaskID, err = d.strOr(d.br.TaskID)
		case "status":
			t.Status, err = d.status()
		case "statusMessage":
			t.StatusMessage, err = d.strOr("")
		case "createdAt":
			t.CreatedAt, created, err = d.time()
		case "lastUpdatedAt":
			t.LastUpdatedAt, updated, err = d.time()
		case "ttl":
			var ok bool
			if box.ttl, ok, err = d.millis(); ok {
				t.TTL = &box.ttl
			}
		case "pollInterval":
			var ok bool
			if box.poll, ok, err = d.millis(); ok {
				t.PollInterval = &box.poll
			}
		case "_meta":
			t.Meta, err = d.rawMap(t.Meta)
		default:
			err = d.Value()
		}
		if err != nil {
			return err
		}
	}
	switch {
	case !created:
		return fmt.Errorf("%w: task has no createdAt", errShape)
	case !updated:
		return fmt.Errorf("%w: task has no lastUpdatedAt", errShape)
	}
	return nil
}

func (d *recordScanner) rpcError() (*RPCError, error) {
	if d.Null() {
		return nil, nil
	}
	e := &RPCError{}
	err := d.members(func(name []byte) (err error) {
		switch string(name) {
		case "code":
			var v int64
			if v, err = d.int(); err == nil {
				e.Code = int(v)
			}
		case "message":
			e.Message, err = d.strOr("")
		case "data":
			e.Data, err = d.raw()
		default:
			err = d.Value()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (d *recordScanner) lease() (*Lease, error) {
	if d.Null() {
		return nil, nil
	}
	l := &Lease{}
	err := d.members(func(name []byte) (err error) {
		switch string(name) {
		case "runner":
			l.Runner, err = d.strOr("")
		case "attempt":
			var v int64
			if v, err = d.int(); err == nil {
				l.Attempt = int(v)
			}
		default:
			err = d.Value()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// members reads an object, calling member with each name; member reads
// the value.
func (d *recordScanner) members(member func(name []byte) error) error {
	if err := d.openObject(); err != nil {
		return err
	}
	for n := 0; ; n++ {
		name, ok, err := d.Member(n)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := member(name); err != nil {
			return err
		}
	}
}

// trace reads the trace context; null, or one without a traceparent,
// reads as none.
func (d *recordScanner) trace() (*TraceContext, error) {
	if d.Null() {
		return nil, nil
	}
	tc := &TraceContext{}
	err := d.members(func(name []byte) (err error) {
		switch string(name) {
		case "traceparent":
			tc.Traceparent, err = d.strOr("")
		case "tracestate":
			tc.Tracestate, err = d.strOr("")
		default:
			err = d.Value()
		}
		return err
	})
	if err != nil || tc.Traceparent == "" {
		return nil, err
	}
	return tc, nil
}

// raw returns the next value as a slice of the document.
func (d *recordScanner) raw() (json.RawMessage, error) {
	d.SkipSpace()
	start := d.Pos()
	if err := d.Value(); err != nil {
		return nil, err
	}
	end := d.Pos()
	return json.RawMessage(d.Bytes()[start:end:end]), nil
}

// rawMap reads an object of raw values into m (made when nil); null
// reads as nothing.
func (d *recordScanner) rawMap(m map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	if d.Null() {
		return m, nil
	}
	if err := d.openObject(); err != nil {
		return nil, err
	}
	if m == nil {
		m = make(map[string]json.RawMessage)
	}
	for n := 0; ; n++ {
		name, ok, err := d.Member(n)
		if err != nil {
			return nil, err
		}
		if !ok {
			return m, nil
		}
		v, err := d.raw()
		if err != nil {
			return nil, err
		}
		m[string(name)] = v
	}
}

// quoted reads a string: text is what lies between its quotes, plain
// reports that text is the string itself (no escape, valid UTF-8).
func (d *recordScanner) quoted(what string) (text []byte, plain bool, err error) {
	if c := d.Peek(); c != '"' {
		if err := d.Value(); err != nil {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("%w: %c where %s belongs", errShape, c, what)
	}
	start, plain, err := d.Quoted()
	if err != nil {
		return nil, false, err
	}
	return d.Bytes()[start : d.Pos()-1], plain, nil
}

// text is the Go string of a string quoted returned: invalid UTF-8
// becomes U+FFFD, as in v1.
func (d *recordScanner) text(text []byte, plain bool) string {
	if plain {
		return string(text)
	}
	return string(jsonwalk.Unquote(d.Bytes()[d.Pos()-len(text)-2 : d.Pos()]))
}

// strOr reads a string (null reads as ""); when it equals known, known is
// returned, so that the task id and owner the backend already holds are
// not allocated again.
func (d *recordScanner) strOr(known string) (string, error) {
	if d.Null() {
		return "", nil
	}
	text, plain, err := d.quoted("a string")
	switch {
	case err != nil:
		return "", err
	case plain && string(text) == known:
		return known, nil
	}
	return d.text(text, plain), nil
}

// status reads a status without allocating for the five known ones.
func (d *recordScanner) status() (Status, error) {
	if d.Null() {
		return "", nil
	}
	text, plain, err := d.quoted("a string")
	if err != nil {
		return "", err
	}
	switch string(text) {
	case "working":
		return StatusWorking, nil
	case "input_required":
		return StatusInputRequired, nil
	case "completed":
		return StatusCompleted, nil
	case "failed":
		return StatusFailed, nil
	case "cancelled":
		return StatusCancelled, nil
	}
	return Status(d.text(text, plain)), nil
}

// method reads the request method, without allocating for the methods
// that run as tasks.
func (d *recordScanner) method() (string, error) {
	if d.Null() {
		return "", nil
	}
	text, plain, err := d.quoted("a string")
	if err != nil {
		return "", err
	}
	switch string(text) {
	case "tools/call":
		return "tools/call", nil
	case "sampling/createMessage":
		return "sampling/createMessage", nil
	case "elicitation/create":
		return "elicitation/create", nil
	}
	return d.text(text, plain), nil
}

// time reads a timestamp string; ok is false for null.
func (d *recordScanner) time() (t time.Time, ok bool, err error) {
	if d.Null() {
		return time.Time{}, false, nil
	}
	text, plain, err := d.quoted("a timestamp")
	if err != nil {
		return time.Time{}, false, err
	}
	if t, ok := parseMillisUTC(text); ok {
		return t, true, nil
	}
	t, err = time.Parse(time.RFC3339Nano, d.text(text, plain))
	return t, err == nil, err
}

// millis reads a whole number of milliseconds; ok is false for null.
func (d *recordScanner) millis() (time.Duration, bool, error) {
	if d.Null() {
		return 0, false, nil
	}
	ms, err := d.int()
	if err != nil {
		return 0, false, err
	}
	return time.Duration(ms) * time.Millisecond, true, nil
}

// int reads a number that must be a whole int64, as v1 did; null reads
// as 0.
func (d *recordScanner) int() (int64, error) {
	if d.Null() {
		return 0, nil
	}
	c := d.Peek()
	start := d.Pos()
	if err := d.Value(); err != nil {
		return 0, err
	}
	if c != '-' && (c < '0' || c > '9') {
		return 0, fmt.Errorf("%w: %c where a number belongs", errShape, c)
	}
	return parseInt(d.Bytes()[start:d.Pos()])
}

// parseInt reads a JSON number that must be a whole int64, as v1 did.
func parseInt(v []byte) (int64, error) {
	b, neg := v, false
	if b[0] == '-' {
		b, neg = b[1:], true
	}
	if len(b) == 0 || len(b) > 18 {
		return strconv.ParseInt(string(v), 10, 64)
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return strconv.ParseInt(string(v), 10, 64) // a fraction or exponent: v1 refused it too
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// parseMillisUTC parses TimeFormat as the codec writes it (UTC, exactly
// three fraction digits) without allocating; ok is false for any other
// spelling, which time.Parse then reads.
func parseMillisUTC(b []byte) (time.Time, bool) {
	if len(b) != len("2006-01-02T15:04:05.000Z") || b[4] != '-' || b[7] != '-' || b[10] != 'T' ||
		b[13] != ':' || b[16] != ':' || b[19] != '.' || b[23] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range b[i : i+n] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec, ms := num(11, 2), num(14, 2), num(17, 2), num(20, 3)
	if year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 ||
		minute < 0 || minute > 59 || sec < 0 || sec > 59 || ms < 0 {
		return time.Time{}, false
	}
	if day > daysIn(year, month) { // 31 April and the like: let time.Parse refuse it
		return time.Time{}, false
	}
	days := daysFromCivil(year, month, day)
	unixMS := (((days*24+int64(hour))*60+int64(minute))*60+int64(sec))*1000 + int64(ms)
	return time.UnixMilli(unixMS).UTC(), true
}

func daysIn(year, month int) int {
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		return 29
	}
	return [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
}

// daysFromCivil is the number of days from 1970-01-01 to the date in the
// proleptic Gregorian calendar (H. Hinnant's days_from_civil), cheaper
// than time.Date's normalization; TestParseMillisUTC holds it to time.Date.
func daysFromCivil(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := int64((month + 9) % 12)
	doy := (153*mp+2)/5 + int64(day) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// decodeRawObject reads a JSON object of raw values (null or empty reads
// as an empty map); the values alias one copy of raw.
func decodeRawObject(raw []byte) (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(raw) == 0 {
		return m, nil
	}
	d := recordScanner{Scanner: jsonwalk.New(bytes.Clone(raw))}
	m, err := d.rawMap(m)
	if err != nil {
		return nil, err
	}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("%w: data after the object", errShape)
	}
	return m, nil
}

// encodeRecord writes the stored document of r. Raw values are written as
// they are (trimmed of surrounding whitespace); strings are quoted by
// jsontext, invalid UTF-8 becoming U+FFFD as it did in v1.
func encodeRecord(r *TaskRecord) ([]byte, error) {
	t := &r.Task
	b := make([]byte, 0, r.sizeHint())
	b = append(b, `{"task":`...)
	b = appendTask(b, t)
	b = append(b, `,"ownerId":`...)
	b = appendString(b, r.OwnerID)
	b = append(b, `,"variables":`...)
	if r.Variables == nil {
		b = append(b, "null"...)
	} else {
		b = appendObject(b, r.Variables)
	}
	b = append(b, `,"result":`...)
	b = appendRaw(b, r.Result)
	if e := r.Error; e != nil {
		b = append(b, `,"error":{"code":`...)
		b = strconv.AppendInt(b, int64(e.Code), 10)
		b = append(b, `,"message":`...)
		b = appendString(b, e.Message)
		if len(e.Data) > 0 {
			b = append(b, `,"data":`...)
			b = appendRaw(b, e.Data)
		}
		b = append(b, '}')
	}
	if len(r.InputRequests) > 0 {
		b = append(b, `,"inputRequests":`...)
		b = appendRaw(b, r.InputRequests)
	}
	if len(r.InputResponses) > 0 {
		b = append(b, `,"inputResponses":`...)
		b = appendRaw(b, r.InputResponses)
	}
	b = append(b, `,"requestMethod":`...)
	b = appendString(b, r.RequestMethod)
	b = append(b, `,"expiresAt":`...)
	if r.ExpiresAt == nil {
		b = append(b, "null"...)
	} else {
		b = appendTime(b, *r.ExpiresAt)
	}
	if l := r.Lease; l != nil {
		b = append(b, `,"lease":{"runner":`...)
		b = appendString(b, l.Runner)
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(l.Attempt), 10)
		b = append(b, '}')
	}
	if len(r.Rerun) > 0 {
		b = append(b, `,"rerun":`...)
		b = appendRaw(b, r.Rerun)
	}
	if tc := r.Trace; tc != nil {
		b = append(b, `,"trace":{"traceparent":`...)
		b = appendString(b, tc.Traceparent)
		if tc.Tracestate != "" {
			b = append(b, `,"tracestate":`...)
			b = appendString(b, tc.Tracestate)
		}
		b = append(b, '}')
	}
	if len(r.Unknown) > 0 {
		for _, k := range slices.Sorted(maps.Keys(r.Unknown)) {
			switch k {
			case "task", "ownerId", "variables", "result", "error", "inputRequests", "inputResponses",
				"requestMethod", "expiresAt", "lease", "rerun", "trace":
				continue // ours: never written twice
			}
			b = append(b, ',')
			b = appendString(b, k)
			b = append(b, ':')
			b = appendRaw(b, r.Unknown[k])
		}
	}
	return append(b, '}'), nil
}

// appendTask writes t in the 2025-11-25 wire form (Task.MarshalJSON).
func appendTask(b []byte, t *Task) []byte {
	b = append(b, `{"taskId":`...)
	b = appendString(b, t.TaskID)
	b = append(b, `,"status":`...)
	b = appendString(b, string(t.Status))
	if t.StatusMessage != "" {
		b = append(b, `,"statusMessage":`...)
		b = appendString(b, t.StatusMessage)
	}
	b = append(b, `,"createdAt":`...)
	b = appendTime(b, t.CreatedAt)
	b = append(b, `,"lastUpdatedAt":`...)
	b = appendTime(b, t.LastUpdatedAt)
	b = append(b, `,"ttl":`...)
	b = appendMillis(b, t.TTL)
	if t.PollInterval != nil {
		b = append(b, `,"pollInterval":`...)
		b = appendMillis(b, t.PollInterval)
	}
	if len(t.Meta) > 0 {
		b = append(b, `,"_meta":`...)
		b = appendObject(b, t.Meta)
	}
	return append(b, '}')
}

// sizeHint is about the encoded size, so that encodeRecord allocates once.
func (r *TaskRecord) sizeHint() int {
	n := 320 + len(r.Task.TaskID) + len(r.Task.StatusMessage) + len(r.OwnerID) + len(r.RequestMethod) +
		len(r.Result) + len(r.InputRequests) + len(r.InputResponses) + len(r.Rerun)
	if r.Lease != nil {
		n += len(r.Lease.Runner) + 40
	}
	if r.Trace != nil {
		n += len(r.Trace.Traceparent) + len(r.Trace.Tracestate) + 48
	}
	for k, v := range r.Unknown {
		n += len(k) + len(v) + 4
	}
	for k, v := range r.Task.Meta {
		n += len(k) + len(v) + 4
	}
	for k, v := range r.Variables {
		n += len(k) + len(v) + 4
	}
	if r.Error != nil {
		n += len(r.Error.Message) + len(r.Error.Data) + 32
	}
	return n
}

func appendString(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s) // its error only reports invalid UTF-8, written as U+FFFD
	return b
}

// appendTime writes t in TimeFormat, quoted.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year := t.Year()
	if year < 0 || year > 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, TimeFormat)
		return append(b, '"')
	}
	month, day := t.Month(), t.Day()
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	digits := func(b []byte, v, n int) []byte {
		for i := n - 1; i >= 0; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
		return b[n:]
	}
	var out [len(`"2006-01-02T15:04:05.000Z"`)]byte
	rest := out[1:]
	rest = digits(rest, year, 4)
	rest[0] = '-'
	rest = digits(rest[1:], int(month), 2)
	rest[0] = '-'
	rest = digits(rest[1:], day, 2)
	rest[0] = 'T'
	rest = digits(rest[1:], hour, 2)
	rest[0] = ':'
	rest = digits(rest[1:], minute, 2)
	rest[0] = ':'
	rest = digits(rest[1:], sec, 2)
	rest[0] = '.'
	rest = digits(rest[1:], ms, 3)
	rest[0] = 'Z'
	out[0], out[len(out)-1] = '"', '"'
	return append(b, out[:]...)
}

func appendMillis(b []byte, d *time.Duration) []byte {
	if d == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, d.Milliseconds(), 10)
}

var jsonNull = []byte("null")

// trimRaw drops the whitespace around a raw value; an empty value is null,
// as v1 wrote it. The result is only read.
func trimRaw(v []byte) []byte {
	for len(v) > 0 && jsonwalk.IsSpace(v[0]) {
		v = v[1:]
	}
	for len(v) > 0 && jsonwalk.IsSpace(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	if len(v) == 0 {
		return jsonNull
	}
	return v
}

func appendRaw(b, v []byte) []byte { return append(b, trimRaw(v)...) }

// appendObject writes m with its keys sorted, as v1 did, so that a record
// encodes to the same bytes every time.
func appendObject(b []byte, m map[string]json.RawMessage) []byte {
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendRaw(b, m[k])
	}
	return append(b, '}')
}

// encodeObject writes m as a JSON object, or nil when m is empty. Its
// values were validated on the way in, so it cannot fail; the error keeps
// the callers' shape.
func encodeObject(m map[string]json.RawMessage) (json.RawMessage, error) {
	if len(m) == 0 {
		return nil, nil
	}
	return appendObject(make([]byte, 0, objectSize(m)), m), nil
}

// objectSize is len(appendObject(nil, m)) computed without writing it: the
// size limits on variables, _meta and input are on the bytes stored.
func objectSize(m map[string]json.RawMessage) int {
	n := 2 + max(len(m)-1, 0) // braces and commas
	for k, v := range m {
		n += quotedLen(k) + 1 + len(trimRaw(v))
	}
	return n
}

// quotedLen is len(appendString(nil, s)).
func quotedLen(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return len(appendString(nil, s))
		}
	}
	return len(s) + 2
}
