//go:build redis || postgres || dynamodb

package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mcptasks/mcptasks/taskrouter"
)

// The robustness test's invariants over a run's history (see
// robustness_test.go). Each is a named check; a violation names the check,
// the task and what was seen.

const (
	checkNoLostCreate = "no-lost-create"        // every acknowledged create is found at the end on every replica
	checkTerminalOnce = "terminal-once"         // one terminal status per task, never left, the same on every replica
	checkResultAgrees = "result-agrees"         // every tasks/result answer agrees with the final status and result
	checkCancel       = "cancel-ends-cancelled" // an acknowledged tasks/cancel is a task that ends cancelled
	checkFencing      = "fencing"               // no write of a superseded attempt lands after its lease was lost
	checkResume       = "resume-from-checkpoint"
	checkOrphanBound  = "orphan-bound"   // a task of a killed replica leaves working within the lease plus robustOrphanBound
	checkResultReturn = "result-returns" // a blocked tasks/result on a live replica returns once the task ends
	checkQuota        = "quota"          // no owner has more than --max-active-tasks surely-active tasks at once
	checkNoLeak       = "no-leak"        // replicas hold no runs, waiters or input waits for ended tasks
)

var invariantNames = []string{checkNoLostCreate, checkTerminalOnce, checkResultAgrees, checkCancel, checkFencing,
	checkResume, checkOrphanBound, checkResultReturn, checkQuota, checkNoLeak}

const (
	// robustOrphanBound is the stated bound past the lease timeout within
	// which a task of a killed replica must leave working (the survivors'
	// sweep runs every heartbeat), not counting the time the store or the
	// survivors were themselves down.
	robustOrphanBound = 10 * time.Second
	// robustReturnBound is how soon after a task was seen ended a
	// tasks/result blocked on a live replica must have returned, not
	// counting the time the store was down.
	robustReturnBound = 10 * time.Second
)

// violation is one broken invariant.
type violation struct {
	Check  string `json:"check"`
	TaskID string `json:"taskId,omitempty"`
	Detail string `json:"detail"`
}

type checkContext struct {
	healed    time.Time
	spans     []faultSpan
	maxActive int
	// lossWindow is the store's robustLossyStore window, or 0.
	lossWindow time.Duration
}

// taskHistory is one task's calls, in start order.
type taskHistory struct {
	task   *robustTask
	create robustOp
	ops    []robustOp
	final  map[int]robustOp // replica -> the final tasks/get
}

// checkInvariants returns the violations, and the tasks the store itself
// lost (see robustLossyStore), which are not checked.
func checkInvariants(ops []robustOp, tasks []*robustTask, cc checkContext) (vs []violation, storeLost []string) {
	byTask := map[string]*taskHistory{}
	for _, t := range tasks {
		byTask[t.id] = &taskHistory{task: t, final: map[int]robustOp{}}
	}
	sorted := append([]robustOp(nil), ops...)
	sort.SliceStable(sorted, func(a, b int) bool { return sorted[a].Start.Before(sorted[b].Start) })
	for _, op := range sorted {
		th := byTask[op.TaskID]
		if th == nil {
			continue
		}
		switch {
		case op.Method == "tools/call":
			th.create = op
		case op.Final && op.Method == "tasks/get":
			th.final[op.Replica] = op
		}
		th.ops = append(th.ops, op)
	}
	add := func(check, id, format string, args ...any) {
		vs = append(vs, violation{Check: check, TaskID: id, Detail: fmt.Sprintf(format, args...)})
	}
	for _, t := range tasks {
		th := byTask[t.id]
		if th.lostByStore(cc) {
			storeLost = append(storeLost, t.id)
			continue
		}
		final, ok := th.finalStatus(add)
		if !ok {
			continue
		}
		th.checkTerminalOnce(final, add)
		th.checkResults(final, add)
		th.checkCancel(final, add)
		if t.tool == "slow_report" {
			th.checkReport(final, add)
		}
		if t.tool != "slow_report" && !t.adopted {
			th.checkOrphan(cc, add)
		}
		th.checkReturns(cc, add)
	}
	vs = append(vs, checkQuotaHistory(byTask, cc.maxActive)...)
	return vs, storeLost
}

