//go:build redis || postgres || dynamodb

package main

import (
	"regexp"
	"strings"
	"time"
)

// The scenarios the robustness test must reach, counted per run (REPORT
// robustness-scenario): the schedule is random, so the report says how
// often each happened rather than assuming it did.
const (
	// scenarioInputRunnerDies: input answered (tasks/update acknowledged)
	// on one replica within scenarioNear of a kill or freeze of the
	// replica that created the task and ran it.
	scenarioInputRunnerDies = "input-while-runner-dies"
	// scenarioBatchedTakeover: one replica ended or took over two or more
	// tasks of one dead runner (a sweep's batch, or a rescue's).
	scenarioBatchedTakeover = "batched-takeover"
	// scenarioCancelRacesTakeover: a tasks/cancel sent within scenarioNear
	// of a kill or freeze of the task's creating replica, before the task
	// was seen ended.
	scenarioCancelRacesTakeover = "cancel-near-runner-death"
)

var scenarioNames = []string{scenarioInputRunnerDies, scenarioBatchedTakeover, scenarioCancelRacesTakeover}

const scenarioNear = 2 * time.Second

// countScenarios counts each scenario in a run's history, fault spans and
// replica logs (allLogs: one section per process).
func countScenarios(ops []robustOp, tasks []*robustTask, spans []faultSpan, logs string) map[string]int {
	created := map[string]int{}
	for _, t := range tasks {
		created[t.id] = t.created
	}
	// dies reports whether replica i was killed or frozen within
	// scenarioNear of [from, to].
	dies := func(i int, from, to time.Time) bool {
		for _, s := range spans {
			if s.Replica == i && (s.Kind == faultReplicaKill || s.Kind == faultReplicaStop) &&
				!s.Start.Before(from.Add(-scenarioNear)) && !s.Start.After(to.Add(scenarioNear)) {
				return true
			}
		}
		return false
	}
	out := map[string]int{}
	for _, op := range ops {
		j, ok := created[op.TaskID]
		if !ok {
			continue
		}
		switch {
		case op.Method == "tasks/update" && op.Outcome == outcomeOK && op.Replica != j && dies(j, op.Start, op.End):
			out[scenarioInputRunnerDies]++
		case op.Method == "tasks/cancel" && !op.Final && dies(j, op.Start, op.End):
			out[scenarioCancelRacesTakeover]++
		}
	}
	out[scenarioBatchedTakeover] = batchedTakeovers(logs)
	return out
}

// takeoverLine matches the lease keeper's log line for a task it took over
// or ended as an orphan, capturing the dead runner.
var takeoverLine = regexp.MustCompile(`msg="(?:task taken over|orphaned task failed)" .*?\b(?:from|runner)=(\S+)`)

// batchedTakeovers counts, per process, the dead runners two or more of
// whose tasks that process took over or ended.
func batchedTakeovers(logs string) int {
	n := 0
	for _, section := range strings.Split(logs, "\n--- ") {
		perRunner := map[string]int{}
		for _, m := range takeoverLine.FindAllStringSubmatch(section, -1) {
			perRunner[m[1]]++
		}
		for _, c := range perRunner {
			if c >= 2 {
				n++
			}
		}
	}
	return n
}
