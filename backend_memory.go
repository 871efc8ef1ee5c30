package mcptasks

import (
	"container/heap"
	"context"
	"errors"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

func init() {
	Register("memory", openMemory)
}

// openMemory opens memory://[?sweep=DURATION]. sweep is how often a
// background goroutine removes expired tasks (default 1m; 0 disables it,
// expired tasks are then removed by writes).
func openMemory(_ context.Context, u *url.URL) (taskstore.Backend, error) {
	q := newQuery(u)
	sweep := q.Duration("sweep", time.Minute)
	if err := q.done(); err != nil {
		return nil, err
	}
	if sweep > 0 && sweep < time.Millisecond {
		return nil, errors.New(`option "sweep" must be 0 or at least 1ms`)
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") {
		return nil, errors.New("memory:// takes no host or path")
	}
	return NewMemoryBackend(sweep), nil
}

// memoryBackend keeps records in process memory. One mutex guards it all;
// every method is atomic. Per owner, task ids are kept sorted, so a list
// page costs O(log n + page). Expiry: a heap ordered by expiry time lets
// every write and the sweeper find expired records in O(log n) each (their
// removal from the owner's sorted ids is a slices.Delete, O(ids)), which
// keeps quota counts exact and returns their memory. Per status, records
// are also kept in (task id, owner) order for ListByStatus (see
// backend_memory_status.go). Changes are pushed to subscribers in process.
type memoryBackend struct {
	closeGuard // set under mu, so a call holding mu sees it settled
	mu         sync.RWMutex
	owners     map[string]*memOwner
	expiry     expiryHeap
	beats      map[string]uint64              // runner -> beat counter
	byRun      map[string]map[*memRecord]bool // runner -> its records
	byStatus   map[taskstore.Status]*statusTree
	hub        changeHub
	stop       chan struct{}
	stopped    sync.WaitGroup
	once       sync.Once
}

type memOwner struct {
	byID   map[string]*memRecord
	ids    []string // ascending
	active int      // records with rec.Active
}

type memRecord struct {
	rec       taskstore.Record
	heapIndex int // -1 when not in the expiry heap
}

// Interface guards
var (
	_ taskstore.Backend      = (*memoryBackend)(nil)
	_ taskstore.Notifier     = (*memoryBackend)(nil)
	_ taskstore.BatchGetter  = (*memoryBackend)(nil)
	_ taskstore.BatchUpdater = (*memoryBackend)(nil)
	_ taskstore.StatusIndex  = (*memoryBackend)(nil)
)

// NewMemoryBackend returns an empty in-memory backend. If sweep > 0 a
// goroutine removes expired records every sweep until Close.
func NewMemoryBackend(sweep time.Duration) taskstore.Backend {
	m := &memoryBackend{
		owners:   map[string]*memOwner{},
		beats:    map[string]uint64{},
		byRun:    map[string]map[*memRecord]bool{},
		byStatus: map[taskstore.Status]*statusTree{},
		stop:     make(chan struct{}),
	}
	m.hub.up() // in process: the feed is up from the start
	if sweep > 0 {
		m.stopped.Add(1)
		go m.sweepLoop(sweep)
	}
	return m
}

func (m *memoryBackend) sweepLoop(every time.Duration) {
	defer m.stopped.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.mu.Lock()
			m.purge(time.Now())
			m.mu.Unlock()
		}
	}
}

// purge removes every record expired at now. Callers hold m.mu for writing.
func (m *memoryBackend) purge(now time.Time) int {
	n := 0
	for len(m.expiry) > 0 && m.expiry[0].rec.Expired(now) {
		r := m.expiry[0]
		m.remove(r.rec.Owner, r.rec.TaskID)
		n++
	}
	return n
}

// remove deletes a record and its heap entry. Callers hold m.mu for writing.
func (m *memoryBackend) remove(owner, id string) {
	o := m.owners[owner]
	r := o.byID[id]
	if r.heapIndex >= 0 {
		heap.Remove(&m.expiry, r.heapIndex)
	}
	m.setRunner(r, "")
	m.unindexStatus(r)
	if r.rec.Active {
		o.active--
	}
	delete(o.byID, id)
	m.publish(owner, id, 0)
	if i, found := slices.BinarySearch(o.ids, id); found {
		o.ids = slices.Delete(o.ids, i, i+1)
	}
	if len(o.byID) == 0 {
		delete(m.owners, owner)
	}
}

// setRunner moves r in the runner index to runner ("" = none) and sets
// r.rec.Runner. Callers hold m.mu for writing.
func (m *memoryBackend) setRunner(r *memRecord, runner string) {
	if old := r.rec.Runner; old != "" {
		delete(m.byRun[old], r)
		if len(m.byRun[old]) == 0 {
			delete(m.byRun, old)
		}
	}
	r.rec.Runner = runner
	if runner != "" {
		if m.byRun[runner] == nil {
			m.byRun[runner] = map[*memRecord]bool{}
		}
		m.byRun[runner][r] = true
	}
}

