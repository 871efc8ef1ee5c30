package taskrouter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file is the one rewriter of JSON-RPC messages, shared by the HTTP
// handler and the stdio transport. Inbound, it strips every private
// io.mcptasks/ _meta key a client sent and writes the one carrier (edgeKey)
// of what the transport edge decided; outbound, it turns the router's
// stand-in notifications into the messages they stand for.
//
// It never re-encodes what it carries: a rewritten message is a list of
// slices of the received bytes plus the few new bytes of the carrier, so
// nothing is escaped or inflated and nothing received is copied. Where it
// must read a member (method, params, _meta, task, the protocol version), it
// matches keys exactly, as the SDK's decoder does, and refuses a message in
// which such an object holds a key twice or a key that is not valid UTF-8:
// decoders disagree about which duplicate wins, and that disagreement is how
// a client could otherwise smuggle a private key past the rewriter.

// privateMetaPrefix begins every _meta key the router uses to talk to
// itself through the SDK. A client's own such keys (in any letter case)
// are dropped on the way in.
const privateMetaPrefix = "io.mcptasks/"

// edgeKey is the one carrier from the transport edge to the middleware: a
// JSON object (edge) in a request's _meta, written by the rewriter and
// decoded once by the receiving middleware.
const edgeKey = "io.mcptasks/edge"

const protocolVersionKey = "io.modelcontextprotocol/protocolVersion"

// errRejected wraps every reason the rewriter refuses a message;
// errMalformed is the one for bytes that are not JSON.
var (
	errRejected  = errors.New("invalid JSON-RPC message")
	errMalformed = fmt.Errorf("%w: malformed JSON", errRejected)
)

// maxDepth is the nesting the SDK's decoder accepts.
const maxDepth = 1000

// pieces is a message under construction: slices of received bytes and
// small new ones, in order.
type pieces [][]byte

func (p pieces) len() int {
	n := 0
	for _, b := range p {
		n += len(b)
	}
	return n
}

func (p pieces) join() []byte {
	if len(p) == 1 {
		return p[0]
	}
	return bytes.Join(p, nil)
}

// ---- scanning ----

// member is one key/value of a scanned object: offsets into the bytes.
type member struct {
	key             string
	start, val, end int // key's opening quote, value start, value end
}

type object struct {
	start, end int // '{' and one past '}'
	members    []member
}

func (o *object) find(key string) *member {
	for i := range o.members {
		if o.members[i].key == key {
			return &o.members[i]
		}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func syntaxError(i int) error { return fmt.Errorf("%w at offset %d", errMalformed, i) }

// scanValue checks the JSON value at b[i] (no leading space) and returns
// where it ends.
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, syntaxError(i)
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		return end, err
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return 0, fmt.Errorf("%w: nested deeper than %d", errRejected, maxDepth)
		}
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == close {
			return i + 1, nil
		}
		for {
			if c == '{' {
				end, _, err := scanString(b, i)
				if err != nil {
					return 0, err
				}
				i = skipSpace(b, end)
				if i >= len(b) || b[i] != ':' {
					return 0, syntaxError(i)
				}
				i = skipSpace(b, i+1)
			}
			end, err := scanValue(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			i = skipSpace(b, end)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == close {
				return i + 1, nil
			}
			return 0, syntaxError(i)
		}
	default:
		return scanLeaf(b, i)
	}
}

// scanLeaf checks the number or literal at b[i] and returns where it ends.
func scanLeaf(b []byte, i int) (int, error) {
	end := i
	for end < len(b) && strings.IndexByte(" \t\r\n,]}:", b[end]) < 0 {
		end++
	}
	if end == i || !json.Valid(b[i:end]) {
		return 0, syntaxError(i)
	}
	return end, nil
}

// scanString checks the string at b[i] and returns its end and whether it
// has escapes.
func scanString(b []byte, i int) (int, bool, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, false, syntaxError(i)
	}
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			if !json.Valid(b[i : j+1]) { // control characters, bad escapes
				return 0, false, syntaxError(i)
			}
			return j + 1, escaped, nil
		}
	}
	return 0, false, syntaxError(i)
}

