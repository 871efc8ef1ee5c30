package taskstore

import (
	"encoding/json"
	"fmt"
	"time"
)

// The encoding/json v1 record codec, as the Store used it until the
// jsontext codec (codec.go) replaced it: the baseline of BenchmarkCodec and
// the oracle of the compatibility tests.

// storedRecord is the stored document. Its task is decoded in the same pass
// (no nested Unmarshaler), which keeps a read to one scan of the bytes.
type storedRecord struct {
	Task          wireTask                   `json:"task"`
	OwnerID       string                     `json:"ownerId"`
	Variables     map[string]json.RawMessage `json:"variables"`
	Result        json.RawMessage            `json:"result"`
	Error         *RPCError                  `json:"error,omitempty"`
	InputRequests json.RawMessage            `json:"inputRequests,omitempty"`
	InputResps    json.RawMessage            `json:"inputResponses,omitempty"`
	RequestMethod string                     `json:"requestMethod"`
	ExpiresAt     *string                    `json:"expiresAt"`
}

func encodeRecordV1(r *TaskRecord) ([]byte, error) {
	st := storedRecord{
		Task:          r.Task.wire(),
		OwnerID:       r.OwnerID,
		Variables:     r.Variables,
		Result:        r.Result,
		Error:         r.Error,
		InputRequests: r.InputRequests,
		InputResps:    r.InputResponses,
		RequestMethod: r.RequestMethod,
	}
	if r.ExpiresAt != nil {
		e := r.ExpiresAt.UTC().Format(TimeFormat)
		st.ExpiresAt = &e
	}
	return json.Marshal(&st)
}

func decodeRecordV1(br Record) (*TaskRecord, error) {
	var st storedRecord
	corrupt := func(err error) error {
		return fmt.Errorf("%w: stored task %s is corrupt: %v", ErrBackend, br.TaskID, err)
	}
	if err := json.Unmarshal(br.Data, &st); err != nil {
		return nil, corrupt(err)
	}
	task, err := st.Task.task()
	if err != nil {
		return nil, corrupt(err)
	}
	r := &TaskRecord{
		Task:           task,
		OwnerID:        st.OwnerID,
		Variables:      st.Variables,
		Result:         st.Result,
		Error:          st.Error,
		InputRequests:  st.InputRequests,
		InputResponses: st.InputResps,
		RequestMethod:  st.RequestMethod,
		Version:        br.Version,
	}
	if r.Variables == nil {
		r.Variables = map[string]json.RawMessage{}
	}
	// A stored null means "none", as it did before decoding.
	if string(r.Result) == "null" {
		r.Result = nil
	}
	if st.ExpiresAt != nil {
		e, err := time.Parse(time.RFC3339Nano, *st.ExpiresAt)
		if err != nil {
			return nil, corrupt(fmt.Errorf("expiresAt: %w", err))
		}
		r.ExpiresAt = &e
	}
	return r, nil
}
