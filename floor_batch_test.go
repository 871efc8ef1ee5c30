//go:build redis || dynamodb || postgres

package mcptasks

import (
	"testing"
	"time"
)

// reportBatchPhases reports the phases of a batch benchmark measured
// against a phase named "floor" (rawfloor.OpenBatch), by the same names on
// every backend: each phase's units/s and round trips per unit (unit:
// "update", "orphan"), and the others' rate and round trips as ratios to
// the floor's. spent, done and trips hold each phase's time, units and
// round trips.
func reportBatchPhases(b *testing.B, unit string, phases []string, spent map[string]time.Duration, done map[string]int, trips map[string]int64) {
	rate := func(name string) float64 { return float64(done[name]) / spent[name].Seconds() }
	perUpdate := func(name string) float64 { return float64(trips[name]) / float64(done[name]) }
	for _, name := range phases {
		b.ReportMetric(rate(name), name+"-"+unit+"s/s")
		b.ReportMetric(perUpdate(name), name+"-roundtrips/"+unit)
		if name != "floor" {
			b.ReportMetric(rate(name)/rate("floor"), name+"-rate/floor")
			b.ReportMetric(perUpdate(name)/perUpdate("floor"), name+"-roundtrips/floor")
		}
	}
	b.ReportMetric(0, "ns/op")
}
