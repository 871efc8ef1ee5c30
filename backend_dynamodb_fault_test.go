//go:build dynamodb

package mcptasks

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/mcptasks/mcptasks/taskstore"
)

// TestDynamoDBLocalCloseReleasesConnections: a backend opened by URL drops
// its connections, and their goroutines, on Close (it once kept them until
// the transport's 90 s idle timeout: Close closed a transport the SDK had
// cloned and never used).
func TestDynamoDBLocalCloseReleasesConnections(t *testing.T) {
	srv := server(t, envDynamoDB)
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	table := randomTable("mcptasks_close_")
	before := goroutineKinds()
	b, err := OpenBackend(t.Context(), "dynamodb://"+table+"?create_table=true&endpoint="+url.QueryEscape(srv.endpoint))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	s := taskstore.New(b, taskstore.Config{MaxTasksPerOwner: -1})
	load := startFaultLoad(s, 8, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	load.Stop()
	if load.ackedInPhase[phaseUp] == 0 || load.failed[phaseUp] != 0 {
		t.Fatalf("load: %s", load.summary())
	}
	s.Close()
	checkNoGoroutineLeak(t, before, 2*time.Second)
}
