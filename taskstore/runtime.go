package taskstore

// Runtime is the part of a Store that a task runtime (such as taskrouter)
// uses to run tasks across replicas: runner heartbeats and leases, the
// tasks of a replica that stopped (ended or claimed), the input exchange
// between a running task and its client, and the backend's change feed.
// Applications and tool handlers need none of it: they use the Store and
// a task's Handle. Every rule of the Store (owners, limits, the status
// machine) holds for these calls too.
type Runtime struct {
	s *Store
}

// NewRuntime returns the runtime side of s. It holds no state of its own:
// any number may share one Store.
func NewRuntime(s *Store) *Runtime { return &Runtime{s: s} }

// Store is the Store this runtime side belongs to.
func (rt *Runtime) Store() *Store { return rt.s }

// Backend is the Store's backend: the runtime checks it for optional
// interfaces such as Notifier.
func (rt *Runtime) Backend() Backend { return rt.s.b }
