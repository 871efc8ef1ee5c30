package edge

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mcptasks/mcptasks/internal/jsonwalk"
	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
)

// This file is the one rewriter of JSON-RPC messages, shared by the HTTP
// handler and the stdio transport. Inbound, it strips every private
// io.mcptasks/ _meta key a client sent and writes the one carrier (carrierKey)
// of what the transport edge decided; outbound, it turns the router's
// stand-in notifications into the messages they stand for.
//
// It never re-encodes what it carries: a rewritten message is the received
// bytes with the moved members cut out and the carrier's few bytes added,
// so nothing is escaped or inflated, and a message with nothing to change
// is passed on as it came. Its cost is linear in the message. Where it
// must read a member (method, params, _meta, task, the protocol version), it
// matches keys exactly, as the SDK's decoder does, and refuses a message in
// which such an object holds a key twice or a key that is not valid UTF-8:
// decoders disagree about which duplicate wins, and that disagreement is how
// a client could otherwise smuggle a private key past the rewriter.

// errRejected wraps every reason the rewriter refuses a message;
// errMalformed is the one for bytes that are not JSON.
var (
	errRejected  = errors.New("invalid JSON-RPC message")
	errMalformed = fmt.Errorf("%w: malformed JSON", errRejected)
)

// ---- scanning ----

// member is one key/value of a scanned object: offsets into the bytes.
type member struct {
	key             []byte // decoded; aliases the message unless escaped
	start, val, end int    // key's opening quote, value start, value end
}

type object struct {
	start, end int // '{' and one past '}'
	members    []member
}

func (o *object) find(key string) *member {
	for i := range o.members {
		if string(o.members[i].key) == key {
			return &o.members[i]
		}
	}
	return nil
}

func syntaxError(i int) error { return fmt.Errorf("%w at offset %d", errMalformed, i) }

// checkJSON is the one validation of an inbound body: jsonwalk accepts
// what json.Valid accepts, the judge of what the SDK's decoder accepts
// (invalid UTF-8 and duplicate names pass). scanObject below walks only
// bytes so checked (or decoded by the SDK already), so it passes values
// with jsonwalk's Skip, which matches brackets and quotes and nothing
// more, and never reads past the end of what it is given.
func checkJSON(b []byte) error {
	if i, err := jsonwalk.Check(b); err != nil {
		return syntaxError(i)
	}
	return nil
}

// scanObject reads the object at b[i] with its members' keys decoded. A
// key held twice, or one that is not valid UTF-8, refuses the message.
func scanObject(b []byte, i int) (object, error) {
	o := object{start: i, members: make([]member, 0, 8)}
	if i >= len(b) || b[i] != '{' {
		return o, syntaxError(i)
	}
	s := jsonwalk.New(b)
	s.Seek(i)
	if err := s.Open(); err != nil {
		return o, syntaxError(s.Pos())
	}
	var seen map[string]bool // past a few members, the duplicate check is a map
	for n := 0; ; n++ {
		key, ok, err := s.Member(n)
		if err != nil {
			return o, syntaxError(s.Pos())
		}
		if !ok {
			break
		}
		start, end := s.Name()
		if !utf8.Valid(b[start:end]) {
			return o, fmt.Errorf("%w: a key is not valid UTF-8", errRejected)
		}
		m := member{key: key, start: start}
		if len(o.members) == 8 {
			seen = map[string]bool{}
			for _, m := range o.members {
				seen[string(m.key)] = true
			}
		}
		if seen != nil && seen[string(m.key)] || seen == nil && o.find(string(m.key)) != nil {
			return o, fmt.Errorf("%w: duplicate key %q", errRejected, m.key)
		}
		if seen != nil {
			seen[string(m.key)] = true
		}
		s.SkipSpace()
		m.val = s.Pos()
		if err := s.Skip(); err != nil {
			return o, syntaxError(s.Pos())
		}
		m.end = s.Pos()
		o.members = append(o.members, m)
	}
	o.end = s.Pos()
	return o, nil
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
	if m == nil || m.val >= len(b) || b[m.val] != '"' {
		return "", false
	}
	raw := b[m.val:m.end]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	return string(jsonwalk.Unquote(raw)), true
}

// ---- patching ----