// scanObject reads the object at b[i] (no leading space) with its members'
// keys decoded. A key held twice, or one that is not valid UTF-8, refuses
// the message.
func scanObject(b []byte, i int) (object, error) {
	o := object{start: i}
	if i >= len(b) || b[i] != '{' {
		return o, syntaxError(i)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		o.end = i + 1
		return o, nil
	}
	for {
		m := member{start: i}
		end, escaped, err := scanString(b, i)
		if err != nil {
			return o, err
		}
		raw := b[i+1 : end-1]
		if escaped {
			if json.Unmarshal(b[i:end], &m.key) != nil {
				return o, syntaxError(i)
			}
		} else {
			m.key = string(raw)
		}
		if !utf8.Valid(raw) || !utf8.ValidString(m.key) {
			return o, fmt.Errorf("%w: a key is not valid UTF-8", errRejected)
		}
		if o.find(m.key) != nil {
			return o, fmt.Errorf("%w: duplicate key %q", errRejected, m.key)
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return o, syntaxError(i)
		}
		m.val = skipSpace(b, i+1)
		if m.end, err = scanValue(b, m.val, 1); err != nil {
			return o, err
		}
		o.members = append(o.members, m)
		i = skipSpace(b, m.end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			o.end = i + 1
			return o, nil
		}
		return o, syntaxError(i)
	}
}

// objectAt scans the member m's value as an object; ok is false when it is
// some other value.
func objectAt(b []byte, m *member) (object, bool, error) {
	if m == nil || m.val >= len(b) || b[m.val] != '{' {
		return object{}, false, nil
	}
	o, err := scanObject(b, m.val)
	return o, err == nil, err
}

func stringAt(b []byte, m *member) (string, bool) {
	var s string
	if m == nil || b[m.val] != '"' || json.Unmarshal(b[m.val:m.end], &s) != nil {
		return "", false
	}
	return s, true
}

// ---- patching ----

// change is what patch does to one member: drop it, or replace its value.
type change struct {
	drop  bool
	value pieces
}

// patch rebuilds the object o of b: members are kept as received unless
// changes says otherwise, and add (each a whole "key":value) is appended.
func patch(b []byte, o object, changes map[int]change, add ...pieces) pieces {
	if len(changes) == 0 && len(add) == 0 {
		return pieces{b[o.start:o.end]}
	}
	out := pieces{[]byte("{")}
	sep := func() {
		if len(out) > 1 {
			out = append(out, []byte(","))
		}
	}
	for i, m := range o.members {
		c, ok := changes[i]
		switch {
		case ok && c.drop:
		case ok:
			sep()
			out = append(out, b[m.start:m.val])
			out = append(out, c.value...)
		default:
			sep()
			out = append(out, b[m.start:m.end])
		}
	}
	for _, a := range add {
		sep()
		out = append(out, a...)
	}
	return append(out, []byte("}"))
}

func (o object) index(m *member) int {
	for i := range o.members {
		if &o.members[i] == m {
			return i
		}
	}
	return -1
}

// ---- inbound ----

// revision is a protocol revision the router serves.
type revision uint8

const (
	rev20251125 revision = iota
	rev20260728
)

const protocol20260728 = "2026-07-28"

// String is the revision's name on the wire.
func (v revision) String() string {
	if v == rev20260728 {
		return protocol20260728
	}
	return "2025-11-25"
}

// parseRevision maps a protocol version (dates compare as strings) to the
// revision that serves it.
func parseRevision(v string) revision {
	if strings.TrimSpace(v) >= protocol20260728 {
		return rev20260728
	}
	return rev20251125
}

// edge is the carrier's content: what the transport edge decided about one
// request.
type edge struct {
	// Protocol is "2026-07-28" for requests of that revision; empty is
	// 2025-11-25.
	Protocol string `json:"protocol,omitempty"`
	// Task is params.task of a 2025-11-25 tools/call (which the SDK drops).
	Task json.RawMessage `json:"task,omitempty"`
	// Listen is params.notifications.taskIds of a 2026-07-28
	// subscriptions/listen (which the SDK has no field for).
	Listen json.RawMessage `json:"listen,omitempty"`
	// Request names the HTTP request of a tasks/result (Router.sdk.requests),
	// so that its wait ends with it.
	Request string `json:"request,omitempty"`
}