// lostByStore reports whether the task is missing on every replica at the
// end and its create was acknowledged within cc.lossWindow before a
// store-kill began (see robustLossyStore).
func (th *taskHistory) lostByStore(cc checkContext) bool {
	if cc.lossWindow <= 0 || th.create.Outcome != outcomeOK || len(th.final) == 0 {
		return false
	}
	for _, op := range th.final {
		if op.Outcome == outcomeOK || op.Code != -32602 || !strings.Contains(op.Err, "not found") { // a missing task
			return false
		}
	}
	for _, s := range cc.spans {
		if s.Kind == faultStoreKill && s.Start.After(th.create.Start) && s.Start.Sub(th.create.End) <= cc.lossWindow {
			return true
		}
	}
	return false
}

type addFunc func(check, id, format string, args ...any)

// finalStatus checks that the task is found, ended, on every replica,
// with one status and result, and returns replica 0's read.
func (th *taskHistory) finalStatus(add addFunc) (robustOp, bool) {
	id := th.task.id
	if len(th.final) == 0 {
		add(checkNoLostCreate, id, "never read at the end")
		return robustOp{}, false
	}
	var first robustOp
	ok := true
	for i := range robustReplicas {
		op, seen := th.final[i]
		switch {
		case !seen:
			continue
		case op.Outcome != outcomeOK:
			add(checkNoLostCreate, id, "created (on replica %d, adopted %v) but tasks/get on replica %d at the end: %s %s", th.task.created, th.task.adopted, i, op.Outcome, op.Err)
			ok = false
		case !terminalStatus(op.Status):
			add(checkTerminalOnce, id, "%s at the end on replica %d, after every fault healed and the tasks had time to end", op.Status, i)
			ok = false
		case first.Status == "":
			first = op
		case op.Status != first.Status || op.Text != first.Text || op.TaskErr != first.TaskErr:
			add(checkTerminalOnce, id, "replica %d says %s %q %q, replica %d says %s %q %q", first.Replica, first.Status, first.Text, first.TaskErr,
				i, op.Status, op.Text, op.TaskErr)
			ok = false
		}
	}
	return first, ok && first.Status != ""
}

// checkTerminalOnce: once a read saw the task ended, every read that
// started after it sees the same end.
func (th *taskHistory) checkTerminalOnce(final robustOp, add addFunc) {
	var ended *robustOp
	for i, op := range th.ops {
		if op.Method != "tasks/get" || op.Outcome != outcomeOK {
			continue
		}
		if ended != nil && op.Start.After(ended.End) && op.Status != ended.Status {
			add(checkTerminalOnce, th.task.id, "seen %s (replica %d, ended %s) then %s (replica %d, started %s)",
				ended.Status, ended.Replica, ended.End.Format(time.StampMilli), op.Status, op.Replica, op.Start.Format(time.StampMilli))
			return
		}
		if ended == nil && terminalStatus(op.Status) {
			ended = &th.ops[i]
			if op.Status != final.Status {
				add(checkTerminalOnce, th.task.id, "seen %s on replica %d, %s at the end", op.Status, op.Replica, final.Status)
				return
			}
		}
	}
}

