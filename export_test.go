package mcptasks

import "github.com/mcptasks/mcptasks/taskstore"

// MemoryRecords counts the records a memory backend holds, expired or not.
func MemoryRecords(b taskstore.Backend) int {
	m := b.(*memoryBackend)
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for _, o := range m.owners {
		n += len(o.byID)
	}
	return n
}