// patchObject appends to dst the object o of b with each member as edit
// says (nil: kept as received; drop: left out; else the new value), then
// the members of add, each a whole "key":value. Nothing kept is re-encoded.
func patchObject(dst, b []byte, o object, edit func(m *member) (v []byte, drop bool), add ...[]byte) []byte {
	size := o.end - o.start + 2
	for _, a := range add {
		size += len(a) + 1
	}
	dst = append(slices.Grow(dst, size), '{')
	n := 0
	sep := func() {
		if n++; n > 1 {
			dst = append(dst, ',')
		}
	}
	for i := range o.members {
		m := &o.members[i]
		v, drop := edit(m)
		switch {
		case drop:
		case v == nil:
			sep()
			dst = append(dst, b[m.start:m.end]...)
		default:
			sep()
			dst = append(append(dst, b[m.start:m.val]...), v...)
		}
	}
	for _, a := range add {
		sep()
		dst = append(dst, a...)
	}
	return append(dst, '}')
}

// keyed is the member "key":v; keys are this package's names, which need
// no escaping.
func keyed(key string, v []byte) []byte {
	k := append(append(append(make([]byte, 0, len(key)+3+len(v)), '"'), key...), '"', ':')
	return append(k, v...)
}

// SetPath returns the JSON object b (empty or null: {}) with the member at
// path set to v (objects on the way are created), or deleted when v is
// nil. It is the one patch helper of results.
func SetPath(b []byte, path []string, v []byte) ([]byte, error) {
	var o object
	if t := bytes.TrimSpace(b); len(t) > 0 && string(t) != "null" {
		var err error
		if o, err = scanObject(t, 0); err != nil {
			return nil, err
		}
		b = t
	}
	found := o.find(path[0])
	if len(path) > 1 {
		var inner []byte
		if found != nil {
			inner = b[found.val:found.end]
		}
		var err error
		if v, err = SetPath(inner, path[1:], v); err != nil {
			return nil, err
		}
	}
	var add [][]byte
	if found == nil && v != nil {
		add = append(add, keyed(path[0], v))
	}
	return patchObject(nil, b, o, func(m *member) ([]byte, bool) {
		if m != found {
			return nil, false
		}
		return v, v == nil
	}, add...), nil
}

// ---- inbound ----

// decision is what the transport decided before reading a message: its
// revision; whether a _meta protocol version of 2026-07-28 or later may
// select that revision instead (upgrade); and, over HTTP, the token that
// names the HTTP request, asked for when a tasks/result carries it (so its
// wait can end with the request).
type decision struct {
	rev     protocol.Revision
	upgrade bool
	token   func() string
}

// request is what the edge learned of one inbound message.
type request struct {
	method string
	id     []byte // raw; nil for a notification
	taskID []byte // raw params.taskId, if any
	rev    protocol.Revision
}

// rewriteRequest rewrites the JSON-RPC message at b[i] (see rewriteParams):
// out is nil when it stays as it is. end is where it ends in b.
func rewriteRequest(b []byte, i int, d decision) (out []byte, r request, end int, err error) {
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
		return nil, r, msg.end, nil
	case pm == nil:
		return patchObject(nil, b, msg, keep, keyed("params", params)), r, msg.end, nil
	}
	return patchObject(nil, b, msg, func(m *member) ([]byte, bool) {
		if m == pm {
			return params, false
		}
		return nil, false
	}), r, msg.end, nil
}

func keep(*member) ([]byte, bool) { return nil, false }

