package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"

	"github.com/mcptasks/mcptasks"
)

func init() {
	register(command{
		Name:    "dynamodb",
		Summary: "dynamodb create-table URL: create or upgrade the task table (on-demand) with its runner and status indexes, and enable its TTL",
		Run:     dynamodbMain,
	})
}

const dynamodbUsage = `usage: mcptasks dynamodb create-table dynamodb://TABLE[?region=…&endpoint=…]

Creates TABLE with the schema of docs/dynamodb.md (PAY_PER_REQUEST, global secondary
indexes runner-index and status-index) if it does not exist, and enables DynamoDB's TTL
on expires_at. On a table made by an older version it adds the indexes it lacks
(UpdateTable, one at a time) and waits until DynamoDB has backfilled them, which on a
large table takes minutes; the service may keep running meanwhile. Safe to run twice.
Credentials come from the standard AWS chain. Needs a binary built with -tags dynamodb.`

func dynamodbMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if slices.Contains(args, "-h") || slices.Contains(args, "--help") { // also after create-table
		fmt.Fprintln(stdout, dynamodbUsage)
		return nil
	}
	if len(args) != 2 || args[0] != "create-table" {
		return usagef("expected: create-table URL")
	}
	u, err := url.Parse(args[1])
	if err != nil || u.Scheme != "dynamodb" {
		return usagef("the URL must be dynamodb://TABLE[?options]")
	}
	q := u.Query()
	q.Set("create_table", "true")
	u.RawQuery = q.Encode()
	b, err := mcptasks.OpenBackend(ctx, u.String())
	if err != nil {
		return err
	}
	if err := b.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "table %s is ready, with indexes %s and %s and TTL on expires_at\n", u.Host,
		mcptasks.DynamoDBRunnerIndex, mcptasks.DynamoDBStatusIndex)
	return nil
}
