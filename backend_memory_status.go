package mcptasks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// The memory backend's StatusIndex: per status, the records ordered by
// (task id, owner) in a treap (a binary search tree kept balanced by random
// priorities), so a write costs O(log n) more and a page O(limit + log n)
// plus the expired records it steps over. The counts are the trees' sizes,
// kept by every write and by expiry, so they are exact.

// statusTree is one status's records in ListByStatus order.
type statusTree struct {
	root *statusNode
	n    int64
}

type statusNode struct {
	key         taskstore.Key
	rec         *memRecord
	prio        uint64
	left, right *statusNode
}

// cmpStatusKey orders keys as ListByStatus lists them: task id, then owner.
func cmpStatusKey(a, b taskstore.Key) int {
	if c := strings.Compare(a.TaskID, b.TaskID); c != 0 {
		return c
	}
	return strings.Compare(a.Owner, b.Owner)
}

func (t *statusTree) insert(r *memRecord) {
	t.root = treapInsert(t.root, &statusNode{key: taskstore.Key{Owner: r.rec.Owner, TaskID: r.rec.TaskID}, rec: r, prio: rand.Uint64()})
	t.n++
}

func (t *statusTree) remove(k taskstore.Key) {
	var found bool
	t.root, found = treapRemove(t.root, k)
	if found {
		t.n--
	}
}

// after calls fn on the records after k in order until fn returns false.
func (t *statusTree) after(k taskstore.Key, fn func(*memRecord) bool) {
	// The path to k's position holds, on a stack, every node after k
	// whose left subtree the walk went into: the next nodes in order.
	var stack []*statusNode
	for n := t.root; n != nil; {
		if cmpStatusKey(k, n.key) < 0 {
			stack = append(stack, n)
			n = n.left
		} else {
			n = n.right
		}
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !fn(n.rec) {
			return
		}
		for c := n.right; c != nil; c = c.left {
			stack = append(stack, c)
		}
	}
}

// treapSplit splits n into the nodes before k and those at or after it.
func treapSplit(n *statusNode, k taskstore.Key) (before, rest *statusNode) {
	if n == nil {
		return nil, nil
	}
	if cmpStatusKey(n.key, k) < 0 {
		n.right, rest = treapSplit(n.right, k)
		return n, rest
	}
	before, n.left = treapSplit(n.left, k)
	return before, n
}

// treapMerge joins a and b, every key of a before every key of b.
func treapMerge(a, b *statusNode) *statusNode {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a.right = treapMerge(a.right, b)
		return a
	default:
		b.left = treapMerge(a, b.left)
		return b
	}
}

func treapInsert(n, x *statusNode) *statusNode {
	if n == nil {
		return x
	}
	if x.prio > n.prio {
		x.left, x.right = treapSplit(n, x.key)
		return x
	}
	if cmpStatusKey(x.key, n.key) < 0 {
		n.left = treapInsert(n.left, x)
	} else {
		n.right = treapInsert(n.right, x)
	}
	return n
}

func treapRemove(n *statusNode, k taskstore.Key) (*statusNode, bool) {
	if n == nil {
		return nil, false
	}
	var found bool
	switch c := cmpStatusKey(k, n.key); {
	case c < 0:
		n.left, found = treapRemove(n.left, k)
	case c > 0:
		n.right, found = treapRemove(n.right, k)
	default:
		return treapMerge(n.left, n.right), true
	}
	return n, found
}

// indexStatus adds r to its status's tree. Callers hold m.mu for writing.
func (m *memoryBackend) indexStatus(r *memRecord) {
	t := m.byStatus[r.rec.Status]
	if t == nil {
		t = &statusTree{}
		m.byStatus[r.rec.Status] = t
	}
	t.insert(r)
}

// unindexStatus removes r from its status's tree. Callers hold m.mu for
// writing.
func (m *memoryBackend) unindexStatus(r *memRecord) {
	if t := m.byStatus[r.rec.Status]; t != nil {
		t.remove(taskstore.Key{Owner: r.rec.Owner, TaskID: r.rec.TaskID})
	}
}

// ListByStatus walks the status's tree from after, skipping records that
// expired but were not purged yet.
func (m *memoryBackend) ListByStatus(ctx context.Context, status taskstore.Status, after taskstore.Key, limit int) ([]taskstore.Record, bool, error) {
	if limit < 1 || limit > taskstore.MaxStatusPage {
		return nil, false, fmt.Errorf("%w: %d, must be 1..%d", taskstore.ErrInvalidPageSize, limit, taskstore.MaxStatusPage)
	}
	if err := m.rlock(ctx); err != nil {
		return nil, false, err
	}
	defer m.mu.RUnlock()
	t := m.byStatus[status]
	if t == nil {
		return nil, false, nil
	}
	now := time.Now()
	out := make([]taskstore.Record, 0, min(int64(limit), t.n))
	more := false
	t.after(after, func(r *memRecord) bool {
		if len(out) == limit {
			more = true // possibly only expired records follow: one more (empty) page
			return false
		}
		if !r.rec.Expired(now) {
			rec := r.rec
			rec.Data = slices.Clone(rec.Data)
			out = append(out, rec)
		}
		return true
	})
	return out, more, nil
}

// CountByStatus purges expired records first, so its counts are exact.
func (m *memoryBackend) CountByStatus(ctx context.Context) (map[taskstore.Status]int64, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	m.purge(time.Now())
	out := make(map[taskstore.Status]int64, len(m.byStatus))
	for s, t := range m.byStatus {
		if t.n > 0 {
			out[s] = t.n
		}
	}
	return out, nil
}