// publish queues a change (the version written, 0 for a delete) for every
// subscriber. Callers hold m.mu for writing, so subscribers get changes in
// the order they were applied.
func (m *memoryBackend) publish(owner, id string, version uint64) {
	m.hub.push(taskstore.Change{Owner: owner, TaskID: id, Version: version})
}

func (m *memoryBackend) live(owner, id string, now time.Time) *memRecord {
	o := m.owners[owner]
	if o == nil {
		return nil
	}
	r := o.byID[id]
	if r == nil || r.rec.Expired(now) {
		return nil
	}
	return r
}

// lock and rlock check ctx and take the write or read lock, which the
// caller then releases; they fail, holding nothing, once the backend is
// closed.
func (m *memoryBackend) lock(ctx context.Context) error {
	if err := m.begin(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed.Load() {
		m.mu.Unlock()
		return errClosed
	}
	return nil
}

func (m *memoryBackend) rlock(ctx context.Context) error {
	if err := m.begin(ctx); err != nil {
		return err
	}
	m.mu.RLock()
	if m.closed.Load() {
		m.mu.RUnlock()
		return errClosed
	}
	return nil
}

func (m *memoryBackend) Create(ctx context.Context, rec taskstore.Record, lim taskstore.Limits) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.purge(time.Now())
	o := m.owners[rec.Owner]
	if o == nil {
		o = &memOwner{byID: map[string]*memRecord{}}
		m.owners[rec.Owner] = o
	}
	if _, exists := o.byID[rec.TaskID]; exists {
		return taskstore.ErrAlreadyExists
	}
	if rec.Active && lim.MaxActive > 0 && o.active >= lim.MaxActive {
		m.dropIfEmpty(rec.Owner)
		return taskstore.ErrQuotaExceeded
	}
	if lim.MaxStored > 0 && len(o.byID) >= lim.MaxStored {
		m.dropIfEmpty(rec.Owner)
		return taskstore.ErrStorageFull
	}
	rec.Data = slices.Clone(rec.Data)
	rec.Version = 1
	runner := rec.Runner
	rec.Runner = ""
	r := &memRecord{rec: rec, heapIndex: -1}
	o.byID[rec.TaskID] = r
	if rec.Active {
		o.active++
	}
	m.setRunner(r, runner)
	m.indexStatus(r)
	m.publish(rec.Owner, rec.TaskID, 1)
	if n := len(o.ids); n == 0 || o.ids[n-1] < rec.TaskID {
		o.ids = append(o.ids, rec.TaskID) // the usual case: ids grow with time
	} else {
		i, _ := slices.BinarySearch(o.ids, rec.TaskID)
		o.ids = slices.Insert(o.ids, i, rec.TaskID)
	}
	if !rec.ExpiresAt.IsZero() {
		heap.Push(&m.expiry, r)
	}
	return nil
}

func (m *memoryBackend) Get(ctx context.Context, owner, id string) (taskstore.Record, error) {
	if err := m.rlock(ctx); err != nil {
		return taskstore.Record{}, err
	}
	defer m.mu.RUnlock()
	r := m.live(owner, id, time.Now())
	if r == nil {
		return taskstore.Record{}, taskstore.ErrNotFound
	}
	out := r.rec
	out.Data = slices.Clone(out.Data)
	return out, nil
}

// dropIfEmpty removes an owner entry that a refused create made. Callers
// hold m.mu for writing.
func (m *memoryBackend) dropIfEmpty(owner string) {
	if o := m.owners[owner]; o != nil && len(o.byID) == 0 {
		delete(m.owners, owner)
	}
}