func (e edge) revision() revision { return parseRevision(e.Protocol) }

// decision is what the transport decided before reading a message: its
// revision; whether a _meta protocol version of 2026-07-28 or later may
// select that revision instead (upgrade); and the token that names the HTTP
// request, carried by a tasks/result (Router.sdk.requests).
type decision struct {
	rev     revision
	upgrade bool
	token   string
}

// request is what the edge learned of one inbound message.
type request struct {
	method string
	id     []byte // raw; nil for a notification
	taskID []byte // raw params.taskId, if any
	rev    revision
}

// rewriteRequest rewrites the JSON-RPC message at b[i] (see rewriteParams)
// and returns where it ends in b.
func rewriteRequest(b []byte, i int, d decision) (out pieces, r request, end int, err error) {
	msg, err := scanObject(b, i)
	if err != nil {
		return nil, r, 0, err
	}
	method, _ := stringAt(b, msg.find("method"))
	pm := msg.find("params")
	params, r, err := rewriteParams(b, pm, method, d)
	if err != nil {
		return nil, r, 0, err
	}
	if m := msg.find("id"); m != nil {
		r.id = b[m.val:m.end]
	}
	switch {
	case params == nil:
		return pieces{b[msg.start:msg.end]}, r, msg.end, nil
	case pm == nil:
		return patch(b, msg, nil, append(pieces{[]byte(`"params":`)}, params...)), r, msg.end, nil
	}
	return patch(b, msg, map[int]change{msg.index(pm): {value: params}}), r, msg.end, nil
}