// rewriteParams rewrites the params (pm's value in b; nil: absent) of a
// request: the private _meta keys are dropped and the carrier is written
// with what the edge decided. out is nil when params stay as they are.
func rewriteParams(b []byte, pm *member, method string, d decision) (out []byte, r request, err error) {
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
	if metaMember != nil && !metaIsObj && string(b[metaMember.val:metaMember.end]) != "null" {
		return nil, r, fmt.Errorf("%w: params._meta must be an object", errRejected)
	}
	if d.upgrade && metaIsObj {
		if v, ok := stringAt(b, meta.find(protocol.VersionKey)); ok && protocol.ParseRevision(v) == protocol.Rev20260728 {
			r.rev = protocol.Rev20260728
		}
	}

	// What moves: params.task (into the carrier on a 2025-11-25 tools/call;
	// on 2026-07-28 it means nothing), and the carrier's members.
	var c Carrier
	task := params.find("task")
	switch {
	case r.rev == protocol.Rev20260728:
		c.Protocol = protocol.Name20260728
		if method == "subscriptions/listen" {
			n, ok, err := objectAt(b, params.find("notifications"))
			if err != nil {
				return nil, r, err
			}
			if ids := n.find("taskIds"); ok && ids != nil && string(b[ids.val:ids.end]) != "null" {
				c.Listen = b[ids.val:ids.end]
			}
		}
	case method == "tasks/result" && d.token != nil:
		c.Request = d.token()
		task = nil
	case method == "tools/call":
		if task != nil && string(b[task.val:task.end]) != "null" {
			c.Task = b[task.val:task.end]
		}
	default:
		task = nil
	}
	carried := c.members()
	private := 0
	for _, m := range meta.members {
		if hasPrefixFold(string(m.key), privateMetaPrefix) {
			private++
		}
	}
	if task == nil && private == 0 && len(carried) == 0 {
		return nil, r, nil
	}
	var carrier [][]byte
	if len(carried) > 0 {
		carrier = append(carrier, keyed(carrierKey, patchObject(nil, nil, object{}, keep, carried...)))
	}
	var add [][]byte
	if !metaIsObj && len(carrier) > 0 {
		metaMember = nil // absent or null: replaced by one with the carrier
		add = append(add, keyed("_meta", patchObject(nil, nil, object{}, keep, carrier...)))
	}
	return patchObject(nil, b, params, func(m *member) ([]byte, bool) {
		switch {
		case m == task:
			return nil, true
		case m == metaMember && metaIsObj:
			return patchObject(nil, b, meta, func(m *member) ([]byte, bool) {
				return nil, hasPrefixFold(string(m.key), privateMetaPrefix)
			}, carrier...), false
		case string(m.key) == "_meta" && len(add) > 0:
			return nil, true
		}
		return nil, false
	}, add...), r, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// rewriteBody rewrites an HTTP request body: one message or a batch (whose
// messages are never upgraded by their content, nor carry d.token). Bytes
// outside the rewritten messages are kept as they came; a body with
// nothing to change is returned as it is.
func rewriteBody(body []byte, d decision) ([]byte, []request, error) {
	if err := checkJSON(body); err != nil {
		return nil, nil, err
	}
	s := jsonwalk.New(body) // checked: its errors below cannot happen
	c := s.Peek()
	if c != '[' && c != '{' {
		return body, []request{{rev: d.rev}}, nil // not a message: the SDK refuses it
	}
	var out []byte // the rewritten body up to last
	var reqs []request
	last := 0
	next := func(d decision) error {
		i := s.Pos()
		if body[i] != '{' {
			reqs = append(reqs, request{})
			return s.Skip()
		}
		msg, r, end, err := rewriteRequest(body, i, d)
		if msg != nil {
			out = append(append(out, body[last:i]...), msg...)
			last = end
		}
		reqs = append(reqs, r)
		s.Seek(end)
		return err
	}
	var err error
	if c == '{' {
		err = next(d)
	} else {
		err = s.Open()
		for n := 0; err == nil; n++ {
			var ok bool
			if ok, err = s.Element(n); err != nil || !ok {
				break
			}
			s.SkipSpace()
			err = next(decision{rev: d.rev})
		}
	}
	if err == nil {
		err = s.End()
	}
	if err != nil && !errors.Is(err, errRejected) {
		err = syntaxError(s.Pos()) // the walker's
	}
	if err != nil {
		return nil, nil, err
	}
	if out == nil {
		return body, reqs, nil
	}
	return append(out, body[last:]...), reqs, nil
}

// ---- outbound ----

// rewriteOutbound turns a stand-in message of this router (a notification
// whose params._meta holds, under the key marker, {"method","params"}) into
// the notification it stands for. ok is false for every other message.
func rewriteOutbound(b []byte, marker string) ([]byte, bool) {
	if !bytes.Contains(b, []byte(marker)) || checkJSON(b) != nil {
		return nil, false
	}
	msg, err := scanObject(b, jsonwalk.SkipSpace(b, 0))
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
	return notification(b[m.val:m.end], b[p.val:p.end]), true
}

// notification is the JSON-RPC notification with the (encoded) method and
// params.
func notification(method, params []byte) []byte {
	out := append([]byte(`{"jsonrpc":"2.0","method":`), method...)
	return append(append(append(out, `,"params":`...), params...), '}')
}