func (m *memoryBackend) Update(ctx context.Context, rec taskstore.Record, expected uint64) (uint64, error) {
	if err := m.lock(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	return m.update(rec, expected, time.Now())
}

// UpdateMany applies the updates under one lock.
func (m *memoryBackend) UpdateMany(ctx context.Context, updates []taskstore.Update) ([]taskstore.UpdateResult, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	now := time.Now()
	out := make([]taskstore.UpdateResult, len(updates))
	for i, u := range updates {
		out[i].Version, out[i].Err = m.update(u.Record, u.Expected, now)
	}
	return out, nil
}

// update is Update under m.mu held for writing.
func (m *memoryBackend) update(rec taskstore.Record, expected uint64, now time.Time) (uint64, error) {
	r := m.live(rec.Owner, rec.TaskID, now)
	if r == nil {
		return 0, taskstore.ErrNotFound
	}
	if r.rec.Version != expected {
		return 0, taskstore.ErrVersionConflict
	}
	o := m.owners[rec.Owner]
	switch {
	case rec.Active && !r.rec.Active:
		o.active++
	case !rec.Active && r.rec.Active:
		o.active--
	}
	if rec.Status != r.rec.Status {
		m.unindexStatus(r)
		r.rec.Status = rec.Status
		m.indexStatus(r)
	}
	r.rec.Data = slices.Clone(rec.Data)
	r.rec.Active = rec.Active
	r.rec.Version++
	m.setRunner(r, rec.Runner)
	m.publish(rec.Owner, rec.TaskID, r.rec.Version)
	return r.rec.Version, nil
}

func (m *memoryBackend) Delete(ctx context.Context, owner, id string) (bool, error) {
	if err := m.lock(ctx); err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	now := time.Now()
	m.purge(now)
	if m.live(owner, id, now) == nil {
		return false, nil
	}
	m.remove(owner, id)
	return true, nil
}

func (m *memoryBackend) List(ctx context.Context, owner, after string, limit int) ([]taskstore.Record, bool, error) {
	if err := m.rlock(ctx); err != nil {
		return nil, false, err
	}
	defer m.mu.RUnlock()
	o := m.owners[owner]
	if o == nil {
		return nil, false, nil
	}
	// i is one past the newest id to return.
	i := len(o.ids)
	if after != "" {
		i, _ = slices.BinarySearch(o.ids, after)
	}
	now := time.Now()
	out := make([]taskstore.Record, 0, min(limit, i))
	for ; i > 0 && len(out) < limit; i-- {
		r := o.byID[o.ids[i-1]]
		if r.rec.Expired(now) {
			continue
		}
		rec := r.rec
		rec.Data = slices.Clone(rec.Data)
		out = append(out, rec)
	}
	// Expired records not yet purged may follow; that only costs the
	// caller one more (possibly empty) page.
	return out, i > 0, nil
}

func (m *memoryBackend) DeleteExpired(ctx context.Context) (int, error) {
	if err := m.lock(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	return m.purge(time.Now()), nil
}

func (m *memoryBackend) Heartbeat(ctx context.Context, runner string) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.beats[runner]++
	return nil
}

func (m *memoryBackend) Runners(ctx context.Context) ([]taskstore.RunnerBeat, error) {
	if err := m.rlock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	out := make([]taskstore.RunnerBeat, 0, len(m.beats))
	for r, b := range m.beats {
		out = append(out, taskstore.RunnerBeat{Runner: r, Beat: b})
	}
	return out, nil
}

func (m *memoryBackend) RemoveRunner(ctx context.Context, runner string) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.beats, runner)
	return nil
}

// RunnerTasks is exact here: the index follows every write.
func (m *memoryBackend) RunnerTasks(ctx context.Context, runner string, limit int) ([]taskstore.Record, error) {
	if err := m.rlock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	now := time.Now()
	var out []taskstore.Record
	for r := range m.byRun[runner] {
		if len(out) >= limit {
			break
		}
		if r.rec.Expired(now) {
			continue
		}
		rec := r.rec
		rec.Data = slices.Clone(rec.Data)
		out = append(out, rec)
	}
	return out, nil
}

func (m *memoryBackend) GetMany(ctx context.Context, keys []taskstore.Key) ([]taskstore.Record, error) {
	if err := m.rlock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	now := time.Now()
	out := make([]taskstore.Record, 0, len(keys))
	for _, k := range keys {
		if r := m.live(k.Owner, k.TaskID, now); r != nil {
			rec := r.rec
			rec.Data = slices.Clone(rec.Data)
			out = append(out, rec)
		}
	}
	return out, nil
}

// Subscribe delivers the changes of this backend, in process.
func (m *memoryBackend) Subscribe(ctx context.Context, fn func(taskstore.Change)) error {
	return m.hub.subscribe(ctx, fn)
}

// MaxRecordSize is 0: memory has no limit of its own.
func (m *memoryBackend) MaxRecordSize() int { return 0 }

// Close stops the sweeper and drops every record; later calls fail.
func (m *memoryBackend) Close() error {
	m.once.Do(func() {
		close(m.stop)
		m.mu.Lock()
		m.closed.Store(true)
		m.owners, m.expiry, m.beats, m.byRun, m.byStatus = nil, nil, nil, nil, nil
		m.mu.Unlock()
		m.hub.close()
	})
	m.stopped.Wait()
	return nil
}

// expiryHeap orders records by ExpiresAt, soonest first.
type expiryHeap []*memRecord

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].rec.ExpiresAt.Before(h[j].rec.ExpiresAt) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex = i
	h[j].heapIndex = j
}
func (h *expiryHeap) Push(x any) {
	r := x.(*memRecord)
	r.heapIndex = len(*h)
	*h = append(*h, r)
}
func (h *expiryHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	r.heapIndex = -1
	*h = old[:len(old)-1]
	return r
}