// rewriteParams rewrites the params (pm's value in b; nil: absent) of a
// request: the private _meta keys are dropped and the carrier is written
// with what the edge decided. out is nil when params stay as they are.
func rewriteParams(b []byte, pm *member, method string, d decision) (out pieces, r request, err error) {
	r.method, r.rev = method, d.rev
	params, isObj, err := objectAt(b, pm)
	if err != nil {
		return nil, r, err
	}
	if !isObj && pm != nil && string(b[pm.val:pm.end]) != "null" {
		// Params of another type: the SDK rejects them, and nothing
		// private can travel in them.
		return nil, r, nil
	}
	if m := params.find("taskId"); m != nil {
		r.taskID = b[m.val:m.end]
	}
	metaMember := params.find("_meta")
	meta, metaIsObj, err := objectAt(b, metaMember)
	if err != nil {
		return nil, r, err
	}
	if d.upgrade && metaIsObj {
		if v, ok := stringAt(b, meta.find(protocolVersionKey)); ok && parseRevision(v) == rev20260728 {
			r.rev = rev20260728
		}
	}

	changes := map[int]change{}
	var carried []pieces // members of the carrier
	switch {
	case r.rev == rev20260728:
		carried = append(carried, pieces{[]byte(`"protocol":"` + protocol20260728 + `"`)})
		if t := params.find("task"); t != nil { // a 2025-11-25 field: meaningless here
			changes[params.index(t)] = change{drop: true}
		}
		if method == "subscriptions/listen" {
			n, ok, err := objectAt(b, params.find("notifications"))
			if err != nil {
				return nil, r, err
			}
			if ids := n.find("taskIds"); ok && ids != nil && string(b[ids.val:ids.end]) != "null" {
				carried = append(carried, pieces{[]byte(`"listen":`), b[ids.val:ids.end]})
			}
		}
	case method == "tasks/result" && d.token != "":
		carried = append(carried, pieces{[]byte(`"request":"` + d.token + `"`)})
	case method == "tools/call":
		if t := params.find("task"); t != nil {
			changes[params.index(t)] = change{drop: true}
			if string(b[t.val:t.end]) != "null" {
				carried = append(carried, pieces{[]byte(`"task":`), b[t.val:t.end]})
			}
		}
	}
	var metaAdd []pieces
	if len(carried) > 0 {
		metaAdd = append(metaAdd, append(pieces{[]byte(`"` + edgeKey + `":`)}, patch(nil, object{}, nil, carried...)...))
	}
	metaChanges := map[int]change{}
	for j, m := range meta.members {
		if hasPrefixFold(m.key, privateMetaPrefix) {
			metaChanges[j] = change{drop: true}
		}
	}
	var paramsAdd []pieces
	switch {
	case metaIsObj:
		if len(metaChanges) > 0 || len(metaAdd) > 0 {
			changes[params.index(metaMember)] = change{value: patch(b, meta, metaChanges, metaAdd...)}
		}
	case len(metaAdd) == 0:
	case metaMember != nil && string(b[metaMember.val:metaMember.end]) == "null":
		changes[params.index(metaMember)] = change{value: patch(nil, object{}, nil, metaAdd...)}
	case metaMember != nil:
		return nil, r, fmt.Errorf("%w: params._meta must be an object", errRejected)
	default:
		paramsAdd = append(paramsAdd, append(pieces{[]byte(`"_meta":`)}, patch(nil, object{}, nil, metaAdd...)...))
	}
	switch {
	case len(changes) == 0 && len(paramsAdd) == 0:
		return nil, r, nil
	case !isObj:
		return patch(nil, object{}, nil, paramsAdd...), r, nil
	}
	return patch(b, params, changes, paramsAdd...), r, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// rewriteBody rewrites an HTTP request body: one message or a batch (whose
// messages are never upgraded by their content, nor carry d.token). Bytes
// outside the rewritten messages are kept as they came.
func rewriteBody(body []byte, d decision) (pieces, []request, error) {
	i := skipSpace(body, 0)
	if i < len(body) && body[i] != '[' && body[i] != '{' {
		// Not a message: the SDK refuses it.
		end, err := scanValue(body, i, 0)
		if err == nil && skipSpace(body, end) != len(body) {
			err = syntaxError(end)
		}
		return pieces{body}, []request{{rev: d.rev}}, err
	}
	if i >= len(body) || body[i] != '[' {
		p, r, end, err := rewriteRequest(body, i, d)
		if err != nil {
			return nil, nil, err
		}
		if j := skipSpace(body, end); j != len(body) {
			return nil, nil, syntaxError(j)
		}
		return append(append(pieces{body[:i]}, p...), body[end:]), []request{r}, nil
	}
	out := pieces{}
	var reqs []request
	last := 0
	for i = skipSpace(body, i+1); ; {
		if i < len(body) && body[i] == ']' && len(reqs) == 0 {
			break // empty batch: the SDK answers it
		}
		var p pieces
		var r request
		end, err := 0, error(nil)
		if i < len(body) && body[i] == '{' {
			p, r, end, err = rewriteRequest(body, i, decision{rev: d.rev})
		} else {
			end, err = scanValue(body, i, 1)
		}
		if err != nil {
			return nil, nil, err
		}
		if p != nil {
			out = append(append(out, body[last:i]), p...)
			last = end
		}
		reqs = append(reqs, r)
		i = skipSpace(body, end)
		if i < len(body) && body[i] == ',' {
			i = skipSpace(body, i+1)
			continue
		}
		break
	}
	if i >= len(body) || body[i] != ']' {
		return nil, nil, syntaxError(i)
	}
	if j := skipSpace(body, i+1); j != len(body) {
		return nil, nil, syntaxError(j)
	}
	return append(out, body[last:]), reqs, nil
}

// ---- outbound ----

// rewriteOutbound turns a stand-in message of this router (a notification
// whose params._meta holds, under the key marker, {"method","params"}) into
// the notification it stands for. ok is false for every other message.
func rewriteOutbound(b []byte, marker string) ([]byte, bool) {
	if !bytes.Contains(b, []byte(marker)) {
		return nil, false
	}
	msg, err := scanObject(b, skipSpace(b, 0))
	if err != nil || msg.find("id") != nil {
		return nil, false
	}
	o := msg
	for _, key := range []string{"params", "_meta", marker} {
		var ok bool
		if o, ok, _ = objectAt(b, o.find(key)); !ok {
			return nil, false
		}
	}
	m, p := o.find("method"), o.find("params")
	if _, ok := stringAt(b, m); !ok || p == nil {
		return nil, false
	}
	return pieces{[]byte(`{"jsonrpc":"2.0","method":`), b[m.val:m.end], []byte(`,"params":`), b[p.val:p.end], []byte("}")}.join(), true
}