// checkResults: a tasks/result answer is the task's end. A completed
// task's answer is its result; a failed task's its error (as a JSON-RPC
// error or an isError result); a cancelled task's the cancel's error.
// During the run an answer may also be an error of the call itself (the
// store unreachable); at the end, with everything healed, it may not.
func (th *taskHistory) checkResults(final robustOp, add addFunc) {
	for _, op := range th.ops {
		if op.Method != "tasks/result" {
			continue
		}
		switch {
		case op.Outcome == outcomeOK && !op.IsError:
			if final.Status != "completed" || op.Text != final.Text {
				add(checkResultAgrees, th.task.id, "tasks/result on replica %d answered %q, the task ended %s %q", op.Replica, op.Text, final.Status, final.Text)
			}
		case op.Outcome == outcomeOK:
			if final.Status != "failed" || op.Text != final.Text {
				add(checkResultAgrees, th.task.id, "tasks/result on replica %d answered an isError result %q, the task ended %s %q", op.Replica, op.Text, final.Status, final.Text)
			}
		case op.Outcome == outcomeError && op.Err == cancelledMessage:
			if final.Status != "cancelled" {
				add(checkResultAgrees, th.task.id, "tasks/result on replica %d answered the cancel's error, the task ended %s", op.Replica, final.Status)
			}
		case op.Outcome == outcomeError && op.Err == taskrouter.OrphanedMessage:
			if final.Status != "failed" || final.TaskErr != op.Err {
				add(checkResultAgrees, th.task.id, "tasks/result on replica %d answered %q, the task ended %s %q", op.Replica, op.Err, final.Status, final.TaskErr)
			}
		case op.Final:
			agrees := op.Outcome == outcomeError && (final.Status == "cancelled" || final.Status == "failed" && op.Err == final.TaskErr)
			if !agrees {
				add(checkResultAgrees, th.task.id, "tasks/result on replica %d at the end: %s %d %q, the task ended %s %q %q",
					op.Replica, op.Outcome, op.Code, op.Err, final.Status, final.Text, final.TaskErr)
			}
		}
	}
}

// cancelledMessage is the error tasks/result answers for a cancelled task.
const cancelledMessage = "The task was cancelled by request."

// checkCancel: a tasks/cancel the 2025-11-25 flow acknowledged (it refuses
// a task already ended) is a task that ends cancelled.
func (th *taskHistory) checkCancel(final robustOp, add addFunc) {
	for _, op := range th.ops {
		if op.Method == "tasks/cancel" && op.Outcome == outcomeOK && final.Status != "cancelled" {
			add(checkCancel, th.task.id, "tasks/cancel on replica %d acknowledged (%s), the task ended %s %q %q", op.Replica, op.Status, final.Status, final.Text, final.TaskErr)
		}
	}
}

// checkReport checks slow_report's checkpoints. A line, once stored, is
// never replaced: replaced by a line of an older attempt is a superseded
// attempt's write that landed (fencing); by a newer attempt's, a resume
// that did not start after the last stored checkpoint. Within one read,
// lines are by attempts that never go back. The result is written by the
// newest attempt seen, and holds every step once, each as stored.
func (th *taskHistory) checkReport(final robustOp, add addFunc) {
	id := th.task.id
	stored := map[int]robustOp{} // step -> the first read that saw it
	maxAttempt := 0
	observe := func(op robustOp, lines map[int]string, what string) {
		steps := make([]int, 0, len(lines))
		for s := range lines {
			steps = append(steps, s)
		}
		sort.Ints(steps)
		prev := 0
		for _, s := range steps {
			a := lineAttempt(lines[s])
			maxAttempt = max(maxAttempt, a)
			if a < prev {
				add(checkFencing, id, "%s on replica %d: step %d by attempt %d after a step by attempt %d: %q", what, op.Replica, s, a, prev, lines[s])
			}
			prev = max(prev, a)
			first, seen := stored[s]
			switch {
			case !seen:
				stored[s] = robustOp{Replica: op.Replica, Start: op.Start, Text: lines[s]}
			case first.Text != lines[s] && a < lineAttempt(first.Text):
				add(checkFencing, id, "step %d was %q (replica %d) then %q (%s on replica %d): an older attempt's write landed", s, first.Text, first.Replica, lines[s], what, op.Replica)
			case first.Text != lines[s]:
				add(checkResume, id, "step %d was %q (replica %d) then %q (%s on replica %d): a resumed run wrote a stored step again", s, first.Text, first.Replica, lines[s], what, op.Replica)
			}
		}
	}
	for _, op := range th.ops {
		if op.Outcome != outcomeOK {
			continue
		}
		if op.Method == "tasks/get" && len(op.Lines) > 0 {
			observe(op, op.Lines, "tasks/get")
		}
		if op.Method == "tasks/result" && !op.IsError && op.Outcome == outcomeOK {
			observe(op, resultLines(op.Text), "tasks/result")
		}
	}
	if final.Status != "completed" {
		return
	}
	lines := resultLines(final.Text)
	observe(final, lines, "the result")
	last := 0
	for s := 1; s <= th.create.Steps; s++ {
		if _, ok := lines[s]; !ok {
			add(checkResume, id, "the result has no step %d of %d: %q", s, th.create.Steps, final.Text)
			return
		}
		last = lineAttempt(lines[s])
	}
	if last != maxAttempt {
		add(checkFencing, id, "the result's last step is by attempt %d, attempt %d wrote too: %q", last, maxAttempt, final.Text)
	}
}

