//go:build dynamodb

package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// TestDynamoDBCreateTableUpgrades runs `mcptasks dynamodb create-table` on
// a table of the previous release (runner-index only, a task in it): the
// command adds status-index, and the operator's listing then finds the
// tasks written with a status. (dynalite's UpdateTable cannot add an
// index: DynamoDB Local only.)
func TestDynamoDBCreateTableUpgrades(t *testing.T) {
	endpoint := testServerEnv(t, "MCPTASKS_TEST_DYNAMODB_ENDPOINT", "scripts/dynamodb_up.sh")
	client := dynamodb.New(dynamodb.Options{
		Region:                          "us-east-1",
		BaseEndpoint:                    aws.String(endpoint),
		Credentials:                     credentials.NewStaticCredentialsProvider("local", "local", ""),
		DisableValidateResponseChecksum: true,
	})
	table := fmt.Sprintf("mcptasks_cmd_old_%d", time.Now().UnixNano())
	_, err := client.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("PK"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("SK"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("runner"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("PK"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("SK"), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName:  aws.String(mcptasks.DynamoDBRunnerIndex),
			KeySchema:  []types.KeySchemaElement{{AttributeName: aws.String("runner"), KeyType: types.KeyTypeHash}},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: []string{"expires_ns"}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	u := fmt.Sprintf("dynamodb://%s?endpoint=%s&region=us-east-1", table, endpoint)
	b, err := mcptasks.OpenBackend(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	st := taskstore.New(b, taskstore.Config{})
	defer st.Close()
	rec, err := st.Create(t.Context(), "alice", taskstore.CreateRequest{RequestMethod: "tools/call"})
	if err != nil {
		t.Fatal(err)
	}
	idx := b.(taskstore.StatusIndex)
	if _, _, err := idx.ListByStatus(t.Context(), taskstore.StatusWorking, taskstore.Key{}, 10); err == nil ||
		!strings.Contains(err.Error(), "mcptasks dynamodb create-table") {
		t.Fatalf("listing before the upgrade: %v, want an error naming the command", err)
	}

	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"dynamodb", "create-table", u}, &out, &errOut); code != 0 {
		t.Fatalf("create-table exited %d: %s", code, errOut.String())
	}
	if want := table + " is ready, with indexes runner-index and status-index"; !strings.Contains(out.String(), want) {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
	d, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	var active []string
	for _, g := range d.Table.GlobalSecondaryIndexes {
		if g.IndexStatus == types.IndexStatusActive {
			active = append(active, aws.ToString(g.IndexName))
		}
	}
	slices.Sort(active)
	if !slices.Equal(active, []string{mcptasks.DynamoDBRunnerIndex, mcptasks.DynamoDBStatusIndex}) {
		t.Fatalf("active indexes after the upgrade: %v", active)
	}
	recs, more, err := idx.ListByStatus(t.Context(), taskstore.StatusWorking, taskstore.Key{}, 10)
	if err != nil || more || len(recs) != 1 || recs[0].TaskID != rec.Task.TaskID || recs[0].Status != taskstore.StatusWorking {
		t.Fatalf("listing after the upgrade: %+v, more=%v, %v", recs, more, err)
	}
}
