package edge

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

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

// checkJSON is the one validation of an inbound body: jsonwalk accepts
// what json.Valid accepts, the judge of what the SDK's decoder accepts
// (invalid UTF-8 and duplicate names pass). The objects read after it
// (scanObject) are walked with jsonwalk's Skip, which matches brackets and
// quotes and nothing more, and never reads past the end of what it is given.
func checkJSON(b []byte) error {
	if i, err := jsonwalk.Check(b); err != nil {
		return syntaxError(i)
	}
	return nil
}

func syntaxError(i int) error { return fmt.Errorf("%w at offset %d", errMalformed, i) }

// scanObject is jsonwalk.ScanObject with its refusals as the rewriter's.
func scanObject(b []byte, i int) (jsonwalk.Object, error) {
	o, err := jsonwalk.ScanObject(b, i)
	return o, rejected(err)
}

// objectAt is jsonwalk.ObjectAt with its refusals as the rewriter's.
func objectAt(b []byte, f *jsonwalk.Field) (jsonwalk.Object, bool, error) {
	o, ok, err := jsonwalk.ObjectAt(b, f)
	return o, ok, rejected(err)
}

func rejected(err error) error {
	var se *jsonwalk.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return syntaxError(se.Offset)
	}
	return fmt.Errorf("%w: %w", errRejected, err)
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
	marks   func(tool string) bool // the tools whose calls carry the edge's mark
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
	method, _ := jsonwalk.StringAt(b, msg.Find("method"))
	pm := msg.Find("params")
	params, r, err := rewriteParams(b, pm, method, d)
	if err != nil {
		return nil, r, 0, err
	}
	if m := msg.Find("id"); m != nil {
		r.id = b[m.Val:m.End]
	}
	switch {
	case params == nil:
		return nil, r, msg.End, nil
	case pm == nil:
		return jsonwalk.PatchObject(nil, b, msg, jsonwalk.Keep, jsonwalk.Keyed("params", params)), r, msg.End, nil
	}
	return jsonwalk.PatchObject(nil, b, msg, func(m *jsonwalk.Field) ([]byte, bool) {
		if m == pm {
			return params, false
		}
		return nil, false
	}), r, msg.End, nil
}

// rewriteParams rewrites the params (pm's value in b; nil: absent) of a
// request: the private _meta keys are dropped and the carrier is written
// with what the edge decided. out is nil when params stay as they are.
func rewriteParams(b []byte, pm *jsonwalk.Field, method string, d decision) (out []byte, r request, err error) {
	r.method, r.rev = method, d.rev
	params, isObj, err := objectAt(b, pm)
	if err != nil {
		return nil, r, err
	}
	if !isObj && pm != nil && string(b[pm.Val:pm.End]) != "null" {
		// Params of another type: the SDK rejects them, and nothing
		// private can travel in them.
		return nil, r, nil
	}
	if m := params.Find("taskId"); m != nil {
		r.taskID = b[m.Val:m.End]
	}
	metaMember := params.Find("_meta")
	meta, metaIsObj, err := objectAt(b, metaMember)
	if err != nil {
		return nil, r, err
	}
	if metaMember != nil && !metaIsObj && string(b[metaMember.Val:metaMember.End]) != "null" {
		return nil, r, fmt.Errorf("%w: params._meta must be an object", errRejected)
	}
	if d.upgrade && metaIsObj {
		if v, ok := jsonwalk.StringAt(b, meta.Find(protocol.VersionKey)); ok && protocol.ParseRevision(v) == protocol.Rev20260728 {
			r.rev = protocol.Rev20260728
		}
	}

	// What moves: params.task (into the carrier on a 2025-11-25 tools/call;
	// on 2026-07-28 it means nothing), and the carrier's members.
	var c Carrier
	task := params.Find("task")
	switch {
	case r.rev == protocol.Rev20260728:
		c.Protocol = protocol.Name20260728
		if method == "subscriptions/listen" {
			n, ok, err := objectAt(b, params.Find("notifications"))
			if err != nil {
				return nil, r, err
			}
			if ids := n.Find("taskIds"); ok && ids != nil && string(b[ids.Val:ids.End]) != "null" {
				c.Listen = b[ids.Val:ids.End]
			}
		}
	case method == "tasks/result" && d.token != nil:
		c.Request = d.token()
		task = nil
	case method == "tools/call":
		if task != nil && string(b[task.Val:task.End]) != "null" {
			c.Task = b[task.Val:task.End]
		}
	default:
		task = nil
	}
	carried := c.members()
	private := 0
	for _, m := range meta.Fields {
		if hasPrefixFold(string(m.Name), privateMetaPrefix) {
			private++
		}
	}
	// A call of a tool that supports tasks carries a carrier, empty or
	// not, so the router can tell one that came through no edge (and so
	// lost its params.task). Other calls pass untouched: a carrier costs
	// the SDK another decode of _meta.
	mark := false
	if method == "tools/call" && d.marks != nil {
		name, ok := jsonwalk.StringAt(b, params.Find("name"))
		mark = ok && d.marks(name)
	}
	if task == nil && private == 0 && len(carried) == 0 && !mark {
		return nil, r, nil
	}
	var carrier [][]byte
	if len(carried) > 0 || mark {
		carrier = append(carrier, jsonwalk.Keyed(carrierKey, jsonwalk.PatchObject(nil, nil, jsonwalk.Object{}, jsonwalk.Keep, carried...)))
	}
	var add [][]byte
	if !metaIsObj && len(carrier) > 0 {
		metaMember = nil // absent or null: replaced by one with the carrier
		add = append(add, jsonwalk.Keyed("_meta", jsonwalk.PatchObject(nil, nil, jsonwalk.Object{}, jsonwalk.Keep, carrier...)))
	}
	return jsonwalk.PatchObject(nil, b, params, func(m *jsonwalk.Field) ([]byte, bool) {
		switch {
		case m == task:
			return nil, true
		case m == metaMember && metaIsObj:
			return jsonwalk.PatchObject(nil, b, meta, func(m *jsonwalk.Field) ([]byte, bool) {
				return nil, hasPrefixFold(string(m.Name), privateMetaPrefix)
			}, carrier...), false
		case string(m.Name) == "_meta" && len(add) > 0:
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
			err = next(decision{rev: d.rev, marks: d.marks})
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
	if err != nil || msg.Find("id") != nil {
		return nil, false
	}
	o := msg
	for _, key := range []string{"params", "_meta", marker} {
		var ok bool
		if o, ok, _ = objectAt(b, o.Find(key)); !ok {
			return nil, false
		}
	}
	m, p := o.Find("method"), o.Find("params")
	if _, ok := jsonwalk.StringAt(b, m); !ok || p == nil {
		return nil, false
	}
	return notification(b[m.Val:m.End], b[p.Val:p.End]), true
}

// notification is the JSON-RPC notification with the (encoded) method and
// params.
func notification(method, params []byte) []byte {
	out := append([]byte(`{"jsonrpc":"2.0","method":`), method...)
	return append(append(append(out, `,"params":`...), params...), '}')
}