// overlapping is the time the spans matching keep overlap [from, to).
func overlapping(spans []faultSpan, from, to time.Time, keep func(faultSpan) bool) time.Duration {
	var d time.Duration
	for _, s := range spans {
		end := s.End
		if end.IsZero() {
			end = to
		}
		if !keep(s) || !s.Start.Before(to) || !end.After(from) {
			continue
		}
		d += minTime(end, to).Sub(maxTime(s.Start, from))
	}
	return d
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// checkOrphan: a plain task (not resumable) whose replica is killed while
// it runs must leave working within the lease plus robustOrphanBound, plus
// the time other faults kept the survivors from acting.
func (th *taskHistory) checkOrphan(cc checkContext, add addFunc) {
	r := th.create.Replica
	for _, kill := range cc.spans {
		if kill.Kind != faultReplicaKill || kill.Replica != r || kill.Start.Before(th.create.End) {
			continue
		}
		// The faults in the window push its end out, and those then in
		// the longer window too (DynamoDB Local's restarts of 8-15 s come
		// in a row): extend it until no more fall in.
		keep := func(s faultSpan) bool { return s.Replica != r || s.Kind != faultReplicaKill }
		bound := kill.Start.Add(robustLease + robustOrphanBound)
		deadline, extra := bound, time.Duration(0)
		for range 1000 { // converges: every span has ended when this runs
			d := overlapping(cc.spans, kill.Start, deadline, keep)
			if d == extra {
				break
			}
			deadline, extra = bound.Add(d), d
		}
		for _, op := range th.ops {
			if op.Method == "tasks/get" && op.Outcome == outcomeOK && op.Start.After(deadline) && op.Status == "working" {
				add(checkOrphanBound, th.task.id, "replica %d, which ran it, was killed at %s; the task was still working at %s (replica %d)",
					r, kill.Start.Format(time.StampMilli), op.Start.Format(time.StampMilli), op.Replica)
				return
			}
		}
		return // the first kill after the create is the one that orphaned it
	}
}

// checkReturns: a tasks/result blocked on a replica that no fault hit
// while it waited returns within robustReturnBound of the task's end as
// first seen (plus the time the store was down or that replica cut off).
func (th *taskHistory) checkReturns(cc checkContext, add addFunc) {
	var ended time.Time
	for _, op := range th.ops {
		if op.Outcome == outcomeOK && op.Method == "tasks/get" && terminalStatus(op.Status) && (ended.IsZero() || op.End.Before(ended)) {
			ended = op.End
		}
	}
	if ended.IsZero() {
		return
	}
	for _, op := range th.ops {
		if op.Method != "tasks/result" || op.Final || op.Start.After(ended) {
			continue
		}
		hit := overlapping(cc.spans, op.Start, op.End, func(s faultSpan) bool {
			return s.Replica == op.Replica && s.Kind != faultPartition
		})
		if hit > 0 {
			continue
		}
		deadline := ended.Add(robustReturnBound)
		deadline = deadline.Add(overlapping(cc.spans, op.Start, deadline, func(s faultSpan) bool {
			return s.Kind == faultStoreKill || s.Kind == faultPartition && s.Replica == op.Replica
		}))
		if op.Outcome == outcomeUnknown || op.End.After(deadline) {
			add(checkResultReturn, th.task.id, "tasks/result on replica %d from %s: %s %q at %s, the task was seen ended at %s",
				op.Replica, op.Start.Format(time.StampMilli), op.Outcome, op.Err, op.End.Format(time.StampMilli), ended.Format(time.StampMilli))
		}
	}
}

// checkQuotaHistory: a task is surely active from its create's answer to
// the start of the last read that saw it working or input_required; no
// owner may have more than maxActive such tasks at one instant.
func checkQuotaHistory(byTask map[string]*taskHistory, maxActive int) []violation {
	type edge struct {
		at    time.Time
		delta int
		id    string
	}
	byOwner := map[string][]edge{}
	for id, th := range byTask {
		if th.task.adopted {
			continue // its create's answer was lost: not surely active
		}
		var last time.Time
		for _, op := range th.ops {
			if op.Method == "tasks/get" && op.Outcome == outcomeOK && (op.Status == "working" || op.Status == "input_required") && op.Start.After(last) {
				last = op.Start
			}
		}
		if !last.After(th.create.End) {
			continue
		}
		o := th.task.owner
		byOwner[o] = append(byOwner[o], edge{th.create.End, 1, id}, edge{last, -1, id})
	}
	var vs []violation
	for owner, edges := range byOwner {
		sort.Slice(edges, func(a, b int) bool {
			if edges[a].at.Equal(edges[b].at) {
				return edges[a].delta < edges[b].delta
			}
			return edges[a].at.Before(edges[b].at)
		})
		active := map[string]bool{}
		reported := false
		for _, e := range edges {
			if e.delta > 0 {
				active[e.id] = true
			} else {
				delete(active, e.id)
			}
			if len(active) > maxActive && !reported {
				ids := make([]string, 0, len(active))
				for id := range active {
					ids = append(ids, id)
				}
				sort.Strings(ids)
				vs = append(vs, violation{Check: checkQuota, Detail: fmt.Sprintf("owner %s had %d tasks surely active at %s (limit %d): %s",
					owner, len(active), e.at.Format(time.StampMilli), maxActive, strings.Join(ids, " "))})
				reported = true
			}
			if len(active) <= maxActive {
				reported = false
			}
		}
	}
	return vs
}

// leakGauges are serve's gauges of what a replica holds for tasks that
// have not ended: all zero once every task ended and no client waits.
var leakGauges = []string{"mcptasks_tasks_running", "mcptasks_result_waiters", "mcptasks_tasks_input_waiting"}

// checkNoLeaks reads every replica's gauges (for up to 10 s: a run's
// goroutine leaves just after its end is stored).
func checkNoLeaks(metrics []string) []violation {
	var vs []violation
	for i, addr := range metrics {
		var held map[string]float64
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; {
			held, err = scrapeGauges(addr, leakGauges)
			if err == nil && len(held) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		switch {
		case err != nil:
			vs = append(vs, violation{Check: checkNoLeak, Detail: fmt.Sprintf("replica %d's metrics: %v", i, err)})
		case len(held) > 0:
			vs = append(vs, violation{Check: checkNoLeak, Detail: fmt.Sprintf("replica %d holds %v after every task ended", i, held)})
		}
	}
	return vs
}

// scrapeGauges returns the nonzero sums of names on a /metrics page.
func scrapeGauges(addr string, names []string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			rest, ok := strings.CutPrefix(line, n)
			if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
				continue
			}
			f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
			if len(f) == 0 {
				continue
			}
			if v, err := strconv.ParseFloat(f[0], 64); err == nil && v != 0 {
				out[n] += v
			}
		}
	}
	return out, sc.Err()
}
